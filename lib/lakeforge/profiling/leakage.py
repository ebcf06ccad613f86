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
    date that only churners have); a numeric column the same way, its level being its quantile
    bin (``LEAKAGE_BINS``; one more pass for the quantiles). The card excludes the suspects from the features. Messages
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

import math
import re
from typing import TYPE_CHECKING

from pyspark.ml.feature import Bucketizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from lakeforge.profiling.card import Column
    from lakeforge.profiling.result import ColumnProfile

LEAKAGE_MAX_LEVELS = 1000    # card: categorical columns with more levels are not checked
LEAKAGE_BINS = 100           # card: a numeric column's quantile bins are its levels (class target)
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
    numeric, levels, binned = [], {}, []
    for c in columns:
        if c.role in ("key", "id", "excluded"):
            continue
        if named_after_target(c.name, target):
            found[c.name] = f"{c.name}: its name contains the target's"
        elif task == "regression" and c.role == "numeric":
            numeric.append(c.name)
        elif task != "regression" and c.role == "categorical" and 1 < c.distinct <= LEAKAGE_MAX_LEVELS:
            levels[c.name] = (F.col(f"`{c.name}`").cast("string"), "its levels determine")
        elif task != "regression" and c.role == "datetime" and 0 < c.nulls < rows:
            levels[c.name] = (F.col(f"`{c.name}`").isNull().cast("string"), "whether it is empty determines")
        elif task != "regression" and c.role == "numeric" and c.distinct > 2:
            binned.append(c.name)
    if numeric:
        found.update(_correlated(df, target, numeric))
    if binned:
        df, bins = _quantile_bins(df, binned)
        levels.update({c: (F.col(b).cast("string"), f"its values ({LEAKAGE_BINS} quantile bins) determine")
                       for c, b in bins.items()})
    if levels:
        found.update(_pure_levels(df, target, levels, rows))
    return [found[c.name] for c in columns if c.name in found]


def _quantile_bins(df: DataFrame, numeric: list[str]) -> tuple[DataFrame, dict[str, str]]:
    """``df`` with each numeric column's quantile bin (LEAKAGE_BINS, from one approxQuantile pass;
    null and NaN: a bin of their own), and {column: its bin column}. A class target that one bin
    of a number determines (a date of death as a day count, a birth weight under 2,500 g) is a leak."""
    # (a text column of numbers is numeric too: Cars93's Cylinders, 3 to 8 and one 'rotary')
    xs = df.select("*", *[F.expr(f"try_cast(`{c}` AS DOUBLE)").alias(f"__x{i}") for i, c in enumerate(numeric)])
    probs = [k / LEAKAGE_BINS for k in range(1, LEAKAGE_BINS)]
    cuts = xs.approxQuantile([f"__x{i}" for i in range(len(numeric))], probs, 0.001)
    splits = {i: [-math.inf, *sorted({x for x in cut if math.isfinite(x)}), math.inf] for i, cut in enumerate(cuts)}
    splits = {i: s for i, s in splits.items() if len(s) > 2}  # an empty column has no quantiles
    if not splits:
        return df, {}
    binned = Bucketizer(splitsArray=list(splits.values()), inputCols=[f"__x{i}" for i in splits],
                        outputCols=[f"__bin{i}" for i in splits], handleInvalid="keep").transform(xs)
    return binned, {numeric[i]: f"__bin{i}" for i in splits}


def _correlated(df: DataFrame, target: str, numeric: list[str]) -> dict[str, str]:
    y = F.col(f"`{target}`").cast("double")
    corr = df.select(*[F.corr(F.expr(f"try_cast(`{c}` AS DOUBLE)"), y) for c in numeric]).first()
    return {c: f"{c}: correlation {r:+.3f} with the target" for c, r in zip(numeric, corr) if r is not None and abs(r) > 0.98}


def _pure_levels(df: DataFrame, target: str, levels: dict[str, tuple[Column, str]], rows: int) -> dict[str, str]:
    """{column: why} for the columns whose levels (``levels``: {column: (its level, the verb of the
    message)}) of 2+ rows cover half the rows and hold a single class in more than 99 % of them."""
    found = {}
    names = list(levels)
    pairs = F.explode(F.array(*[F.struct(F.lit(i).alias("i"), levels[c][0].alias("v"))
                                for i, c in enumerate(names)])).alias("p")
    counts = df.select(F.col(f"`{target}`").alias("y"), pairs).groupBy("p.i", "p.v", "y").count()
    grouped = counts.groupBy("i", "v").agg(F.max("count").alias("top"), F.sum("count").alias("n"))
    purity = grouped.where(F.col("n") >= 2).groupBy("i").agg(F.sum("top").alias("top"), F.sum("n").alias("n"))
    for r in purity.collect():
        if r["n"] >= 0.5 * rows and r["top"] / r["n"] > 0.99:
            c = names[r["i"]]
            found[c] = f"{c}: {levels[c][1]} the target in {r['top'] / r['n']:.1%} of the rows"
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
