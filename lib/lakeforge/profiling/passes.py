"""The EDA profile's Spark aggregations: THREE passes over the data, each one aggregation whose
result is bounded by the number of columns, bins and levels (nothing row-level reaches the
driver). Pure steps: a DataFrame in, plain values or a small pandas frame out; no table reads or
writes (lakeforge.profiling.eda calls them in order and interprets their results).

The input of every pass is ``project``'s projection of the data: column ``c<i>`` holds the i-th profiled column
(numbers as doubles, levels as text), ``b<i>`` flags blanks / non-numbers of a text number,
``__t`` is the target as text and ``__tn`` as a double (a numeric target).

1. ``summary_pass``, one global aggregation, per column: rows, non-null counts, approximate
   distinct counts (DataSketches HLL ``hll_sketch_agg``, about 1 % error; exact below 11
   values), 100 approximate percentiles (``percentile_approx``: min, quartiles, max, decile bins,
   rank buckets), top values (``approx_top_k``: exact while a column has at most 10,000 distinct
   values) and the target's classes (and its moments and percentiles when numeric).
2. ``grouped_pass``, one grouped aggregation over an exploded copy of each row: equal-width
   histograms of the numeric columns, the sums of their powers (mean, standard deviation,
   skewness), the target rate (or mean, or class counts) per decile bin of each numeric column
   and per level of each categorical column with at most ``LEVELS_MAX`` levels, the contingency
   table of every pair of categorical columns with at most ``PAIR_LEVELS_MAX`` levels (Cramér's
   V), and the IQR outliers (below Q1 - 1.5 IQR or above Q3 + 1.5 IQR).
3. ``correlation_pass``, one Gram matrix (mllib RowMatrix, a treeAggregate in the JVM) of each
   row's vector [1, x, x², present, rank, rank²] over the numeric columns and the target: Pearson
   and Spearman correlations of every pair over the rows where both are present (as pandas).
   Ranks are approximate: each value is replaced by the middle of its percentile bucket from
   pass 1 (a Bucketizer), which is its exact mid-rank when a column has fewer than 100 distinct
   values, and within the 1 % bucket width otherwise.

Pass 2 needs pass 1's quartiles and bins, and pass 3 its percentiles and means; pass 3 needs
several columns of the same row at once, so it cannot be part of the grouped pass 2. Hence three
passes, whatever the number of columns; the driver receives one row, the groups of pass 2
(bounded by columns x bins x levels) and a matrix of (5 x numeric columns + 1)² numbers.
"""

from __future__ import annotations

import math

import pandas as pd
from pyspark.ml.feature import Bucketizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType, StringType

from lakeforge.core.sketches import approx_distinct
from lakeforge.core.sql import q
from lakeforge.profiling.frame import MAX_CLASSES
from lakeforge.profiling.result import ColumnProfile

PASSES = 3
GRID = 100               # percentiles 1..100 % (quartiles, decile bins, rank buckets)
ACCURACY = 1_000         # percentile_approx: rank error at most 0.1 % of the rows (buckets are 1 %)
HIST_BINS = 20
TARGET_BINS = 10         # numeric columns: target rate / mean per decile bin
TOP_K = 10
TOP_TRACKED = 10_000     # approx_top_k's sketch size: exact below this many distinct values
TOP_TRACKED_NUMERIC = 1_000  # numbers: top values matter when there are few (a cheaper sketch)
LEVELS_MAX = 1_000       # categoricals with more levels get top values only (as frame's leakage check)
PAIR_LEVELS_MAX = 50     # Cramér's V between categoricals with at most this many levels ...
PAIR_COLUMNS_MAX = 20    # ... and among at most this many of them (the lowest-cardinality ones)
GROUP_COLUMNS = ["k", "i", "b", "q", "o", "v", "w", "t", "n", "ny", "sy", "syy", "s1", "s2", "s3"]


# ---------------------------------------------------------------------------------------------
# The projection every pass reads
# ---------------------------------------------------------------------------------------------


