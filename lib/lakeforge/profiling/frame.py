"""Problem framing (lakeforge frame): inspect a dataset and its target, and make the problem card
(lakeforge.profiling.card; ``to_yaml`` writes it as the pipeline config).

One statistics aggregation over all columns (nulls, approximate distinct counts, how many text
values parse as numbers or timestamps, text length: lakeforge.profiling.frame_columns, which
also gives each column its role); one grouped count of the target's values; one query for the
leakage check of every column (correlations, or the purity of each categorical column's levels:
lakeforge.profiling.leakage.card_leakage); when the key is not given, one exact count of the
distinct values of the columns that may be the key (the key must be unique: else ingest adds a
row id). Three or four passes over the data whatever the number of columns; nothing row-level
reaches the driver. Each categorical column's encoding (by its levels) and the memory the search
will want go into the card (lakeforge.profiling.frame_encodings).

The helpers for the target (``infer_task``, ``default_positive``, ``as_text``, ``MAX_CLASSES``)
are shared with the EDA profile and training.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from lakeforge.core.errors import InputDataError, delimiter_hint, wrong_delimiter
from lakeforge.core.names import normalise_names
from lakeforge.profiling.card import ProblemCard
from lakeforge.profiling.frame_tasks import TaskFraming, frame_task, interaction_hint, no_target_message
from lakeforge.profiling.frame_encodings import card_encodings, memory_note
from lakeforge.profiling.frame_columns import choose_key, detect_columns, framing_statistics, key_candidates, key_repeats
from lakeforge.profiling.leakage import card_leakage

MAX_CLASSES = 50
POSITIVE_NAMES = ("1", "1.0", "true", "t", "yes", "y", "ja", "oui", "si", "sí", "sim", "positive", "pos")


def infer_task(values: list, numeric: bool, distinct: int) -> tuple[str, str]:
    """(task, reason) from the target's distinct values (at most MAX_CLASSES + 1 of them)."""
    if distinct == 2:
        return "binary", "the target has exactly 2 distinct values"
    if numeric and (distinct > 20 or any(float(v) != int(float(v)) for v in values)):
        return "regression", f"the target is numeric with {distinct if distinct <= MAX_CLASSES else 'many'} distinct values"
    if distinct <= MAX_CLASSES:
        counted = "; whole numbers: for a count or a score, set model.task: regression and model.metric: rmse" \
            if numeric and distinct > 5 else ""
        return "multiclass", f"the target has {distinct} distinct values{counted}"
    raise InputDataError(
        f"target has more than {MAX_CLASSES} distinct text values: not a classification target, and text "
        "cannot be a regression target; choose another target"
    )


def default_positive(names: list[str], counts: Callable[[], dict[str, float]]) -> str:
    """The positive class of a binary target: a 1/true/yes-like value if there is one, else the
    minority class (``counts`` is only called then)."""
    for n in sorted(names):
        if n.lower() in POSITIVE_NAMES:
            return n
    c = counts()
    return min(names, key=lambda n: (c.get(n, 0), n))


def as_text(v: object) -> str:
    """A value as text: booleans lower case, whole floats without '.0'."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def frame(df: DataFrame, target: str | None, source: dict, name: str, key: str | None = None,
          task: TaskFraming | None = None, quoted: set[str] = frozenset()) -> ProblemCard:
    """The problem card of ``df`` for predicting ``target`` (``source``: its source config;
    ``name``: the pipeline's; ``key``: None to detect it); ``task``: a clustering or
    recommendation framing instead (lakeforge.profiling.frame_tasks). ``quoted``: columns whose
    values the file has in quotes (text to its writer: whole numbers among them are levels)."""
    df, target, key, renamed = _bronze_names(df, target, key)
    stats = framing_statistics(df)
    stats["__quoted"] = {renamed.get(c, c) for c in quoted}
    rows = stats["__rows"]
    if rows == 0:
        raise InputDataError("the input has no rows; nothing to frame")
    if task is not None:
        task.key, task.renamed = key, renamed
        return frame_task(df, stats, task)
    if target is None:
        raise InputDataError(no_target_message(detect_columns(df, stats, None, key, source)[0], rows))
    task, task_reason, shares = _target_classes(df, target)
    positive = default_positive(list(shares), lambda: shares) if task == "binary" else None
    columns, fallback_keys = detect_columns(df, stats, target, key, source)
    row_id, key_note = None, ""
    if key is None:
        candidates = key_candidates(columns, fallback_keys)
        key, row_id, key_note = choose_key(candidates, key_repeats(df, [c.name for c in candidates]), df.columns)
    leakage = card_leakage(df, target, columns, task, rows)
    metric, metric_reason = _metric(task, shares)
    card_encodings(columns)
    return ProblemCard(name, source, rows, target, task, task_reason, key, positive, metric, metric_reason,
                       shares, columns, leakage, renamed, row_id, key_note, hint=interaction_hint(columns, rows),
                       memory=memory_note(columns, rows, supervised=True))


def _bronze_names(df: DataFrame, target: str, key: str | None) -> tuple[DataFrame, str, str | None, dict[str, str]]:
    """(``df`` with its columns named as the bronze table will name them, the target and key by
    those names, {name in the data: name in bronze} of the renamed columns)."""
    # The card names columns as the bronze table will (ingest's normalisation, e.g. 'Car ID' ->
    # Car_ID); --target / --key may give either name.
    names = normalise_names(df.columns)
    bronze = set(names.values())
    for what, col in (("target", target), ("key", key)):
        if col is not None and col not in names and col not in bronze:
            sep = delimiter_hint(df.columns)
            raise InputDataError(f"{what} column {col!r} not found; available columns: {', '.join(df.columns)[:300]}"
                                 + (f". {wrong_delimiter(sep)}" if sep else ""))
    target = names.get(target, target)
    key = names.get(key, key) if key is not None else None
    renamed = {a: b for a, b in names.items() if a != b}
    if renamed:
        df = df.toDF(*[names[c] for c in df.columns])
    return df, target, key, renamed


def _target_classes(df: DataFrame, target: str) -> tuple[str, str, dict[str, float]]:
    """(task, why, {class: share of the rows}, largest first; none for regression), from the
    target's values with their counts in one pass (a regression target stops at MAX_CLASSES + 1)."""
    by_value = df.where(F.col(f"`{target}`").isNotNull()).groupBy(f"`{target}`").count().limit(MAX_CLASSES + 1).collect()
    values = [r[0] for r in by_value]
    if len(values) < 2:
        raise InputDataError(f"target {target!r} is constant or empty ({len(values)} distinct value); nothing to learn")
    numeric = isinstance(df.schema[target].dataType, NumericType)
    task, task_reason = infer_task(values, numeric, len(values))
    counts = {as_text(r[0]): r[1] for r in by_value} if task != "regression" else {}
    total = sum(counts.values()) or 1
    shares = {k: round(v / total, 4) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
    return task, task_reason, shares


def _metric(task: str, shares: dict[str, float]) -> tuple[str, str]:
    """(metric, why): PR-AUC for imbalanced binary targets, ROC-AUC, macro F1 or RMSE."""
    minority = min(shares.values()) if shares else None
    if task == "binary":
        if minority is not None and minority < 0.2:
            return "pr_auc", f"imbalanced: the minority class is {minority:.1%} of the rows"
        return "roc_auc", f"balanced enough: the minority class is {minority:.1%} of the rows"
    if task == "multiclass":
        return "f1_macro", "multiclass: every class counts equally"
    return "rmse", "regression"
