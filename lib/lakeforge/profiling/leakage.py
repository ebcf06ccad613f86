"""Leakage suspects: features that give the target away (they determine it on their own, or are
named after it). Two checks, side by side here because they answer the same question at two
different moments, from different inputs, with different thresholds; both flag a column whose
name contains the target's (``named_after_target``).

``card_leakage``, for the problem card (lakeforge frame, before any pipeline config exists):
    runs ONE Spark query of its own on the raw data, over the card's columns (key, ID-like and
    excluded columns skipped). A numeric target: a numeric column with |Pearson r| > 0.98. A
    class target: a categorical column (at most ``LEAKAGE_MAX_LEVELS`` levels) whose levels of
    2+ rows cover half the rows and hold a single class in more than 99 % of them; a datetime
    column with some nulls the same way, its level being whether it is empty (a cancellation
    date that only churners have). The card excludes the suspects from the features. Messages
    start with the column's name: ``"status: its levels determine the target in 100.0% of the
    rows"``.

``eda_leakage``, for the EDA profile (lakeforge profile): no Spark; reads the measures the
    profile already computed for each ColumnProfile (key, ID-like, excluded and datetime columns
    skipped). A binary target: a numeric column whose decile bins have a ROC-AUC of at least
    ``LEAKAGE_AUC``; a class target: a non-numeric column whose levels have a Goodman-Kruskal
    lambda, or any column with a Cramér's V (levels or decile bins), of at least
    ``LEAKAGE_THRESHOLD``; a numeric target: a correlation ratio or |Pearson r| of at least
    0.98; a binary or numeric target: |Spearman| of at least 0.98. It only reports (and
    sets each suspect's ``leakage``); messages name the measure: ``{"column": "status",
    "reason": "its levels determine the target (Goodman-Kruskal lambda 1.000)"}``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from lakeforge.profiling.card import Column
    from lakeforge.profiling.result import ColumnProfile

LEAKAGE_MAX_LEVELS = 1000    # card: categorical columns with more levels are not checked
LEAKAGE_THRESHOLD = 0.95     # EDA profile: lambda or Cramér's V with a class target
LEAKAGE_AUC = 0.99           # EDA profile: ROC-AUC of a numeric column's decile bins (binary target)


def named_after_target(column: str, target: str) -> bool:
    """Whether ``column``'s name contains the target's (letters and digits only, ignoring case;
    a target name of 3+ such characters)."""
    base = re.sub(r"[^a-z0-9]", "", target.lower())
    return len(base) > 2 and base in re.sub(r"[^a-z0-9]", "", column.lower())


def card_leakage(df: DataFrame, target: str, columns: list[Column], task: str, rows: int) -> list[str]:
    """Columns that predict the target almost perfectly on their own, or are named after it.
    One Spark query for all columns: the correlations of the numeric ones (regression), or for
    each categorical one the share of rows whose level has a single target value (levels of 2+
    rows; every (column, level, target) count at once, each row exploded into one pair per column);
    a datetime column's level is whether it is empty (a cancellation date that only churners have)."""
    found: dict[str, str] = {}
    numeric, categorical = [], []
    for c in columns:
        if c.role in ("key", "id", "excluded"):
            continue
        if named_after_target(c.name, target):
            found[c.name] = f"{c.name}: its name contains the target's"
        elif task == "regression" and c.role == "numeric":
            numeric.append(c.name)
        elif task != "regression" and c.role == "categorical" and 1 < c.distinct <= LEAKAGE_MAX_LEVELS:
            categorical.append(c.name)
        elif task != "regression" and c.role == "datetime" and 0 < c.nulls < rows:
            categorical.append(c.name)
    if numeric:
        found.update(_correlated(df, target, numeric))
    if categorical:
        dates = {c.name for c in columns if c.role == "datetime"}
        found.update(_pure_levels(df, target, categorical, dates, rows))
    return [found[c.name] for c in columns if c.name in found]


def _correlated(df: DataFrame, target: str, numeric: list[str]) -> dict[str, str]:
    y = F.col(f"`{target}`").cast("double")
    corr = df.select(*[F.corr(F.expr(f"try_cast(`{c}` AS DOUBLE)"), y) for c in numeric]).first()
    return {c: f"{c}: correlation {r:+.3f} with the target" for c, r in zip(numeric, corr) if r is not None and abs(r) > 0.98}


def _pure_levels(df: DataFrame, target: str, categorical: list[str], dates: set[str], rows: int) -> dict[str, str]:
    found = {}
    level = {c: F.col(f"`{c}`").isNull().cast("string") if c in dates else F.col(f"`{c}`").cast("string")
             for c in categorical}
    pairs = F.explode(F.array(*[F.struct(F.lit(i).alias("i"), level[c].alias("v"))
                                for i, c in enumerate(categorical)])).alias("p")
    counts = df.select(F.col(f"`{target}`").alias("y"), pairs).groupBy("p.i", "p.v", "y").count()
    levels = counts.groupBy("i", "v").agg(F.max("count").alias("top"), F.sum("count").alias("n"))
    purity = levels.where(F.col("n") >= 2).groupBy("i").agg(F.sum("top").alias("top"), F.sum("n").alias("n"))
    for r in purity.collect():
        if r["n"] >= 0.5 * rows and r["top"] / r["n"] > 0.99:
            c = categorical[r["i"]]
            what = "whether it is empty determines" if c in dates else "its levels determine"
            found[c] = f"{c}: {what} the target in {r['top'] / r['n']:.1%} of the rows"
    return found


def eda_leakage(cols: list[ColumnProfile], target: str, task: str) -> list[dict]:
    """Features that (almost) determine the target on their own, or are named after it, by the
    measures of the EDA profile; sets each suspect's ``leakage``."""
    out = []
    for c in cols:
        if c.role in ("key", "id", "excluded", "datetime"):
            continue
        reason = "its name contains the target's" if named_after_target(c.name, target) else _measured_leak(c, task)
        if reason:
            c.leakage = reason
            out.append({"column": c.name, "reason": reason})
    return out


def _measured_leak(c: ColumnProfile, task: str) -> str | None:
    if task == "binary" and c.role == "numeric" and c.predictive is not None and c.predictive >= LEAKAGE_AUC:
        return f"its decile bins separate the classes (binned ROC-AUC {c.predictive:.3f})"
    if task != "regression" and c.role != "numeric" and c.predictive is not None and c.predictive >= LEAKAGE_THRESHOLD:
        return f"its levels determine the target (Goodman-Kruskal lambda {c.predictive:.3f})"
    if task != "regression" and c.association is not None and c.association >= LEAKAGE_THRESHOLD:
        return f"{c.association_measure} {c.association:.3f} with the target"
    if task == "regression" and c.association is not None and abs(c.association) >= 0.98:
        return f"{c.association_measure} {c.association:+.3f} with the target"
    if task in ("binary", "regression") and c.target_spearman is not None and abs(c.target_spearman) >= 0.98:
        return f"Spearman {c.target_spearman:+.3f} with the target"
    return None
