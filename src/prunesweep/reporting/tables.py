"""Paper grids: which cells each paper table shows, the pivot of ours + the paper's reference rows, and writers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prunesweep.errors import PrunesweepError
from prunesweep.reporting.collect import EFFICIENCY_TASK, NOT_SET

OURS = "ours"
PERCENT_METRICS = {"acc", "acc_norm", "exact_match"}
LOG_METRICS = {"ppl", "perplexity"}
# Tasks named by a paper for which this machine has no evaluation data (see ../shared/data/SOURCES.md).
NO_OFFLINE_DATA = {"triviaqa"}
NO_DATA_CELL = "n/a (no offline data)"
MISSING_CELL = "–"
STAGE_LABELS = {"dense": "–", "pruned": "w/o tune", "recovered": "w/ tune"}
STAGE_ORDER = {stage: i for i, stage in enumerate(STAGE_LABELS)}
ROW_KEYS = ["rate", "variant", "stage", "source", "model"]
# Identity columns that become extra row keys only when the collected runs differ in them.
OPTIONAL_KEYS = ["schedule", "recovery"]
REFERENCE_COLUMNS = ["source", "model", "method", "importance", "rate", "stage", "task", "metric", "value"]
AVERAGE = "Average"


@dataclass(frozen=True)
class Column:
    """One table column: a (task, metric) measurement and its header."""

    task: str
    metric: str
    label: str


@dataclass(frozen=True)
class TableSpec:
    """A paper grid: the methods it compares, its columns and the columns its "Average" is taken over."""

    name: str
    title: str
    methods: tuple[str, ...]
    columns: tuple[Column, ...]
    average: tuple[str, ...] = ()


def _eff(metric: str, label: str) -> Column:
    return Column(EFFICIENCY_TASK, metric, label)


PARAMS = _eff("total_params", "#Params")
NONZERO = _eff("nonzero_params", "#Params (non-zero)")
ACHIEVED = _eff("achieved_sparsity", "Achieved sparsity")
LLM_PRUNER_TASKS = (
    Column("boolq", "acc", "BoolQ"),
    Column("piqa", "acc", "PIQA"),
    Column("hellaswag", "acc_norm", "HellaSwag"),
    Column("winogrande", "acc", "WinoGrande"),
    Column("arc_easy", "acc", "ARC-e"),
    Column("arc_challenge", "acc", "ARC-c"),
    Column("openbookqa", "acc_norm", "OBQA"),
)


def _gholami(number: int, topic: str, *tasks: Column) -> TableSpec:
    """Gholami & Omar's tables: iterative magnitude pruning, non-zero parameters, one column per task."""
    title = f"Gholami & Omar 2023, Table {number}: iterative magnitude pruning, {topic}"
    return TableSpec(f"gholami_table{number}", title, ("magnitude",), (NONZERO, ACHIEVED, *tasks))


SPECS: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        _gholami(
            3,
            "language modelling and completion",
            Column("lambada", "acc", "LAMBADA acc"),
            Column("lambada", "perplexity", "LAMBADA ppl"),
            Column("storycloze", "acc", "StoryCloze"),
            Column("hellaswag", "acc", "HellaSwag"),
        ),
        _gholami(
            4,
            "open-domain QA (exact match)",
            Column("nq_open", "exact_match", "NQ-open"),
            Column("webquestions", "exact_match", "WebQuestions"),
            Column("triviaqa", "exact_match", "TriviaQA"),
        ),
        TableSpec(
            "llm_pruner_table1",
            "Ma et al. 2023 (LLM-Pruner), Table 1: zero-shot performance, w/o and w/ LoRA tuning",
            ("llm_pruner",),
            (
                PARAMS,
                ACHIEVED,
                Column("wikitext2", "ppl", "WikiText2 ↓"),
                Column("ptb", "ppl", "PTB ↓"),
                *LLM_PRUNER_TASKS,
            ),
            average=tuple(column.label for column in LLM_PRUNER_TASKS),
        ),
        TableSpec(
            "llm_pruner_table2",
            "Ma et al. 2023 (LLM-Pruner), Table 2: statistics of the pruned models (magnitude shown for contrast)",
            ("llm_pruner", "magnitude"),
            (
                PARAMS,
                NONZERO,
                ACHIEVED,
                _eff("macs", "#MACs"),
                _eff("peak_memory_bytes", "Memory"),
                _eff("latency_s", "Latency (s)"),
                _eff("checkpoint_bytes", "Checkpoint"),
            ),
        ),
    )
}


