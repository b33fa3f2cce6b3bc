"""Compose the project's Hydra config in tests, exactly as the CLI does, and read what its validation says."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from prunesweep.config.compose import compose_config
from prunesweep.config.overrides import check_composes
from prunesweep.pruning.registry import make_pruner
from prunesweep.run.validate import validate
from prunesweep.util.errors import PrunesweepError

__all__ = ["compose_config", "make_pruner", "settings_error"]


def settings_error(data_dir: str, *overrides: str) -> str:
    """The one-line error the command line's checks give `experiment=smoke` with `overrides`: composition (typed
    values, closed choices), then the settings and inputs check (no model is loaded)."""
    overrides = ("experiment=smoke", f"paths.data_dir={data_dir}", *overrides)
    with pytest.raises(PrunesweepError) as err:
        check_composes(OverridesParser.create().parse_overrides(list(overrides)))
        validate(compose_config(list(overrides)))
    return str(err.value)
