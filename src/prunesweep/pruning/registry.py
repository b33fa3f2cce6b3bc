"""Turn the composed `pruner` node into its method: the YAML's `_target_` names the Pruner class, whose own
`Config` dataclass types and checks the node (unknown keys, wrong types, closed choices, value ranges)."""

from __future__ import annotations

import os
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from prunesweep.config.compose import compose_config
from prunesweep.config.schema import PrunerConfig, check_pruner_node
from prunesweep.pruning.base import Pruner
from prunesweep.util.errors import PrunesweepError

NO_PRUNING = "none"  # pruner=none: the dense baseline only
METHODS_PACKAGE = "prunesweep.pruning"
PLUGINS_VARIABLE = "PRUNESWEEP_PLUGINS"  # extra packages whose Pruner classes a `_target_` may name


def allowed_modules() -> list[str]:
    """Packages a `_target_` may be imported from: checked before any import, so a config cannot run the
    top-level code of an arbitrary module."""
    extra = [name.strip() for name in os.environ.get(PLUGINS_VARIABLE, "").split(",") if name.strip()]
    return [METHODS_PACKAGE, *extra]


def pruner_class(node: DictConfig) -> type[Pruner]:
    """The Pruner class named by `node._target_`."""
    target = node.get("_target_")
    if not target:
        raise PrunesweepError(f"pruner {node.get('name')!r} has no `_target_` (the Pruner class to use)")
    modules = allowed_modules()
    if not any(target.startswith(f"{module}.") for module in modules):
        raise PrunesweepError(
            f"pruner._target_={target!r} is not in a method package ({', '.join(modules)}); a method of your own "
            f"package is allowed once its package is listed in ${PLUGINS_VARIABLE} (comma-separated)"
        )
    try:
        cls = get_class(target)
    except Exception as exc:  # hydra wraps import errors in its own types
        raise PrunesweepError(f"pruner._target_={target!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Pruner)):
        raise PrunesweepError(f"pruner._target_={target!r} is not a prunesweep Pruner")
    return cls


def typed_pruner_config(node: DictConfig) -> DictConfig:
    """`node` merged onto its method's schema: defaults filled in, one clear line for a bad key/type/choice."""
    schema = PrunerConfig if node.get("name") == NO_PRUNING else pruner_class(node).Config
    defaults = OmegaConf.structured(schema)
    try:
        typed = OmegaConf.merge(defaults, node)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "pruner"
        where = key if key.startswith("pruner") else f"pruner.{key}"
        raise PrunesweepError(f"{where} ({node.get('name')}): {str(exc).splitlines()[0]}") from exc
    own = defaults.get("name")
    if schema is not PrunerConfig and typed.name != own:
        raise PrunesweepError(
            f"pruner.name={typed.name!r}, but pruner._target_ is the {own!r} method: a method's name comes from its "
            f"plugin (choose pruner=<preset> instead of renaming)"
        )
    return typed


def build_pruner(node: DictConfig) -> Pruner | None:
    """The pruner for a typed `pruner` node, or None for `pruner=none` (dense baseline)."""
    if node.name == NO_PRUNING:
        return None
    return pruner_class(node)(node)


def checked_settings(cfg: DictConfig) -> tuple[DictConfig, Pruner | None]:
    """The run config (its common settings checked by `check_config`) with its pruner typed, the method's own
    keys and ranges checked, and the method built (its constructor checks its own options, e.g. an N:M pattern):
    no model, no data read."""
    cfg = with_typed_pruner(cfg)
    check_pruner_node(cfg.pruner)
    return cfg, build_pruner(cfg.pruner)


def with_typed_pruner(cfg: DictConfig) -> DictConfig:
    """The run config with its pruner node typed by the method's schema (for hashing and the pruner)."""
    out = cfg.copy()
    out.pruner = typed_pruner_config(cfg.pruner)
    return out


def make_pruner(preset: str, **options: Any) -> Pruner | None:
    """The pruner of `conf/pruner/<preset>.yaml` with `options` set, checked, typed and built as the runner does."""
    cfg = compose_config([f"pruner={preset}"])
    OmegaConf.set_struct(cfg, False)  # as a `+pruner.key=value` override would add it
    cfg.pruner.merge_with(options)
    return checked_settings(cfg)[1]
