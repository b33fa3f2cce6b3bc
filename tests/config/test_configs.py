"""Every config file composes against its typed schema; typos and wrong types fail at composition."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from prunesweep.config.overrides import check_argv
from prunesweep.config.paths import config_dir
from prunesweep.pruning.registry import with_typed_pruner
from prunesweep.util.errors import PrunesweepError
from tests.compose import compose_config

GROUPS = ["model", "pruner", "schedule", "recovery", "benchmark", "logger", "paths"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "override",
    [f"{group}={name}" for group in GROUPS for name in options(group)]
    + [f"experiment={name}" for name in options("experiment")],
)
def test_every_option_composes_and_resolves(override):
    cfg = with_typed_pruner(compose_config([override]))  # the pruner node is typed by its method's schema
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["model"]["name"]
    assert 0.0 <= container["schedule"]["target"] < 1.0


def test_default_is_the_offline_model():
    cfg = compose_config([])
    assert cfg.model.source == "gguf_package"
    assert cfg.schedule.target == cfg.pruner.rate


def test_schedule_target_follows_pruner_rate():
    assert compose_config(["pruner.rate=0.3"]).schedule.target == 0.3


@pytest.mark.parametrize("override", ["pruner.rat=0.3", "model.dtype=[1]", "benchmark.limit=x"])
def test_wrong_key_or_type_fails_at_composition(override):
    with pytest.raises(ConfigCompositionException):
        compose_config([override])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["pruner.rate=abc"], "rate"),
        (["+pruner.ratee=0.3"], "ratee"),
        (["pruner=llm_pruner", "pruner.importance=taylor"], "expected one of"),
        (["pruner=magnitude", "+pruner.importance=element1"], "importance"),  # another method's option
    ],
)
def test_pruner_node_is_checked_against_its_methods_schema(overrides, message):
    with pytest.raises(PrunesweepError, match=message):
        with_typed_pruner(compose_config(overrides))


def test_unknown_group_option_fails():
    with pytest.raises(ConfigCompositionException, match="pruner"):
        compose_config(["pruner=does_not_exist"])


@pytest.mark.parametrize("model", options("model"))
def test_the_context_length_has_one_owner_and_it_is_not_the_model(model):
    """`benchmark.max_length` sets lm-eval's context (None: the model's positions), `benchmark.ppl_seq_len` the
    perplexity windows; a model config has no length of its own that nothing reads."""
    cfg = compose_config([f"model={model}"])
    assert "max_length" not in cfg.model and "max_length" in cfg.benchmark


def test_an_unknown_key_is_one_line_naming_it():
    with pytest.raises(PrunesweepError, match=r"^model\.max_length: Key 'max_length' not in 'ModelConfig'$"):
        check_argv(["model.max_length=2048"])