@dataclass
class Grid:
    """A pivoted paper table plus the notes printed under it."""

    spec: TableSpec
    long: pd.DataFrame  # one row per (row keys, column label) value: what the figures draw
    wide: pd.DataFrame  # row keys + one column per label (raw values; accuracies as fractions)
    keys: list[str]
    notes: list[str]


def load_reference(path: Path) -> pd.DataFrame:
    """A paper's reference numbers (long CSV; accuracies in percent as printed), in the collected data's units."""
    ref = pd.DataFrame(columns=REFERENCE_COLUMNS)
    if path.is_file():
        ref = pd.read_csv(path, dtype={"importance": "string"}, keep_default_na=False, na_values=[""])
    missing = set(REFERENCE_COLUMNS) - set(ref.columns)
    if missing:
        raise PrunesweepError(f"{path}: missing columns {sorted(missing)}")
    duplicated = ref.duplicated(REFERENCE_COLUMNS[:-1])
    if duplicated.any():
        raise PrunesweepError(f"{path}: duplicate reference rows, first at line {duplicated.idxmax() + 2}")
    ref["importance"] = ref["importance"].fillna(NOT_SET)
    ref["value"] = ref["value"].where(~ref["metric"].isin(PERCENT_METRICS), ref["value"] / 100)
    return ref.assign(schedule=NOT_SET, recovery=NOT_SET)


def _variant(frame: pd.DataFrame) -> pd.Series:
    """Row label of a method: the importance criterion for LLM-Pruner, else the method name."""
    return frame["importance"].where(frame["importance"] != NOT_SET, frame["method"]).astype(str)