def project(df: DataFrame, roles: dict[str, tuple[str, str]], target: str) -> tuple[list[ColumnProfile], DataFrame, bool]:
    """(a ColumnProfile per feature, the projection every pass reads, whether the target is
    numeric). The projection: numbers as doubles (NaN -> null), levels as text (its columns:
    see the module doc)."""
    fields = {f.name: f.dataType for f in df.schema.fields}
    cols: list[ColumnProfile] = []
    proj = []
    for i, name in enumerate(c for c in df.columns if c != target):
        role, reason = roles[name]
        t = fields[name]
        cols.append(ColumnProfile(name, t.simpleString(), role, reason))
        src = F.col(q(name))
        if role == "numeric":
            as_num = src.cast("double") if isinstance(t, NumericType) else F.expr(f"try_cast({q(name)} AS DOUBLE)")
            proj.append(F.when(~F.isnan(as_num), as_num).alias(f"c{i}"))
            if isinstance(t, StringType):  # 1: blank, 2: not a number
                blank = F.trim(src) == ""
                proj.append(F.when(blank, 1).when(src.isNotNull() & as_num.isNull(), 2).alias(f"b{i}"))
        elif role in ("categorical", "text"):
            proj.append(src.cast("string").alias(f"c{i}"))
        elif role == "datetime":
            is_text = isinstance(t, StringType)
            proj.append((F.expr(f"try_cast({q(name)} AS TIMESTAMP)") if is_text else src).alias(f"c{i}"))
        elif role in ("key", "id"):
            proj.append(src.alias(f"c{i}"))
        else:  # unsupported types: nulls only
            proj.append(src.isNull().alias(f"c{i}"))
    target_numeric = isinstance(fields[target], NumericType)
    proj.append(F.col(q(target)).cast("string").alias("__t"))
    if target_numeric:
        tn = F.col(q(target)).cast("double")
        proj.append(F.when(~F.isnan(tn), tn).alias("__tn"))
    return cols, df.select(*proj), target_numeric


# ---------------------------------------------------------------------------------------------
# Pass 1: counts, percentiles, distinct counts, top values, the target's classes
# ---------------------------------------------------------------------------------------------


def summary_pass(base: DataFrame, cols: list[ColumnProfile], target_numeric: bool) -> dict:
    """Pass 1 as one row (a dict): ``rows``; per column i ``n<i>`` (non-null), ``d<i>`` (distinct),
    ``pct<i>`` (0 %, 1 %, ..., 100 %), ``top<i>``, ``blank<i>`` / ``bad<i>`` (text numbers),
    ``len<i>`` (text), ``min<i>`` / ``max<i>`` (datetimes), ``nulls<i>`` (excluded columns); the
    target's ``tn``, ``td``, ``tclasses`` and, when numeric, ``tfrac``, ``tmean``, ``tstd``,
    ``tskew``, ``tmin``, ``tmax``, ``tnn``, ``tdn``, ``tpct``."""
    grid = [k / GRID for k in range(1, GRID + 1)]
    aggs = [F.count(F.lit(1)).alias("rows")]
    for i, c in enumerate(cols):
        aggs += _column_summary(c, i, grid, f"b{i}" in base.columns)
    aggs += [F.count(F.col("__t")).alias("tn"), _distinct("__t", "td"),
             F.expr(f"approx_top_k(__t, {MAX_CLASSES + 2}, {TOP_TRACKED})").alias("tclasses")]
    if target_numeric:
        tn = F.col("__tn")
        aggs += [F.max(F.when(tn != F.floor(tn), tn)).alias("tfrac"), F.avg(tn).alias("tmean"), F.stddev_samp(tn).alias("tstd"),
                 F.skewness(tn).alias("tskew"), F.min(tn).alias("tmin"), F.max(tn).alias("tmax"), F.count(tn).alias("tnn"),
                 _distinct("__tn", "tdn"), F.percentile_approx(tn, grid, ACCURACY).alias("tpct")]
    return base.agg(*aggs).first().asDict()


def _column_summary(c: ColumnProfile, i: int, grid: list[float], has_flag: bool) -> list[Column]:
    x = F.col(f"c{i}")
    if c.role == "excluded":
        return [F.count(F.when(x, 1)).alias(f"nulls{i}")]
    aggs = [F.count(x).alias(f"n{i}"), _distinct(f"c{i}", f"d{i}")]
    if c.role == "numeric":
        # min and max are the 0 % and 100 % percentiles (exact in Spark's quantile summary);
        # mean, std and skew come from sums in pass 2 (cheaper there than as aggregates here)
        aggs += [F.percentile_approx(x, [0.0, *grid], ACCURACY).alias(f"pct{i}"),
                 _top(f"c{i}", f"top{i}", TOP_TRACKED_NUMERIC)]
        if has_flag:
            aggs += [F.count(F.when(F.col(f"b{i}") == 1, 1)).alias(f"blank{i}"),
                     F.count(F.when(F.col(f"b{i}") == 2, 1)).alias(f"bad{i}")]
    elif c.role in ("categorical", "text"):
        aggs.append(_top(f"c{i}", f"top{i}"))
        if c.role == "text":
            aggs.append(F.avg(F.length(x)).alias(f"len{i}"))
    elif c.role == "datetime":
        aggs += [F.min(x).cast("string").alias(f"min{i}"), F.max(x).cast("string").alias(f"max{i}")]
    return aggs


