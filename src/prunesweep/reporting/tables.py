"""Paper grids: the table spec (read from `experiments/<name>/table.yaml` by `reporting.specs`), the pivot of ours + the paper's reference rows, and writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from prunesweep.evaluation.tasks import NO_OFFLINE_DATA
from prunesweep.reporting.collect import DETAIL_KEYS, EFFICIENCY_TASK, NOT_SET, SEED_KEYS
from prunesweep.util.errors import PrunesweepError

OURS = "ours"
PERCENT_METRICS = {"acc", "acc_norm", "exact_match"}
LOG_METRICS = {"ppl", "perplexity"}
# Tasks named by a paper for which this machine has no evaluation data (see ../shared/data/SOURCES.md).
NO_DATA_CELL = "n/a (no offline data)"
MISSING_CELL = "–"
NOT_STATED = "not stated"  # a reference row whose paper does not say its rate or tuning stage
STAGE_LABELS = {"dense": "–", "pruned": "w/o tune", "recovered": "w/ tune", NOT_SET: NOT_STATED}
STAGE_ORDER = {stage: i for i, stage in enumerate(STAGE_LABELS)}
ROW_KEYS = ["rate", "variant", "stage", "source", "model"]
# Identity columns that become extra row keys only when the collected runs differ in them.
OPTIONAL_KEYS = ["schedule", "recovery", "evaluator"]
REFERENCE_COLUMNS = ["source", "model", "method", "importance", "rate", "stage", "task", "metric", "value"]
# reference.csv columns that may be left out (read as NOT_SET): pruner options and how the paper measured.
OPTIONAL_REFERENCE_COLUMNS = ["importance", *DETAIL_KEYS, "protocol"]
AVERAGE = "Average"
AVERAGE_TASK = "average"  # reference.csv rows with task `average`, metric `acc`: the paper's printed average
# Per cell beside its value: the seeds' sample std, how many seeds, the recorded stderr (lm-eval tasks).
NOISE_FIELDS = ("std", "seeds", "stderr")


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
    methods: tuple[str, ...]  # empty: every method
    columns: tuple[Column, ...]
    average: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # DETAIL_KEYS always shown as row keys (the grid's own axis, e.g. aggregation)


# Efficiency columns in the order a table of any experiment shows them.
EFFICIENCY_COLUMNS = tuple(
    Column(EFFICIENCY_TASK, metric, label)
    for metric, label in (
        ("total_params", "#Params"),
        ("nonzero_params", "#Params (non-zero)"),
        ("achieved_sparsity", "Achieved sparsity"),
        ("macs", "#MACs"),
        ("peak_memory_bytes", "Memory"),
        ("latency_s", "Latency (s)"),
        ("checkpoint_bytes", "Checkpoint"),
    )
)


def experiment_spec(name: str, data: pd.DataFrame) -> TableSpec:
    """The rate-vs-metric table of an experiment no paper table belongs to: every (task, metric) it measured."""
    measured = list(dict.fromkeys(zip(data["task"], data["metric"], strict=True)))
    efficiency = [c for c in EFFICIENCY_COLUMNS if (c.task, c.metric) in measured]
    tasks = [Column(task, metric, f"{task}/{metric}") for task, metric in measured if task != EFFICIENCY_TASK]
    title = f"Experiment {name}: every measured metric by pruning rate"
    return TableSpec(name, title, (), (*efficiency, *tasks))


@dataclass
class Grid:
    """A pivoted paper table plus the notes printed under it."""

    spec: TableSpec
    long: pd.DataFrame  # one row per (row keys, column label) value: what the figures draw
    wide: pd.DataFrame  # row keys + one column per label (raw values; accuracies as fractions)
    keys: list[str]
    notes: list[str]
    sizes: dict[str, str] = field(default_factory=dict)  # per column label: how much data each of our values saw


def load_reference(path: Path) -> pd.DataFrame:
    """A paper's reference numbers (long CSV; accuracies in percent as printed), in the collected data's units."""
    ref = pd.DataFrame(columns=REFERENCE_COLUMNS)
    if path.is_file():
        ref = pd.read_csv(path, dtype={"importance": "string"}, keep_default_na=False, na_values=[""])
    missing = set(REFERENCE_COLUMNS) - set(ref.columns) - set(OPTIONAL_REFERENCE_COLUMNS)
    if missing:
        raise PrunesweepError(f"{path}: missing columns {sorted(missing)}")
    ref = ref.reindex(columns=list(dict.fromkeys([*ref.columns, *OPTIONAL_REFERENCE_COLUMNS])))
    labels = [*OPTIONAL_REFERENCE_COLUMNS, "stage"]  # an empty stage: the paper does not say
    ref[labels] = ref[labels].astype("string").fillna(NOT_SET).astype(str)
    ref["rate"] = pd.to_numeric(ref["rate"])  # empty: the paper does not state it
    duplicated = ref.duplicated([c for c in ref.columns if c in {*REFERENCE_COLUMNS, *DETAIL_KEYS} - {"value"}])
    if duplicated.any():
        raise PrunesweepError(f"{path}: duplicate reference rows, first at line {duplicated.idxmax() + 2}")
    ref["value"] = ref["value"].where(~ref["metric"].isin(PERCENT_METRICS), ref["value"] / 100)
    return ref.assign(schedule=NOT_SET, recovery=NOT_SET, evaluator=NOT_SET)


def _variant(frame: pd.DataFrame) -> pd.Series:
    """Row label of a method: the importance criterion for LLM-Pruner, else the method name."""
    return frame["importance"].where(frame["importance"] != NOT_SET, frame["method"]).astype(str)


def _select(frame: pd.DataFrame, spec: TableSpec, columns: tuple[Column, ...], all_dense: bool) -> pd.DataFrame:
    """The spec's methods and columns, labelled with row variant and column header; dense baselines of the models
    those methods pruned (or every dense row: `all_dense`)."""
    table = pd.DataFrame([vars(c) for c in columns], columns=["task", "metric", "label"]).rename(
        columns={"label": "column"}
    )
    dense = frame["method"] == "dense"
    pruned = ~dense if not spec.methods else frame["method"].isin(spec.methods)
    if not all_dense:
        dense &= frame["model"].isin(set(frame.loc[pruned, "model"]))
    chosen = frame[pruned | dense].merge(table, on=["task", "metric"])
    return chosen.assign(variant=_variant(chosen))


def _differs(frame: pd.DataFrame, key: str, stated_only: bool = False) -> bool:
    """Whether the non-dense rows hold more than one value of `key` (not counting unstated ones if `stated_only`)."""
    values = frame.loc[frame["stage"] != "dense", key]
    return (values[values != NOT_SET] if stated_only else values).nunique() > 1


def _protocols(long: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Per row, every way its cells were measured ("0-shot, seq 128"), NOT_SET if none is stated."""

    def join(values: pd.Series) -> str:
        parts = [part for value in values if value != NOT_SET for part in value.split(", ")]
        return ", ".join(dict.fromkeys(parts)) or NOT_SET  # first-seen order, each part once

    return long.groupby(keys, dropna=False, sort=False)["protocol"].agg(join).rename("protocol")


