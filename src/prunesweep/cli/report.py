"""`prunesweep-report`: results under an outputs folder -> the papers' tables (Markdown, LaTeX, CSV) and figures."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from prunesweep.config.paths import experiments_dir
from prunesweep.reporting.collect import Collection, collect
from prunesweep.reporting.figures import draw
from prunesweep.reporting.html import frame_section, page, section
from prunesweep.reporting.lm_eval_results import load_lm_eval_results
from prunesweep.reporting.specs import load_specs
from prunesweep.reporting.studies import load_studies
from prunesweep.reporting.tables import (
    OURS,
    Grid,
    build,
    experiment_spec,
    load_reference,
    markdown_table,
    to_csv,
    to_latex,
    to_markdown,
)
from prunesweep.util.atomic import write_text
from prunesweep.util.errors import PrunesweepError


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prunesweep-report",
        description="Collect results.jsonl files below OUTPUTS_DIR and write the papers' grids beside their numbers. "
        "Each paper table shows the runs of its own preset (experiment_name = table name); every other experiment "
        "gets a rate-vs-metric table of its own.",
    )
    parser.add_argument("outputs_dir", type=Path, metavar="OUTPUTS_DIR")
    parser.add_argument("--out", type=Path, help="where tables and figures go (default: OUTPUTS_DIR/tables)")
    parser.add_argument(
        "--table", action="extend", type=_names, metavar="NAME[,NAME]", help="only these tables (default: all)"
    )
    parser.add_argument(
        "--experiments",
        "--experiment",
        action="extend",
        type=_names,
        metavar="NAME[,NAME]",
        help="only the runs of these experiments, and put them into every paper table instead of each preset's own",
    )
    parser.add_argument("--html", type=Path, metavar="OUT.html", help="also write one self-contained HTML page")
    parser.add_argument(
        "--lm-eval-results",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="also add the lm-eval results JSON files below DIR (prunesweep-eval/lm_eval --output_path) of prunesweep "
        "checkpoints, as extra rows (Evaluator lm-eval) in their runs' tables; repeatable",
    )
    parser.add_argument("--wandb-project", metavar="P", help="also import runs of W&B project P (needs the W&B API)")
    parser.add_argument(
        "--experiments-dir",
        type=Path,
        default=experiments_dir(),
        help="folder with <table>/table.yaml + reference.csv (default: the project's experiments/)",
    )
    return parser


def grids(collection: Collection, experiments_dir: Path, named: list[str] | None) -> dict[str, Grid]:
    """One table per experiment no paper table belongs to (first), then every paper table (its preset's runs, or
    the `named` experiments' runs)."""
    specs = load_specs(experiments_dir)
    sources = {experiment: [experiment] for experiment in collection.experiments if experiment not in specs}
    sources |= {name: named or [name] for name in specs}
    built = {}
    for name, experiments in sources.items():
        runs = collection.only(experiments)
        spec = specs.get(name) or experiment_spec(name, runs.data)
        grid = build(spec, runs.data, load_reference(experiments_dir / name / "reference.csv"))
        grid.notes.insert(0, f"Our rows: the runs of experiment {', '.join(experiments)}.")
        if runs.superseded:
            grid.notes.append(
                f"{runs.superseded} (run, cell) measurements were superseded: where several runs measured the "
                "same cell with the same seeds (re-runs, every cell's dense baseline) the newest results.jsonl "
                "(mtime) wins, ties by run path."
            )
        built[name] = grid
    return built


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _write_grid(grid: Grid, out: Path, stem: str) -> tuple[str, dict[str, bytes], list[str]]:
    """Write a table's Markdown, LaTeX, CSV and figures; returns its Markdown, its PNGs and what was written."""
    markdown = to_markdown(grid)
    files = [out / f"{stem}{suffix}" for suffix in (".md", ".tex", ".csv")]
    for path, text in zip(files, (markdown, to_latex(grid), to_csv(grid)), strict=True):
        write_text(path, text)
    images = draw(grid, out / stem)
    names = ",".join(images) if len(images) == 1 else f"{{{','.join(images)}}}"
    figures = [f"{out / stem}/{names}.png"] if images else []
    return markdown, images, [*map(str, files), *figures]


def report(args: argparse.Namespace) -> list[str]:
    """Write every requested table, its figures, every rate search's trials (unless `--table` picks tables), the
    whole report as `report.md` and optionally the HTML page; returns the report's parts in order: the user's own
    experiments, their rate searches, the paper tables our runs measured, one line naming the paper tables they did
    not (their files are written all the same), and the files written."""
    extra = load_lm_eval_results(args.lm_eval_results) if args.lm_eval_results else None
    collection = collect(args.outputs_dir, args.wandb_project, args.experiments, extra)
    tables = grids(collection, args.experiments_dir, args.experiments)
    unknown = sorted(set(args.table or []) - set(tables))
    if unknown:
        raise PrunesweepError(f"--table {','.join(unknown)}: no such table (have: {', '.join(tables)})")
    out = args.out or args.outputs_dir / "tables"
    write_text(out / "results_tidy.csv", collection.records.to_csv(index=False))
    written = [str(out / "results_tidy.csv")]
    if collection.records.empty:
        print(
            f"prunesweep-report: no results found below {args.outputs_dir}; tables hold reference rows only",
            file=sys.stderr,
        )
    papers = set(load_specs(args.experiments_dir))
    own: dict[str, tuple[str, str]] = {}  # name -> (Markdown, HTML section), the user's experiments first
    measured: dict[str, tuple[str, str]] = {}
    unmeasured = []
    for name in args.table or tables:
        grid = tables[name]
        markdown, images, files = _write_grid(grid, out, _stem(name))
        written += files
        if name not in papers:
            own[name] = (markdown, section(name, grid, images))
        elif args.table or (grid.wide["source"] == OURS).any():  # a table asked for by name is shown in full
            measured[name] = (markdown, section(name, grid, images))
        else:
            unmeasured.append(name)
    for study in [] if args.table else load_studies(args.outputs_dir, args.experiments):
        stem, shown = "search_" + _stem(study.name), study.display()
        markdown = markdown_table(study.title, shown, study.notes)
        write_text(out / f"{stem}.md", markdown)
        write_text(out / f"{stem}.csv", study.trials.to_csv(index=False))
        written += [str(out / f"{stem}.md"), str(out / f"{stem}.csv")]
        own[study.name] = (markdown, frame_section(study.name, study.title, shown, study.notes))
    parts = {**own, **measured}
    footer = (
        [f"Paper tables no collected run measured (reference rows only, in {out}/<name>.md): {', '.join(unmeasured)}."]
        if unmeasured
        else []
    )
    if args.html:
        write_text(
            args.html, page(f"prunesweep report: {args.outputs_dir}", {n: h for n, (_, h) in parts.items()}, footer)
        )
        written.append(str(args.html))
    text = [*(markdown for markdown, _ in parts.values()), *footer]
    write_text(out / "report.md", "\n".join(text) + "\n")
    listing = "\n".join(["Files written:", *(f"  {path}" for path in [*written, str(out / "report.md")])])
    return [*text, listing]


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