def _distinct(column: str, alias: str):
    """Approximate distinct count (lakeforge.core.sketches: DataSketches HLL, not Spark's
    approx_count_distinct, measured 15 times slower at a comparable 2 % error)."""
    return approx_distinct(F.col(column)).alias(alias)


def _top(column: str, alias: str, tracked: int = TOP_TRACKED):
    # one more than shown: approx_top_k counts null as an item
    return F.expr(f"approx_top_k({column}, {TOP_K + 1}, {tracked})").alias(alias)


# ---------------------------------------------------------------------------------------------
# Pass 2: histograms, target per bin / level, categorical pairs, IQR outliers, moments
# ---------------------------------------------------------------------------------------------


def grouped_columns(cols: list[ColumnProfile]) -> tuple[list, list, list]:
    """The columns pass 2 covers, from pass 1's numbers: (numeric columns with a range, columns
    with at most LEVELS_MAX levels, categorical columns paired for Cramér's V)."""
    order = {c.name: i for i, c in enumerate(cols)}
    live = [c for c in cols if c.role == "numeric" and c.count and c.max is not None and c.max > c.min]
    levels = [c for c in cols if c.role in ("categorical", "text") and c.count and c.distinct <= LEVELS_MAX]
    pair_cols = sorted([c for c in cols if c.role == "categorical" and 2 <= c.distinct <= PAIR_LEVELS_MAX],
                       key=lambda c: (c.distinct, order[c.name]))[:PAIR_COLUMNS_MAX]
    return live, levels, sorted(pair_cols, key=lambda c: order[c.name])


def grouped_pass(base: DataFrame, cols: list[ColumnProfile], columns: tuple[list, list, list],
                 bins: dict[str, list[float]], task: str) -> tuple[pd.DataFrame, dict[int, tuple[str, str]], bool]:
    """Pass 2 over ``columns`` (``grouped_columns``'s three lists): (the groups as pandas, with
    the GROUP_COLUMNS; {pair number: (column a, column b)}; whether the pass ran).

    A group: kind ``k`` (1 numeric value, 2 level, 3 pair of levels), column or pair ``i``,
    histogram bin ``b``, decile bin ``q``, outlier side ``o``, level ``v``, second level ``w``,
    class ``t``; its rows ``n``, numeric-target count, sum and sum of squares ``ny``, ``sy``,
    ``syy``, and the sums of (value - median)^1..3 ``s1``, ``s2``, ``s3``."""
    live, levels, pair_cols = columns
    idx = {c.name: i for i, c in enumerate(cols)}
    frame2 = _bucketize(base, {f"c{idx[c.name]}": bins[c.name] for c in live}, "q")
    structs, pair_index = _grouped_elements(frame2, idx, columns, task)
    groups = pd.DataFrame(columns=GROUP_COLUMNS)
    if not structs:
        return groups, pair_index, False
    g = (frame2.select(F.explode(F.array(*structs)).alias("s")).where(F.col("s").isNotNull()).select("s.*")
         .groupBy("k", "i", "b", "q", "o", "v", "w", "t")
         .agg(F.count(F.lit(1)).alias("n"), F.count("y").alias("ny"), F.sum("y").alias("sy"), F.sum(F.col("y") * F.col("y")).alias("syy"),
              F.sum("x").alias("s1"), F.sum(F.col("x") * F.col("x")).alias("s2"),
              F.sum(F.col("x") * F.col("x") * F.col("x")).alias("s3")))
    return pd.DataFrame([r.asDict() for r in g.collect()], columns=groups.columns), pair_index, True