def _average(ours: pd.DataFrame, spec: TableSpec, keys: list[str]) -> pd.DataFrame:
    """Per row and seed, our mean over the spec's average columns (all measured), its stderr propagated from theirs
    (sqrt of the summed squares over the count; none unless all have one)."""
    averaged = ours[ours["column"].isin(spec.average)]
    per_seed = averaged.groupby([*keys, *SEED_KEYS], dropna=False, sort=False)
    mean = per_seed.agg(
        value=("value", lambda v: v.mean() if v.notna().sum() == len(spec.average) else float("nan")),
        stderr=("stderr", lambda e: (e**2).sum() ** 0.5 / len(e) if e.notna().all() else float("nan")),
    ).reset_index()
    mean = mean.merge(_protocols(averaged, keys).reset_index(), on=keys, how="left")
    return mean.dropna(subset=["value"]).assign(column=AVERAGE, task=AVERAGE_TASK, metric="acc")


def aggregate(ours: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per cell and column over the runs that differ only in SEED_KEYS: the mean `value`, the sample `std`
    (ddof=1; none for one seed), `seeds` (how many) and `stderr` (mean of the seeds' recorded stderr)."""
    cells = ours.groupby([*keys, "column", "task", "metric", "protocol"], dropna=False, sort=False)
    return cells.agg(
        value=("value", "mean"), std=("value", "std"), seeds=("value", "count"), stderr=("stderr", "mean")
    ).reset_index()


def noise_column(label: str, field: str) -> str:
    """The wide column that holds `field` (one of NOISE_FIELDS) of column `label`, e.g. `BoolQ std`."""
    return f"{label} {field}"


def build(spec: TableSpec, data: pd.DataFrame, reference: pd.DataFrame) -> Grid:
    """Pivot our cells (aggregated over seeds) and the paper's into the spec's grid: rows rate x method x stage x
    source, one column per task, plus its NOISE_FIELDS columns."""
    ours = _select(data, spec, spec.columns, all_dense=not spec.methods).assign(source=OURS)
    printed = (Column(AVERAGE_TASK, "acc", AVERAGE),) if spec.average else ()
    ref = _select(reference, spec, (*spec.columns, *printed), all_dense=True)
    both = pd.concat([ours, ref], ignore_index=True).astype({"rate": float})  # an empty side must not make it object
    keys = ROW_KEYS + [k for k in OPTIONAL_KEYS if _differs(ours, k)]
    keys += [k for k in DETAIL_KEYS if k in spec.keys or _differs(ours, k) or _differs(both, k, stated_only=True)]
    runs = both[both["source"] == OURS]
    if spec.average and not runs.empty:
        runs = pd.concat([runs, _average(runs, spec, keys)], ignore_index=True)
    theirs = both[both["source"] != OURS].assign(std=float("nan"), seeds=float("nan"), stderr=float("nan"))
    long = pd.concat([aggregate(runs, keys), theirs], ignore_index=True).astype({"rate": float})
    long = long[[*keys, "column", "task", "metric", "protocol", "value", *NOISE_FIELDS]]
    labels = [c.label for c in spec.columns] + ([AVERAGE] if spec.average else [])
    noise = [noise_column(label, field) for label in labels for field in NOISE_FIELDS]
    if long.empty:
        wide = pd.DataFrame(columns=[*keys, "protocol", *labels, *noise])
    else:
        pivot = long.pivot(index=keys, columns="column", values=["value", *NOISE_FIELDS])
        pivot.columns = [label if field == "value" else noise_column(label, field) for field, label in pivot.columns]
        wide = pivot.reindex(columns=[*labels, *noise]).reset_index()
        wide = wide.merge(_protocols(long, keys).reset_index(), on=keys, how="left")
    order = wide.assign(
        _dense=wide["variant"] != "dense", _stage=wide["stage"].map(STAGE_ORDER), _theirs=wide["source"] != OURS
    ).sort_values(["rate", "_dense", "variant", *keys[len(ROW_KEYS) :], "_stage", "_theirs", "source", "model"])
    wide = order.drop(columns=["_dense", "_stage", "_theirs"]).reset_index(drop=True)
    wide = wide.reindex(columns=[*keys, "protocol", *labels, *noise])
    sizes = _sizes(ours)
    notes = [*_notes(spec, ours, wide), *_noise_notes(wide, sizes), *_within_notes(within_noise(long, keys))]
    return Grid(spec, long, wide, keys, notes, sizes)


def _counts(values: pd.Series) -> str:
    counts = sorted({int(v) for v in values.dropna()})
    return f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _sizes(ours: pd.DataFrame) -> dict[str, str]:
    """Per measured column, the examples behind each value (`n=100 examples`; a range where runs differ) or, for
    perplexity, its token cap (`≤16384 tokens`; `all tokens` without one); `n not recorded` where runs lack it."""
    sizes = {}
    for label, part in ours[ours["task"] != EFFICIENCY_TASK].groupby("column", sort=False):
        if part["metric"].isin(LOG_METRICS).all() and "limit" in part:
            sizes[label] = f"≤{_counts(part['limit'])} tokens" if part["limit"].notna().all() else "all tokens"
        elif "n_examples" in part and part["n_examples"].notna().any():
            sizes[label] = f"n={_counts(part['n_examples'])} examples"
        else:
            sizes[label] = "n not recorded"
    return sizes


def _noise_notes(wide: pd.DataFrame, sizes: dict[str, str]) -> list[str]:
    notes = []
    if sizes:
        notes.append(
            "Data behind each of our values: " + ", ".join(f"{label} {size}" for label, size in sizes.items()) + "."
        )
    if (wide["source"] == OURS).any():
        notes.append(
            "Our cells: `mean ± std (n=k)` over k seeds (sample std); one seed: `value ± stderr` as its run recorded "
            "it (lm-eval tasks), the bare value where none was recorded (perplexity, counts)."
        )
    return notes


def within_noise(long: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Every pair of our methods (variant and pruner options) at one rate, stage and model, per measured column (not
    the efficiency counts): their values, |diff|, combined noise and whether the difference is `within` it.

    A value's noise has two parts: the seeds' standard error of the mean (std / sqrt(n) over n > 1 seeds) and the
    sampling stderr its runs recorded (lm-eval tasks, mean over the seeds; it does not shrink with more seeds of the
    same examples; perplexity has none); noise = sqrt(seed part² + stderr²), with a missing part counted as zero. A
    pair is within noise when |a - b| <= sqrt(noise_a² + noise_b²); a pair where either value has neither part is
    not judged (left out)."""
    ours = long[(long["source"] == OURS) & (long["stage"] != "dense") & (long["task"] != EFFICIENCY_TASK)]
    details = [k for k in keys if k in DETAIL_KEYS]
    labels = ours[["variant", *details]].astype(str).itertuples(index=False)
    method = [" ".join(v for v in row if v != NOT_SET) for row in labels]
    seed_part = (ours["std"] / ours["seeds"] ** 0.5).where(ours["seeds"] > 1)
    noise = (seed_part.fillna(0) ** 2 + ours["stderr"].fillna(0) ** 2) ** 0.5
    noise = noise.where(seed_part.notna() | ours["stderr"].notna())
    ours = ours.assign(method=method, noise=noise).dropna(subset=["value", "noise"])
    group = [k for k in keys if k not in {"variant", *details}] + ["column"]
    pairs = ours.merge(ours, on=group, suffixes=("_a", "_b"))
    pairs = pairs[pairs["method_a"] < pairs["method_b"]]
    diff = (pairs["value_a"] - pairs["value_b"]).abs()
    combined = (pairs["noise_a"] ** 2 + pairs["noise_b"] ** 2) ** 0.5
    pairs = pairs.assign(diff=diff, noise=combined, within=diff <= combined)
    return pairs[[*group, "method_a", "method_b", "value_a", "value_b", "diff", "noise", "within"]].reset_index(
        drop=True
    )


def _within_notes(pairs: pd.DataFrame) -> list[str]:
    """One note per rate, stage and model naming the pairs within noise (`a ≈ b`) per column."""
    within = pairs[pairs["within"]]
    several = within["model"].nunique() > 1
    notes = []
    for (rate, stage, model), found in within.groupby(["rate", "stage", "model"], sort=True):
        where = f"{100 * rate:g}% {STAGE_LABELS[stage]}" + (f" ({model})" if several else "")
        marks = ", ".join(f"{r.column} {r.method_a} ≈ {r.method_b}" for r in found.itertuples())
        notes.append(f"Within noise (|diff| ≤ combined standard error) at {where}: {marks}.")
    return notes


def _notes(spec: TableSpec, ours: pd.DataFrame, wide: pd.DataFrame) -> list[str]:
    notes = []
    measured = set(ours["column"])
    for column in spec.columns:
        if column.task in NO_OFFLINE_DATA:
            notes.append(
                f"{column.label}: {NO_DATA_CELL}; this machine has no {column.task} data, so no run can measure it."
            )
    unmeasured = [c.label for c in spec.columns if c.label not in measured and c.task not in NO_OFFLINE_DATA]
    if not measured:
        notes.append("No collected run measured any column of this table.")
    elif unmeasured:
        notes.append(f"Not measured by any collected run: {', '.join(unmeasured)}.")
    theirs = wide[wide["source"] != OURS]
    if not theirs.empty:
        notes.append(
            f"{len(theirs)} reference rows (source ≠ ours: {', '.join(sorted(set(theirs['source'])))}) are the papers' "
            "numbers for their own models, cited per row in reference.csv: compare trends, not levels, and only "
            "where the Protocol column matches."
        )
    if spec.average:
        notes.append(
            f"{AVERAGE}: ours = mean of {', '.join(spec.average)} (empty unless all are measured); "
            "reference rows = the average as the paper printed it."
        )
    if theirs["rate"].isna().any() or (theirs["stage"] == NOT_SET).any():
        notes.append(f"Rate or Tune '{NOT_STATED}': the paper does not say at which ratio or stage it measured.")
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


def _cell(metric: str, value: float, std: float, seeds: float, stderr: float) -> str:
    """A value as printed: `mean ± std (n=seeds)` over several seeds, else `value ± stderr` where one was recorded."""
    if pd.isna(value):
        return MISSING_CELL
    if seeds > 1:
        return f"{_format(metric, value)} ± {_format(metric, std)} (n={int(seeds)})"
    return _format(metric, value) + ("" if pd.isna(stderr) else f" ± {_format(metric, stderr)}")


def display(grid: Grid) -> pd.DataFrame:
    """The grid as strings, the way the paper prints it (percentages, B/G suffixes, n/a notes)."""
    metric_of = {c.label: c.metric for c in grid.spec.columns} | {AVERAGE: "acc"}  # an average of accuracies
    no_data = {c.label for c in grid.spec.columns if c.task in NO_OFFLINE_DATA}
    shown = pd.DataFrame(
        {
            "Rate": [NOT_STATED if pd.isna(rate) else f"{100 * rate:g}%" for rate in grid.wide["rate"]],
            "Method": grid.wide["variant"],
            "Tune": grid.wide["stage"].map(STAGE_LABELS),
            "Source": grid.wide["source"],
            "Model": grid.wide["model"],
        }
    )
    for key in [*grid.keys[len(ROW_KEYS) :], "protocol"]:
        shown[key.capitalize()] = grid.wide[key].replace(NOT_SET, MISSING_CELL)
    for label, metric in metric_of.items():
        if label not in grid.wide:
            continue
        cells = pd.Series(
            [
                _cell(metric, *values)
                for values in grid.wide[[label, *(noise_column(label, f) for f in NOISE_FIELDS)]].itertuples(
                    index=False
                )
            ],
            index=grid.wide.index,
            dtype=object,
        )
        unmeasurable = (grid.wide["source"] == OURS) & grid.wide[label].isna() & (label in no_data)
        shown[label] = cells.mask(unmeasurable, NO_DATA_CELL)
    return shown


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def markdown_table(title: str, shown: pd.DataFrame, notes: list[str]) -> str:
    """A titled GitHub-Markdown table of `shown` (cells as printed) with `notes` as a bullet list."""
    rows = [list(values) for values in shown.itertuples(index=False)] or [["(no rows)"]]
    lines = [f"### {title}", "", _markdown_row(list(shown.columns)), "|" + "---|" * len(shown.columns)]
    lines += [_markdown_row(row) for row in rows]
    return "\n".join([*lines, "", *[f"- {note}" for note in notes]]) + "\n"


def to_markdown(grid: Grid) -> str:
    """A titled GitHub-Markdown table with its notes as a bullet list."""
    return markdown_table(grid.spec.title, display(grid), grid.notes)


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
                r"\begin{tabular}{"
                + "l" * (len(grid.keys) + 1)
                + "r" * (len(shown.columns) - len(grid.keys) - 1)
                + "}",
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
