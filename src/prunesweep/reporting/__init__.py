"""Paper tables and figures from collected run results; imports neither torch nor the runner."""

from prunesweep.reporting.collect import Collection, collect
from prunesweep.reporting.tables import SPECS, Grid, TableSpec, build, load_reference

__all__ = ["SPECS", "Collection", "Grid", "TableSpec", "build", "collect", "load_reference"]