def _grouped_elements(frame2: DataFrame, idx: dict[str, int], columns: tuple[list, list, list], task: str):
    """(pass 2's elements of each row, {pair number: (column a, column b)})."""
    live, levels, pair_cols = columns
    y_t = F.col("__t") if task != "regression" else F.lit(None).cast("string")
    y_n = F.col("__tn") if task == "regression" else F.lit(None).cast("double")
    structs = []
    for c in live:
        i = idx[c.name]
        x = F.col(f"c{i}")
        width = (c.max - c.min) / HIST_BINS
        hbin = F.least(F.lit(HIST_BINS - 1), F.floor((x - F.lit(c.min)) / F.lit(width))).cast("int")
        qbin = F.col(f"q_c{i}").cast("int") if f"q_c{i}" in frame2.columns else F.lit(0)
        side = F.when(x < F.lit(c.iqr_low), 1).when(x > F.lit(c.iqr_high), 2).otherwise(0)
        # one element per value: histogram bin, decile bin, outlier side (0 none, 1 low, 2 high)
        structs.append(F.when(x.isNotNull(), _element(1, i, b=hbin, t=y_t, y=y_n, q=qbin, o=side, x=x - F.lit(c.median))))
    for c in levels:
        i = idx[c.name]
        structs.append(_element(2, i, v=F.col(f"c{i}"), t=y_t, y=y_n))
    pair_index = {}
    for m, (a, b) in enumerate(pairs(pair_cols)):
        pair_index[m] = (a.name, b.name)
        xa, xb = F.col(f"c{idx[a.name]}"), F.col(f"c{idx[b.name]}")
        structs.append(F.when(xa.isNotNull() & xb.isNotNull(), _element(3, m, v=xa, w=xb)))
    return structs, pair_index


_ELEMENT_FIELDS = (("b", "int"), ("q", "int"), ("o", "int"), ("v", "string"), ("w", "string"), ("t", "string"),
                   ("y", "double"), ("x", "double"))


def _element(kind: int, i: int, **values) -> Column:
    """One element of pass 2's exploded rows: kind ``k`` (1 numeric value, 2 level, 3 pair of
    levels), column or pair ``i``, and by name (absent: null): histogram bin ``b``, decile bin
    ``q``, outlier side ``o``, level ``v``, second level ``w``, class ``t``, numeric target ``y``,
    value minus the column's median ``x`` (for the moments)."""
    def lit(value, typ):
        return value if isinstance(value, Column) else F.lit(value).cast(typ)

    return F.struct(F.lit(kind).cast("int").alias("k"), F.lit(i).cast("int").alias("i"),
                    *[lit(values.get(name), typ).alias(name) for name, typ in _ELEMENT_FIELDS])


def decile_edges(pct: list[float] | None, bins: int, lowest: float) -> list[float]:
    """Bucketizer splits at the 1/bins quantiles (ties merged; no empty first bin)."""
    if not pct:
        return []
    step = GRID // bins
    inner = sorted({pct[k * step - 1] for k in range(1, bins)} - {lowest})
    return [-math.inf, *inner, math.inf]


# ---------------------------------------------------------------------------------------------
# Pass 3: Pearson and Spearman (approximate ranks) of every pair, from one Gram matrix
# ---------------------------------------------------------------------------------------------


def correlation_pass(base: DataFrame, terms: list[tuple]) -> tuple[dict, dict]:
    """({(a, b): Pearson}, {(a, b): Spearman}) of every pair of ``terms`` (name, column, mean,
    percentiles), each over the rows where both are present (as pandas), from ONE Gram matrix.

    Each row becomes the vector [1, x, x², present, r, r²] over all terms (x centred by its mean,
    r its approximate rank centred by 0.5, both 0 when missing); its Gram matrix (the sums of all
    products, mllib's RowMatrix: one treeAggregate of BLAS updates in the JVM) holds, for every
    pair, the count of rows with both present, the sums and sums of squares of each over those
    rows, and the sum of products. Hundreds of SQL ``corr`` aggregates instead measured 5-15 times
    slower (no code generation with that many aggregation buffers).
    """
    from pyspark.ml.functions import array_to_vector
    from pyspark.mllib.linalg.distributed import RowMatrix
    from pyspark.mllib.util import MLUtils

    k = len(terms)
    framed, items = _gram_items(base, terms)
    vectors = MLUtils.convertVectorColumnsFromML(framed.select(array_to_vector(F.array(*items)).alias("v")), "v")
    g = RowMatrix(vectors, 0, len(items)).computeGramianMatrix().toArray()
    pearson, spearman = {}, {}
    for i in range(k):
        for j in range(i + 1, k):
            pair = (terms[i][0], terms[j][0])
            pearson[pair] = _gram_correlation(g, k, i, j, 1, 1 + k)
            spearman[pair] = _gram_correlation(g, k, i, j, 1 + 3 * k, 1 + 4 * k)
    return pearson, spearman


