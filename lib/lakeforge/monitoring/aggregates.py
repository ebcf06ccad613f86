"""The Spark side of monitoring: every monitored column of every window summarised in ONE
aggregation (no rows reach the driver, only bins and category counts).

The columns are stacked into (column, bin, category, point, value) rows by one ``explode`` and
grouped with partial (map-side) aggregation; the result has one row per (window, column, bin)
and per (window, column, category): a few thousand rows however many rows are read. Bin indexes
come from ONE Spark ML ``Bucketizer`` over every numeric column before the ``explode`` (a binary
search over the reference's edges in the JVM, no Python; a nested ``CASE`` per column made the
stage's generated code exceed the JVM's 64 KB method limit with ~10 binned columns, so Spark ran
it interpreted, 3-4x slower). lakeforge.monitoring.statistics turns the summaries into drift
statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
from pyspark.ml.feature import Bucketizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.core.sql import q
from lakeforge.monitoring.statistics import CategoryCounts, NumericHist

NULL_BIN = -1


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is summarised: numbers into bins at ``edges`` (or, with ``points``, grouped
    by their exact value: the reference of a column with few distinct values); categories by value."""

    name: str
    numeric: bool
    edges: tuple[float, ...] = ()
    exact: bool = False
    points: bool = False


def bucket(x: Column, edges: tuple[float, ...], lo: int = 0, hi: int | None = None) -> Column:
    """The number of edges below ``x``: bin i is (e[i-1], e[i]]; a binary search as nested CASE.
    For one or a few columns (the streaming query); many columns at once: ``binned``."""
    hi = len(edges) if hi is None else hi
    if lo == hi:
        return F.lit(lo)
    mid = (lo + hi) // 2
    return F.when(x <= F.lit(float(edges[mid])), bucket(x, edges, lo, mid)).otherwise(bucket(x, edges, mid + 1, hi))


def binned(frame: DataFrame, specs: list[ColumnSpec]) -> DataFrame:
    """``frame`` (``_m{i}`` as ``_clean`` makes them) plus ``_b{i}``, the bin of each numeric column
    with edges: the number of edges below the value (bin i is (e[i-1], e[i]], as ``bucket``); null
    for null. Bucketizer's buckets are closed on the left, so it bins -x at the negated edges."""
    idx = [i for i, s in enumerate(specs) if s.numeric and s.edges]
    if not idx:
        return frame
    negated = frame.select("*", *[(-F.col(f"_m{i}")).alias(f"_n{i}") for i in idx])
    # e + 0.0 turns -0.0 into 0.0, so every split at zero is -0.0: the lowest zero in the binary search
    splits = [[-math.inf, *[-(float(e) + 0.0) for e in reversed(specs[i].edges)], math.inf] for i in idx]
    found = Bucketizer(splitsArray=splits, inputCols=[f"_n{i}" for i in idx], outputCols=[f"_j{i}" for i in idx],
                       handleInvalid="keep").transform(negated)
    return found.select(*frame.columns, *[(F.lit(len(specs[i].edges)) - F.col(f"_j{i}").cast("int")).alias(f"_b{i}")
                                          for i in idx])


def _clean(spec: ColumnSpec) -> Column:
    """The column as monitored: numbers as doubles with NaN as null; anything else as text."""
    col = F.col(q(spec.name))
    if not spec.numeric:
        return col.cast("string")
    x = col.cast("double")
    return F.when(F.isnan(x), F.lit(None).cast("double")).otherwise(x)


def _stacked(spec: ColumnSpec, i: int) -> Column:
    x = F.col(f"_m{i}")
    if spec.numeric:
        b = F.when(x.isNull(), F.lit(NULL_BIN)).otherwise(F.col(f"_b{i}") if spec.edges else F.lit(0))
        point = x if spec.points else F.lit(None).cast("double")
        return F.struct(F.lit(i).alias("c"), b.alias("b"), F.lit(None).cast("string").alias("v"),
                        point.alias("p"), x.alias("x"))
    return F.struct(F.lit(i).alias("c"), F.when(x.isNull(), F.lit(NULL_BIN)).otherwise(F.lit(0)).alias("b"),
                    x.alias("v"), F.lit(None).cast("double").alias("p"), F.lit(None).cast("double").alias("x"))


