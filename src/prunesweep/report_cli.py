"""`prunesweep-report`: results under an outputs folder -> the papers' tables (Markdown, LaTeX, CSV) and figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prunesweep.atomic import write_text
from prunesweep.errors import PrunesweepError
from prunesweep.paths import project_root
from prunesweep.reporting.collect import collect
from prunesweep.reporting.figures import draw
from prunesweep.reporting.tables import SPECS, build, load_reference, to_csv, to_latex, to_markdown


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prunesweep-report",
        description="Collect results.jsonl files below OUTPUTS_DIR and write the papers' grids beside their numbers.",
    )
    parser.add_argument("outputs_dir", type=Path, metavar="OUTPUTS_DIR")
    parser.add_argument("--out", type=Path, help="where tables and figures go (default: OUTPUTS_DIR/tables)")
    parser.add_argument("--table", choices=[*SPECS, "all"], default="all")
    parser.add_argument("--experiment", help="only runs whose experiment_name is this")
    parser.add_argument("--wandb-project", metavar="P", help="also import runs of W&B project P (needs the W&B API)")
    parser.add_argument(
        "--experiments-dir",
        type=Path,
        default=Path(project_root()) / "experiments",
        help="folder with <table>/reference.csv (default: the checkout's experiments/)",
    )
    return parser


def report(args: argparse.Namespace) -> list[str]:
    """Write every requested table and its figures; returns the Markdown of each."""
    collection = collect(args.outputs_dir, args.wandb_project, args.experiment)
    data = collection.data
    out = args.out or args.outputs_dir / "tables"
    write_text(out / "results_tidy.csv", collection.records.to_csv(index=False))
    if data.empty:
        print(
            f"prunesweep-report: no results found below {args.outputs_dir}; tables hold reference rows only",
            file=sys.stderr,
        )
    markdowns = []
    for name in SPECS if args.table == "all" else [args.table]:
        grid = build(SPECS[name], data, load_reference(args.experiments_dir / name / "reference.csv"))
        if collection.superseded:
            grid.notes.append(
                f"{collection.superseded} (run, cell) measurements were superseded: where several runs measured the "
                "same cell (re-runs, every cell's dense baseline) the newest results.jsonl (mtime) wins, ties by run path."
            )
        markdown = to_markdown(grid)
        write_text(out / f"{name}.md", markdown)
        write_text(out / f"{name}.tex", to_latex(grid))
        write_text(out / f"{name}.csv", to_csv(grid))
        draw(grid, out / name)
        markdowns.append(markdown)
    return markdowns


def main(argv: list[str] | None = None) -> int:
    """Console entry point; a bad input ends with one line on stderr and exit status 2."""
    args = _parser().parse_args(argv)
    try:
        markdowns = report(args)
    except PrunesweepError as exc:
        print(f"prunesweep-report: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(markdowns))
    return 0