def _gram_items(base: DataFrame, terms: list[tuple]) -> tuple[DataFrame, list[Column]]:
    """(``base`` with each term and its rank bucket, the items of each row's vector)."""
    rank_splits = {name: _rank_splits(pct) for name, _x, _m, pct in terms}
    names = {name: f"__g{j}" for j, (name, *_r) in enumerate(terms)}
    framed = base.select("*", *[x.alias(names[name]) for name, x, _m, _p in terms])
    framed = _bucketize(framed, {names[n]: sp for n, (sp, _mids) in rank_splits.items()}, "k")
    xs, ranks = [], []
    for name, _x, mean, _pct in terms:
        x = F.col(names[name])
        xs.append(x - F.lit(float(mean or 0.0)))
        bcol = f"k_{names[name]}"
        mids = rank_splits[name][1]
        if bcol in framed.columns:
            r = F.try_element_at(F.array(*[F.lit(m) for m in mids]), F.col(bcol).cast("int") + 1)
        elif mids:  # one bucket: a constant rank
            r = F.when(x.isNotNull(), F.lit(0.5))
        else:  # the binary target's indicator is its own rank
            r = x
        ranks.append(r - F.lit(0.5))
    zero = F.lit(0.0)
    items = [F.lit(1.0)]
    items += [F.coalesce(x, zero) for x in xs]
    items += [F.coalesce(x * x, zero) for x in xs]
    items += [F.col(names[name]).isNotNull().cast("double") for name, *_r in terms]
    items += [F.coalesce(r, zero) for r in ranks]
    items += [F.coalesce(r * r, zero) for r in ranks]
    return framed, items


def _gram_correlation(g, k: int, i: int, j: int, x: int, x2: int) -> float | None:
    """The correlation of terms i and j over the rows where both are present, from the Gram
    matrix ``g`` of ``k`` terms (their values at offset ``x``, squares at ``x2``)."""
    m = 1 + 2 * k
    n, si, sj = g[m + i, m + j], g[x + i, m + j], g[x + j, m + i]
    sii, sjj, sij = g[x2 + i, m + j], g[x2 + j, m + i], g[x + i, x + j]
    vi, vj = n * sii - si * si, n * sjj - sj * sj
    if n < 2 or vi <= 0 or vj <= 0:
        return None
    return max(-1.0, min(1.0, float((n * sij - si * sj) / math.sqrt(vi * vj))))


def _rank_splits(pct: list[float] | None) -> tuple[list[float], list[float]]:
    """(Bucketizer splits, middle rank of each bucket) from the percentile grid.

    percentile_approx(p) is the smallest value v with CDF(v) >= p, so a distinct value u first
    appears at the first grid point above CDF(u-): the bucket [u, next) spans ranks from there to
    the next value's first grid point; its middle stands for every value in it (ties share it).
    """
    if not pct:
        return [], []
    values, first = [], []
    for k, v in enumerate(pct, start=1):
        if not values or v > values[-1]:
            values.append(v)
            first.append(k / GRID)
    first.append(1 + 1 / GRID)
    mids = [(first[j] + first[j + 1]) / 2 for j in range(len(values))]
    return [-math.inf, *values[1:], math.inf], mids


# ---------------------------------------------------------------------------------------------
# Shared
# ---------------------------------------------------------------------------------------------


def _bucketize(df: DataFrame, splits: dict[str, list[float]], prefix: str) -> DataFrame:
    """Add ``<prefix>_<column>``: the index of each value's bucket (nulls stay null)."""
    usable = {c: s for c, s in splits.items() if len(s) >= 3}
    if not usable:
        return df
    cols = list(usable)
    return Bucketizer(splitsArray=[usable[c] for c in cols], inputCols=cols, outputCols=[f"{prefix}_{c}" for c in cols],
                      handleInvalid="keep").transform(df)


def pairs(items: list) -> list[tuple]:
    """Every pair (a, b) of ``items`` with a before b."""
    return [(items[a], items[b]) for a in range(len(items)) for b in range(a + 1, len(items))]