def _select(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """The spec's methods (and the dense baselines) and columns, labelled with row variant and column header."""
    columns = pd.DataFrame([vars(c) for c in spec.columns]).rename(columns={"label": "column"})
    chosen = frame[frame["method"].isin([*spec.methods, "dense"])].merge(columns, on=["task", "metric"])
    return chosen.assign(variant=_variant(chosen))


def build(spec: TableSpec, data: pd.DataFrame, reference: pd.DataFrame) -> Grid:
    """Pivot our cells and the paper's into the spec's grid: rows rate x method x stage x source, one column per task."""
    ours = _select(data, spec).assign(source=OURS)
    ref = _select(reference, spec)
    keys = ROW_KEYS + [k for k in OPTIONAL_KEYS if ours.loc[ours["stage"] != "dense", k].nunique() > 1]
    long = pd.concat([ours, ref], ignore_index=True)[[*keys, "column", "task", "metric", "value"]]
    labels = [c.label for c in spec.columns]
    if long.empty:
        wide = pd.DataFrame(columns=[*keys, *labels])
    else:
        wide = long.pivot(index=keys, columns="column", values="value").reindex(columns=labels).reset_index()
    if spec.average:
        wide[AVERAGE] = wide[list(spec.average)].mean(axis=1, skipna=False)
    order = wide.assign(
        _dense=wide["variant"] != "dense", _stage=wide["stage"].map(STAGE_ORDER), _theirs=wide["source"] != OURS
    ).sort_values(["rate", "_dense", "variant", "_stage", "_theirs", "source"])
    wide = order.drop(columns=["_dense", "_stage", "_theirs"]).reset_index(drop=True)
    return Grid(spec, long, wide, keys, _notes(spec, ours, ref))


def _notes(spec: TableSpec, ours: pd.DataFrame, ref: pd.DataFrame) -> list[str]:
    notes = []
    measured = set(ours["column"])
    for column in spec.columns:
        if column.task in NO_OFFLINE_DATA:
            notes.append(
                f"{column.label}: {NO_DATA_CELL}; this machine has no {column.task} data, so no run can measure it."
            )
        elif column.label not in measured:
            notes.append(f"{column.label}: not measured by any collected run.")
    if not ref.empty:
        notes.append(
            "Reference rows (source ≠ ours) are the papers' numbers for their own models: compare trends, not levels."
        )
    if (ours["state"] != "done").any():
        notes.append("Some of our rows come from runs that are not done (partial results).")
    return notes


def _format(metric: str, value: float) -> str:
    if pd.isna(value):
        return MISSING_CELL
    if metric in PERCENT_METRICS:
        return f"{100 * value:.2f}"
    if metric in {"total_params", "nonzero_params", "macs"}:
        for factor, suffix in ((1e9, "G" if metric == "macs" else "B"), (1e6, "M"), (1e3, "K")):
            if abs(value) >= factor:
                return f"{value / factor:.2f}{suffix}"
        return f"{value:.0f}"
    if metric.endswith("_bytes"):
        return f"{value / 2**20:.1f} MiB"
    if metric.endswith("sparsity"):
        return f"{value:.3f}"
    if metric == "latency_s":
        return f"{value:.4g}"
    return f"{value:.2f}"


def display(grid: Grid) -> pd.DataFrame:
    """The grid as strings, the way the paper prints it (percentages, B/G suffixes, n/a notes)."""
    metric_of = {c.label: c.metric for c in grid.spec.columns} | {AVERAGE: "acc"}  # an average of accuracies
    no_data = {c.label for c in grid.spec.columns if c.task in NO_OFFLINE_DATA}
    shown = pd.DataFrame(
        {
            "Rate": [f"{100 * rate:g}%" for rate in grid.wide["rate"]],
            "Method": grid.wide["variant"],
            "Tune": grid.wide["stage"].map(STAGE_LABELS),
            "Source": grid.wide["source"],
            "Model": grid.wide["model"],
        }
    )
    for key in grid.keys[len(ROW_KEYS) :]:
        shown[key.capitalize()] = grid.wide[key]
    for label, metric in metric_of.items():
        if label not in grid.wide:
            continue
        cells = grid.wide[label].map(lambda value, metric=metric: _format(metric, value))
        unmeasurable = (grid.wide["source"] == OURS) & grid.wide[label].isna() & (label in no_data)
        shown[label] = cells.mask(unmeasurable, NO_DATA_CELL)
    return shown


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def to_markdown(grid: Grid) -> str:
    """A titled GitHub-Markdown table with its notes as a bullet list."""
    shown = display(grid)
    rows = [list(values) for values in shown.itertuples(index=False)] or [["(no rows)"]]
    lines = [f"### {grid.spec.title}", "", _markdown_row(list(shown.columns)), "|" + "---|" * len(shown.columns)]
    lines += [_markdown_row(row) for row in rows]
    return "\n".join([*lines, "", *[f"- {note}" for note in grid.notes]]) + "\n"


_LATEX_ESCAPES = str.maketrans({c: f"\\{c}" for c in "&%$#_{}"} | {"↓": r"$\downarrow$", "≠": r"$\neq$", "–": "--"})


def to_latex(grid: Grid) -> str:
    """A booktabs `table` environment (needs \\usepackage{booktabs})."""
    shown = display(grid)

    def row(cells: list[str]) -> str:
        return " & ".join(str(c).translate(_LATEX_ESCAPES) for c in cells) + r" \\"

    body = [row(list(values)) for values in shown.itertuples(index=False)]
    notes = " ".join(grid.notes).translate(_LATEX_ESCAPES)
    return (
        "\n".join(
            [
                r"\begin{table}[t]",
                r"\centering\small",
                rf"\caption{{{grid.spec.title.translate(_LATEX_ESCAPES)}. {notes}}}",
                rf"\label{{tab:{grid.spec.name.replace('_', '-')}}}",
                r"\begin{tabular}{" + "l" * len(grid.keys) + "r" * (len(shown.columns) - len(grid.keys)) + "}",
                r"\toprule",
                row(list(shown.columns)),
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}",
                r"\end{table}",
            ]
        )
        + "\n"
    )


def to_csv(grid: Grid) -> str:
    """The grid with raw numbers (accuracies as fractions, counts unscaled); empty where not measured."""
    return grid.wide.to_csv(index=False)