def summary_rows(df: DataFrame, specs: list[ColumnSpec], window: Column | None = None) -> DataFrame:
    """The grouped (window, c, b, v, p) counts, sums, sums of squares, minima and maxima."""
    w = (window if window is not None else F.lit(None).cast("string")).alias("w")
    cleaned = binned(df.select(w, *[_clean(s).alias(f"_m{i}") for i, s in enumerate(specs)]), specs)
    stacked = cleaned.select("w", F.explode(F.array(*[_stacked(s, i) for i, s in enumerate(specs)])).alias("s"))
    return (stacked.select("w", "s.*").groupBy("w", "c", "b", "v", "p")
            .agg(F.count(F.lit(1)).alias("n"), F.sum("x").alias("sx"), F.sum(F.col("x") * F.col("x")).alias("sxx"),
                 F.min("x").alias("lo"), F.max("x").alias("hi")))


def summarise(df: DataFrame, specs: list[ColumnSpec], window: Column | None = None) -> dict:
    """{window value: {column: NumericHist | CategoryCounts}} in one Spark job."""
    rows = summary_rows(df, specs, window).collect()
    by_window: dict = {}
    for r in rows:
        by_window.setdefault(r["w"], {}).setdefault(r["c"], []).append(r)
    return {w: {specs[c].name: build(specs[c], parts) for c, parts in cols.items()} for w, cols in by_window.items()}


def build(spec: ColumnSpec, rows: list) -> NumericHist | CategoryCounts:
    """One column's summary from its grouped rows (see summary_rows)."""
    nulls = sum(int(r["n"]) for r in rows if r["b"] == NULL_BIN)
    values = [r for r in rows if r["b"] != NULL_BIN]
    if not spec.numeric:
        return CategoryCounts({r["v"]: int(r["n"]) for r in values}, nulls)
    lo = min((r["lo"] for r in values), default=None)
    hi = max((r["hi"] for r in values), default=None)
    sumsq = float(sum(r["sxx"] for r in values))
    if spec.points:  # the reference of a column with few values: its distinct values are the edges
        values.sort(key=lambda r: r["p"])
        edges = np.array([r["p"] for r in values], dtype=float)
        counts = np.array([int(r["n"]) for r in values] + [0])
        sums = np.array([float(r["sx"]) for r in values] + [0.0])
        return NumericHist(edges, counts, sums, nulls, sumsq, lo, hi, exact=True)
    k = len(spec.edges)
    counts, sums = np.zeros(k + 1, dtype=np.int64), np.zeros(k + 1)
    for r in values:
        counts[r["b"]] += int(r["n"])
        sums[r["b"]] += float(r["sx"])
    return NumericHist(np.array(spec.edges, dtype=float), counts, sums, nulls, sumsq, lo, hi, exact=spec.exact)


def empty_like(spec: ColumnSpec) -> NumericHist | CategoryCounts:
    if not spec.numeric:
        return CategoryCounts()
    k = len(spec.edges)
    return NumericHist(np.array(spec.edges, dtype=float), np.zeros(k + 1, dtype=np.int64), np.zeros(k + 1),
                       exact=spec.exact)


def edge_pass(df: DataFrame, numeric: list[str], levels: int, max_points: int) -> dict[str, tuple[tuple[float, ...], bool]]:
    """ONE aggregation: per numeric column, whether it has at most ``max_points`` distinct values
    (approx_count_distinct) and otherwise its quantile edges at 1/levels .. (levels-1)/levels."""
    if not numeric:
        return {}
    grid = [i / levels for i in range(1, levels)]
    aggs = []
    for i, c in enumerate(numeric):
        x = F.col(q(c)).cast("double")
        x = F.when(F.isnan(x), F.lit(None).cast("double")).otherwise(x)
        aggs += [F.approx_count_distinct(x).alias(f"d{i}"), F.percentile_approx(x, grid, 10_000).alias(f"q{i}")]
    row = df.agg(*aggs).first()
    out = {}
    for i, c in enumerate(numeric):
        few = row[f"d{i}"] <= max_points
        edges = tuple(sorted({float(v) for v in (row[f"q{i}"] or [])}))
        out[c] = (edges, few)
    return out
