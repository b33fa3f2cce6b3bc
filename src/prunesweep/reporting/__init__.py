"""Paper tables and figures from collected run results; imports neither torch nor the runner."""

from prunesweep.reporting.collect import Collection, collect
from prunesweep.reporting.specs import load_specs
from prunesweep.reporting.tables import Grid, TableSpec, build, load_reference

__all__ = ["Collection", "Grid", "TableSpec", "build", "collect", "load_reference", "load_specs"]
