"""Command-line overrides checked before Hydra composes anything: an unknown option of a config group (model,
pruner, benchmark, experiment, ...) or an unsafe folder name fails in one line, and nothing is written."""

from __future__ import annotations

import re
from pathlib import Path

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import ConfigCompositionException, HydraException

from prunesweep.config.compose import compose_config
from prunesweep.config.paths import config_dir, group_options
from prunesweep.config.schema import check_folder_name
from prunesweep.util.errors import PrunesweepError


def check_argv(argv: list[str]) -> None:
    """The overrides of a `prunesweep` command line, parsed once: `check_overrides` (`--config-dir` included),
    then `check_composes` (left to Hydra under `--config-dir`, whose configs the package's compose cannot see).
    Syntax errors are left to Hydra."""
    args = get_args_parser().parse_args(argv)
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except HydraException:
        return
    check_overrides(parsed, [Path(args.config_dir)] if args.config_dir else [])
    if not args.config_dir:
        check_composes(parsed)


def check_composes(parsed: list[Override]) -> None:
    """Compose the config once per value of every sweep (the others at their first value), so a value the typed
    schema refuses (a closed choice, a number field given text) is one line naming the override, not Hydra's
    multi-line report. Glob and interval sweeps are left out (Hydra expands them); `hydra...` overrides (config
    search paths, launchers) go into every composition."""
    fixed = [o.input_line for o in parsed if o.is_hydra_override() or not o.is_sweep_override()]
    sweeps = [
        values
        for o in parsed
        if o.is_sweep_override() and not o.is_hydra_override()
        if (values := [f"{o.get_key_element()}={value}" for value in _values(o)])
    ]
    first = [values[0] for values in sweeps]
    probes = [first] + [[*first[:k], value, *first[k + 1 :]] for k, values in enumerate(sweeps) for value in values[1:]]
    for probe in probes:
        try:
            compose_config(fixed + probe)
        except ConfigCompositionException as exc:
            cause = exc.__cause__ or exc
            override = str(exc).removeprefix("Error merging override ")
            unknown = re.match(r"Could not override '([^']+)'", override)  # a key the schema does not have
            where = unknown.group(1) if unknown else override.splitlines()[0]
            raise PrunesweepError(f"{where}: {str(cause).splitlines()[0]}") from None


def check_overrides(parsed: list[Override], user_roots: list[Path] | None = None) -> None:
    """Raise PrunesweepError naming the valid options for an unknown group option (every value of a sweep)
    and for an `experiment_name` that is not a plain folder name. Groups of user config folders (`--config-dir`,
    `hydra.searchpath=[file://...]`) count as known."""
    roots = [Path(config_dir()), *(user_roots or []), *_search_path_roots(parsed)]
    for override in parsed:
        if override.is_hydra_override() or override.is_delete():
            continue
        key = override.key_or_group
        if any((root / key).is_dir() for root in roots):
            valid = group_options(key, roots)
            for value in _values(override):
                if value not in valid:
                    raise PrunesweepError(f"{key}={value!r} is not a known {key}; valid: {', '.join(valid)}")
        elif key == "experiment_name":
            for value in _values(override):
                check_folder_name(key, value)


def _search_path_roots(parsed: list[Override]) -> list[Path]:
    """The local folders of a `hydra.searchpath=[...]` override (`pkg://` entries are not checked here)."""
    entries = [
        str(entry)
        for override in parsed
        if override.key_or_group == "hydra.searchpath" and isinstance(override.value(), list)
        for entry in override.value()
    ]
    return [
        Path(entry.removeprefix("file://")) for entry in entries if entry.startswith("file://") or "://" not in entry
    ]


def _values(override: Override) -> list[str]:
    """The literal values an override stands for (glob and interval sweeps are Hydra's to expand)."""
    if override.value_type in (ValueType.GLOB_CHOICE_SWEEP, ValueType.INTERVAL_SWEEP):
        return []
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]
