"""EDA profile: per-column statistics, the relation of each feature to the target, correlations
and leakage suspects, computed with Spark aggregations in THREE passes over the data.

Nothing row-level reaches the driver: every pass is one aggregation whose result is bounded by
the number of columns, bins and levels, and the plots are drawn from those aggregates.

Column roles come from the pipeline config (``features.numeric`` / ``features.categorical``, the
key, the target) and, for every other column, from lakeforge.profiling.frame's detector run on the first
``ROLE_SAMPLE_ROWS`` rows (a bounded read, not a pass). Text holding numbers (Telco's
``TotalCharges``, blank for new customers) is profiled as numbers; blanks count as missing.

The passes (the input is cached in memory by the first, so a CSV is parsed once):

1. One global aggregation, per column: rows, non-null counts, approximate distinct counts
   (DataSketches HLL ``hll_sketch_agg``, about 1 % error; exact below 11 values), mean, standard deviation, skewness, min, max, 100
   approximate percentiles (``percentile_approx``: quartiles, decile bins, rank buckets), top
   values (``approx_top_k``: exact while a column has at most 10,000 distinct values) and the
   target's classes.
2. One grouped aggregation over an exploded copy of each row: equal-width histograms of the
   numeric columns, the target rate (or mean, or class counts) per decile bin of each numeric
   column and per level of each categorical column with at most ``LEVELS_MAX`` levels, the
   contingency table of every pair of categorical columns with at most ``PAIR_LEVELS_MAX``
   levels (Cramér's V), and the IQR outliers (below Q1 - 1.5 IQR or above Q3 + 1.5 IQR).
3. One Gram matrix (mllib RowMatrix, a treeAggregate in the JVM) of each row's vector
   [1, x, x², present, rank, rank²] over the numeric columns and the target: Pearson and
   Spearman correlations of every pair over the rows where both are present (as pandas).
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
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pandas as pd
from pyspark.ml.feature import Bucketizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType, StringType

from lakeforge.core.errors import InputDataError
from lakeforge.profiling.frame import MAX_CLASSES, default_positive, frame, infer_task
from lakeforge.core.columns import METADATA_COLUMNS
from lakeforge.core.io import require_columns
from lakeforge.core.sql import q

PASSES = 3
ROLE_SAMPLE_ROWS = 10_000
GRID = 100               # percentiles 1..100 % (quartiles, decile bins, rank buckets)
ACCURACY = 1_000         # percentile_approx: rank error at most 0.1 % of the rows (buckets are 1 %)
DISTINCT_LG_K = 14       # hll_sketch_agg: 2^14 buckets, about 0.8 % relative standard error
HIST_BINS = 20
TARGET_BINS = 10         # numeric columns: target rate / mean per decile bin
TOP_K = 10
TOP_TRACKED = 10_000     # approx_top_k's sketch size: exact below this many distinct values
TOP_TRACKED_NUMERIC = 1_000  # numbers: top values matter when there are few (a cheaper sketch)
LEVELS_MAX = 1_000       # categoricals with more levels get top values only (as frame's leakage check)
LEVELS_SHOWN = 30        # levels listed per column in the target relation
PAIR_LEVELS_MAX = 50     # Cramér's V between categoricals with at most this many levels ...
PAIR_COLUMNS_MAX = 20    # ... and among at most this many of them (the lowest-cardinality ones)
FLAG_THRESHOLD = 0.8
LEAKAGE_THRESHOLD = 0.95
LEAKAGE_AUC = 0.99

Progress = Callable[[str], None]


@dataclass
class ColumnProfile:
    name: str
    dtype: str
    role: str            # numeric | categorical | text | datetime | id | key | target | excluded
    reason: str
    count: int = 0       # non-missing values
    missing: int = 0     # nulls (and blanks of text numbers, NaN of doubles)
    distinct: int = 0    # approximate
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    q1: float | None = None
    median: float | None = None
    q3: float | None = None
    max: float | None = None
    skew: float | None = None
    min_text: str | None = None  # datetime columns
    max_text: str | None = None
    mean_length: float | None = None  # text
    unparsed: int = 0    # text numbers: non-blank values that are not numbers (counted as missing)
    outliers_low: int = 0
    outliers_high: int = 0
    iqr_low: float | None = None
    iqr_high: float | None = None
    percentiles: list[float] | None = None  # 1 %, 2 %, ..., 100 % (percentile_approx)
    top: list[tuple[str, int]] = field(default_factory=list)
    histogram: list[tuple[float, float, int]] = field(default_factory=list)  # (from, to, rows)
    # the target per level / decile bin: {label, rows, rate | mean | shares}
    by_target: list[dict] = field(default_factory=list)
    association: float | None = None   # with the target (see association_measure)
    association_measure: str | None = None
    target_pearson: float | None = None
    target_spearman: float | None = None
    predictive: float | None = None    # how well the column alone predicts a class target:
    predictive_measure: str | None = None  # Goodman-Kruskal lambda, or ROC-AUC of the decile bins
    leakage: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def outliers(self) -> int:
        return self.outliers_low + self.outliers_high


@dataclass
class TargetProfile:
    name: str
    task: str
    positive_class: str | None
    classes: list[tuple[str, int]]   # classification: (class, rows), most frequent first
    missing: int
    rate_name: str                   # "Churn rate" / "mean price" / "class shares"


@dataclass
class ProfileResult:
    rows: int
    target: TargetProfile
    columns: list[ColumnProfile]
    pearson: pd.DataFrame            # numeric columns (+ the target when binary/numeric)
    spearman: pd.DataFrame
    cramers_v: pd.DataFrame          # categorical columns (+ a class target)
    correlations: list[dict]         # long form: column_a, column_b, method, value, flagged
    flagged: list[dict]
    leakage: list[dict]
    warnings: list[str]
    passes: int
    seconds: dict[str, float]
    threshold: float

    def column(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def correlation(self, a: str, b: str, method: str = "pearson") -> float | None:
        for r in self.correlations:
            if r["method"] == method and {r["column_a"], r["column_b"]} == {a, b}:
                return r["value"]
        return None

    def to_dict(self) -> dict:
        """Plain JSON-ready numbers (NaN becomes null)."""
        def matrix(m: pd.DataFrame) -> dict:
            return {"columns": list(m.columns), "values": [[_num(v) for v in row] for row in m.to_numpy().tolist()]}

        return _clean({
            "rows": self.rows, "passes": self.passes, "seconds": self.seconds, "threshold": self.threshold,
            "target": asdict(self.target),
            "columns": [asdict(c) | {"outliers": c.outliers} for c in self.columns],
            "pearson": matrix(self.pearson), "spearman": matrix(self.spearman), "cramers_v": matrix(self.cramers_v),
            "correlations": self.correlations, "flagged": self.flagged, "leakage": self.leakage,
            "warnings": self.warnings,
        })


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------


def column_roles(df: DataFrame, target: str, key: str, numeric: list[str], categorical: list[str]) -> dict[str, tuple[str, str]]:
    """{column: (role, reason)}: the config's lists first, lakeforge.frame's detector for the rest.

    The detector runs on the first ROLE_SAMPLE_ROWS rows only. Its target is a synthetic
    two-valued column: only the column roles are taken from its problem card, so the real
    target's classes (which the first rows may not all show) cannot make it fail.
    """
    roles: dict[str, tuple[str, str]] = {key: ("key", "the pipeline's key"), target: ("target", "the pipeline's target")}
    roles.update({c: ("numeric", "listed as numeric in the pipeline config") for c in numeric})
    roles.update({c: ("categorical", "listed as categorical in the pipeline config") for c in categorical})
    rest = [c for c in df.columns if c not in roles]
    if rest:
        y = "__lakeforge_roles_y"
        sample = df.select(key, *rest).limit(ROLE_SAMPLE_ROWS).withColumn(y, F.pmod(F.monotonically_increasing_id(), F.lit(2)))
        sample = sample.cache()
        try:
            n = sample.count()
            if n == 0:
                raise InputDataError("the input has no rows; nothing to profile")
            if n < 2:  # too few rows to detect anything: by type
                fields = {f.name: f.dataType for f in df.schema.fields}
                for c in rest:
                    roles[c] = ("numeric", "numeric type") if isinstance(fields[c], NumericType) else ("categorical", "not numeric")
                return roles
            card = frame(sample, y, {}, "profile", key)
        finally:
            sample.unpersist()
        for col in card.columns:
            if col.name in rest:
                roles[col.name] = (col.role, col.reason + f" (lakeforge frame, first {ROLE_SAMPLE_ROWS:,} rows)")
    return roles


# ---------------------------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------------------------


def profile(
    df: DataFrame,
    target: str,
    key: str,
    *,
    task: str = "auto",
    positive_class: str | int | bool | None = None,
    numeric: list[str] = (),
    categorical: list[str] = (),
    threshold: float = FLAG_THRESHOLD,
    cache: bool = True,
    what: str = "profile input",
    progress: Progress | None = None,
) -> ProfileResult:
    """Profile ``df`` against ``target`` in three passes (see the module doc)."""
    say = progress or (lambda _msg: None)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    df = df.drop(*[c for c in METADATA_COLUMNS if c in df.columns])
    require_columns(df, [target, key, *numeric, *categorical], what)
    fields = {f.name: f.dataType for f in df.schema.fields}
    say(f"column roles (config, and lakeforge frame on the first {ROLE_SAMPLE_ROWS:,} rows)")
    roles = column_roles(df, target, key, list(numeric), list(categorical))
    seconds["roles"] = _lap(t0)

    # The projection every pass reads: numbers as doubles (NaN -> null), levels as text.
    names = [c for c in df.columns if c != target]
    cols: list[ColumnProfile] = []
    proj = []
    for i, name in enumerate(names):
        role, reason = roles[name]
        t = fields[name]
        cp = ColumnProfile(name, t.simpleString(), role, reason)
        cols.append(cp)
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
    base = df.select(*proj)
    if cache:
        base = base.cache()
    try:
        return _profile(base, cols, target, target_numeric, task, positive_class, threshold, seconds, say, t0)
    finally:
        if cache:
            base.unpersist()


def _profile(base, cols, target, target_numeric, task, positive_class, threshold, seconds, say, t0) -> ProfileResult:
    idx = {c.name: i for i, c in enumerate(cols)}
    num = [c for c in cols if c.role == "numeric"]
    has_flag = set(base.columns)

    # ---- pass 1: counts, moments, percentiles, distinct counts, top values -----------------------
    say(f"pass 1/{PASSES}: counts, moments, percentiles, distinct counts, top values ({len(cols) + 1} columns)")
    t = time.perf_counter()
    grid = [k / GRID for k in range(1, GRID + 1)]
    aggs = [F.count(F.lit(1)).alias("rows")]
    for c in cols:
        i = idx[c.name]
        x = F.col(f"c{i}")
        if c.role == "excluded":
            aggs.append(F.count(F.when(x, 1)).alias(f"nulls{i}"))
            continue
        aggs += [F.count(x).alias(f"n{i}"), _distinct(f"c{i}", f"d{i}")]
        if c.role == "numeric":
            # min and max are the 0 % and 100 % percentiles (exact in Spark's quantile summary);
            # mean, std and skew come from sums in pass 2 (cheaper there than as aggregates here)
            aggs += [F.percentile_approx(x, [0.0, *grid], ACCURACY).alias(f"pct{i}"),
                     _top(f"c{i}", f"top{i}", TOP_TRACKED_NUMERIC)]
            if f"b{i}" in has_flag:
                aggs += [F.count(F.when(F.col(f"b{i}") == 1, 1)).alias(f"blank{i}"),
                         F.count(F.when(F.col(f"b{i}") == 2, 1)).alias(f"bad{i}")]
        elif c.role in ("categorical", "text"):
            aggs.append(_top(f"c{i}", f"top{i}"))
            if c.role == "text":
                aggs.append(F.avg(F.length(x)).alias(f"len{i}"))
        elif c.role == "datetime":
            aggs += [F.min(x).cast("string").alias(f"min{i}"), F.max(x).cast("string").alias(f"max{i}")]
    tcol = F.col("__t")
    aggs += [F.count(tcol).alias("tn"), _distinct("__t", "td"),
             F.expr(f"approx_top_k(__t, {MAX_CLASSES + 2}, {TOP_TRACKED})").alias("tclasses")]
    if target_numeric:
        tn = F.col("__tn")
        aggs += [F.max(F.when(tn != F.floor(tn), tn)).alias("tfrac"), F.avg(tn).alias("tmean"), F.stddev_samp(tn).alias("tstd"),
                 F.skewness(tn).alias("tskew"), F.min(tn).alias("tmin"), F.max(tn).alias("tmax"), F.count(tn).alias("tnn"),
                 _distinct("__tn", "tdn"), F.percentile_approx(tn, grid, ACCURACY).alias("tpct")]
    p1 = base.agg(*aggs).first().asDict()
    passes = 1
    seconds["pass1"] = _lap(t)
    rows = p1["rows"]
    if rows == 0:
        raise InputDataError("the input has no rows; nothing to profile")

    # ---- the target ----------------------------------------------------------------------------
    classes = [(str(r["item"]), int(r["count"])) for r in p1["tclasses"] if r["item"] is not None]
    t_missing = rows - p1["tn"]
    if p1["tn"] == 0:
        raise InputDataError(f"target column {target!r} is empty: all {rows:,} rows are null. "
                             "Check the source, or set 'target' in the pipeline config to the column to predict.")
    distinct = len(classes) if len(classes) <= MAX_CLASSES else int(p1["td"])
    if distinct < 2:
        raise InputDataError(f"target column {target!r} has one value only ({classes[0][0]!r} in all {p1['tn']:,} "
                             "non-null rows): there is nothing to relate the features to. Check the source or the target.")
    if task == "auto":
        try:
            task, _ = infer_task([p1["tfrac"]] if target_numeric and p1.get("tfrac") is not None else [], target_numeric, distinct)
        except InputDataError as exc:
            raise InputDataError(f"target column {target!r}: {exc}") from None
    if task == "regression" and not target_numeric:
        raise InputDataError(f"target column {target!r} is text ({distinct:,} values): it cannot be a regression target")
    positive = _positive(target, classes, positive_class) if task == "binary" else None
    if task == "binary":
        rate_name = f"{target} rate"
    elif task == "regression":
        rate_name = f"mean {target}"
    else:
        rate_name = f"{target} class shares"
    tprof = TargetProfile(target, task, positive, classes if task != "regression" else [], t_missing, rate_name)
    tcp = ColumnProfile(target, "numeric" if target_numeric else "string", "target", "the pipeline's target")
    tcp.count, tcp.missing, tcp.distinct = p1["tn"], t_missing, distinct
    tcp.top = classes[:TOP_K] if task != "regression" else []
    if task == "regression":
        _moments(tcp, {k: p1[f"t{k}"] for k in ("mean", "std", "skew", "min", "max")}, p1["tnn"])
        _percentiles(tcp, [p1["tmin"], *p1["tpct"]] if p1["tpct"] else None)
        tcp.distinct = int(p1["tdn"])

    # ---- column statistics from pass 1 ---------------------------------------------------------
    warnings: list[str] = []
    for c in cols:
        i = idx[c.name]
        if c.role == "excluded":
            c.missing, c.count = p1[f"nulls{i}"], rows - p1[f"nulls{i}"]
            continue
        c.count, c.distinct = p1[f"n{i}"], int(p1[f"d{i}"])
        c.missing = rows - c.count
        if c.role == "numeric":
            _percentiles(c, p1[f"pct{i}"])
            c.unparsed = p1.get(f"bad{i}") or 0
            if c.unparsed:
                c.warnings.append(f"{c.unparsed:,} non-blank values are not numbers (profiled as missing)")
        if c.role in ("numeric", "categorical", "text"):
            items = p1[f"top{i}"]
            c.top = [(_text(r["item"]), int(r["count"])) for r in items if r["item"] is not None][:TOP_K]
            if len(items) <= TOP_K:  # the sketch listed every value (null included): exact
                c.distinct = len(c.top)
        if c.role == "text":
            c.mean_length = p1[f"len{i}"]
        if c.role == "datetime":
            c.min_text, c.max_text = p1[f"min{i}"], p1[f"max{i}"]
        if c.count == 0:
            c.warnings.append("all values are missing")
        elif c.distinct <= 1 and c.role not in ("key", "id"):
            c.warnings.append("constant: one distinct value")
        elif c.missing / rows > 0.5:
            c.warnings.append(f"{c.missing / rows:.0%} missing")
        if c.role == "key" and c.distinct < 0.95 * c.count:
            c.warnings.append(f"about {c.count - c.distinct:,} duplicate keys (approximate distinct count {c.distinct:,})")
        if c.role == "categorical" and c.distinct > LEVELS_MAX:
            c.warnings.append(f"{c.distinct:,} levels: top values only, no target relation (limit {LEVELS_MAX:,})")
        warnings += [f"{c.name}: {w}" for w in c.warnings]
    for c in num:
        if c.q1 is not None:
            iqr = c.q3 - c.q1
            c.iqr_low, c.iqr_high = c.q1 - 1.5 * iqr, c.q3 + 1.5 * iqr

    # ---- pass 2: histograms, target per bin / level, categorical pairs, IQR outliers ------------
    live = [c for c in num if c.count and c.max is not None and c.max > c.min]
    levels = [c for c in cols if c.role in ("categorical", "text") and c.count and c.distinct <= LEVELS_MAX]
    pair_cols = sorted([c for c in cols if c.role == "categorical" and 2 <= c.distinct <= PAIR_LEVELS_MAX],
                       key=lambda c: (c.distinct, idx[c.name]))[:PAIR_COLUMNS_MAX]
    pair_cols = sorted(pair_cols, key=lambda c: idx[c.name])
    say(f"pass 2/{PASSES}: histograms, {rate_name} per bin and level, "
        f"{len(pair_cols) * (len(pair_cols) - 1) // 2} categorical pairs, IQR outliers")
    t = time.perf_counter()
    bins = {c.name: _edges(c.percentiles, TARGET_BINS, c.min) for c in live}
    frame2 = _bucketize(base, {f"c{idx[c.name]}": bins[c.name] for c in live}, "q")
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
        structs.append(F.when(x.isNotNull(), _row(1, i, hbin, None, None, y_t, y_n, qbin, side, x - F.lit(c.median))))
    for c in levels:
        i = idx[c.name]
        structs.append(_row(2, i, None, F.col(f"c{i}"), None, y_t, y_n, None, None))
    pair_index = {}
    for m, (a, b) in enumerate(_pairs(pair_cols)):
        pair_index[m] = (a.name, b.name)
        xa, xb = F.col(f"c{idx[a.name]}"), F.col(f"c{idx[b.name]}")
        structs.append(F.when(xa.isNotNull() & xb.isNotNull(), _row(3, m, None, xa, xb, None, None, None, None)))
    groups = pd.DataFrame(columns=["k", "i", "b", "q", "o", "v", "w", "t", "n", "ny", "sy", "syy", "s1", "s2", "s3"])
    if structs:
        g = (frame2.select(F.explode(F.array(*structs)).alias("s")).where(F.col("s").isNotNull()).select("s.*")
             .groupBy("k", "i", "b", "q", "o", "v", "w", "t")
             .agg(F.count(F.lit(1)).alias("n"), F.count("y").alias("ny"), F.sum("y").alias("sy"), F.sum(F.col("y") * F.col("y")).alias("syy"),
                  F.sum("x").alias("s1"), F.sum(F.col("x") * F.col("x")).alias("s2"),
                  F.sum(F.col("x") * F.col("x") * F.col("x")).alias("s3")))
        groups = pd.DataFrame([r.asDict() for r in g.collect()], columns=groups.columns)
        passes += 1
    seconds["pass2"] = _lap(t)

    moments = groups[groups["k"] == 1].groupby("i")[["n", "s1", "s2", "s3"]].sum()
    for c in num:
        if c.name in bins and idx[c.name] in moments.index:
            _sums_moments(c, *(float(v) for v in moments.loc[idx[c.name]]))
        elif c.count and c.min is not None:  # constant
            c.mean, c.std = c.min, (0.0 if c.count > 1 else None)

    # ---- pass 3: Pearson and Spearman (approximate ranks), with the target too: one Gram matrix ---
    terms = [(c.name, F.col(f"c{idx[c.name]}"), c.mean, c.percentiles) for c in live]
    if task == "binary":
        y = F.when(F.col("__t").isNotNull(), (F.col("__t") == F.lit(positive)).cast("double"))
        share = dict(classes)[positive] / p1["tn"]
        terms.append((target, y, share, None))  # two values: the ranks are an affine map of the indicator
    elif task == "regression" and tcp.max is not None and tcp.max > tcp.min:
        terms.append((target, F.col("__tn"), tcp.mean, tcp.percentiles))
    pearson_raw, spearman_raw, with_target = {}, {}, {}
    if len(terms) >= 2:
        say(f"pass 3/{PASSES}: Pearson and Spearman correlations of {len(terms)} numeric columns (one Gram matrix)")
        t = time.perf_counter()
        pr, sp = _correlations(base, terms)
        passes += 1
        seconds["pass3"] = _lap(t)
        for (a, b), v in pr.items():
            (with_target if b == target else pearson_raw)[(a, b)] = (v, sp.get((a, b)))
        spearman_raw = {k: sp.get(k) for k in pearson_raw if k[0] in bins and k[1] in bins}
        pearson_raw = {k: v[0] for k, v in pearson_raw.items()}
    for c in num:
        c.target_pearson, c.target_spearman = with_target.get((c.name, target), (None, None))
    for name_a, name_b in _pairs([c.name for c in num]):
        pearson_raw.setdefault((name_a, name_b), None)

    # outliers come from pass 2
    out = groups[groups["k"] == 1].groupby(["i", "o"])["n"].sum()
    for c in num:
        c.outliers_low, c.outliers_high = int(out.get((idx[c.name], 1), 0)), int(out.get((idx[c.name], 2), 0))

    # ---- relations to the target, associations, leakage ----------------------------------------
    _histograms(live, idx, groups)
    _target_relations(cols, idx, groups, bins, task, positive, tprof)
    cramers = _cramers(pair_cols, pair_index, groups)
    cat_target = {c.name: c.association for c in cols if c.role == "categorical" and c.association_measure == "Cramér's V"}
    leakage = _leakage(cols, target, task)
    for c in cols:
        if c.leakage:
            warnings.append(f"{c.name}: possible leakage: {c.leakage}")

    # ---- matrices and the long form --------------------------------------------------------------
    target_label = f"{target} (target)"
    num_names = [c.name for c in num]
    pearson = _matrix(num_names, pearson_raw)
    spearman = _matrix([c.name for c in live], spearman_raw)
    if task in ("binary", "regression") and num:
        pearson = _with_target(pearson, target_label, {c.name: c.target_pearson for c in num})
        spearman = _with_target(spearman, target_label, {c.name: c.target_spearman for c in live})
    cat_names = [c.name for c in pair_cols]
    cramer = _matrix(cat_names, cramers, diagonal=1.0)
    if task != "regression" and cat_target:
        cramer = _with_target(cramer, target_label, {n: cat_target.get(n) for n in cat_names})
    correlations = []
    for method, raw in (("pearson", pearson_raw), ("spearman", spearman_raw), ("cramers_v", cramers)):
        for (a, b), v in raw.items():
            v = _num(v)
            correlations.append({"column_a": a, "column_b": b, "method": method, "value": v,
                                 "flagged": v is not None and abs(v) >= threshold, "involves_target": False})
    for c in cols:
        for method, v in (("pearson", c.target_pearson), ("spearman", c.target_spearman)):
            if v is not None:
                correlations.append({"column_a": c.name, "column_b": target, "method": method, "value": v,
                                     "flagged": False, "involves_target": True})
        method = {"Cramér's V": "cramers_v", "Cramér's V (decile bins)": "cramers_v_deciles",
                  "correlation ratio (eta)": "correlation_ratio"}.get(c.association_measure or "")
        if method and c.association is not None:
            correlations.append({"column_a": c.name, "column_b": target, "method": method, "value": c.association,
                                 "flagged": False, "involves_target": True})
    flagged = sorted((r for r in correlations if r["flagged"]), key=lambda r: -abs(r["value"]))
    seconds["total"] = _lap(t0)
    return ProfileResult(rows, tprof, [*cols, tcp], pearson, spearman, cramer, correlations, flagged, leakage,
                         warnings, passes, seconds, threshold)


# ---------------------------------------------------------------------------------------------
# Helpers: expressions
# ---------------------------------------------------------------------------------------------


def _distinct(column: str, alias: str):
    """Approximate distinct count. DataSketches HLL keeps one object per column; Spark's
    approx_count_distinct keeps its registers as aggregation-buffer fields and measured 15 times
    slower at a comparable (2 %) error. Hashing first makes every type acceptable."""
    return F.expr(f"hll_sketch_estimate(hll_sketch_agg(CASE WHEN {column} IS NOT NULL THEN xxhash64({column}) END, "
                  f"{DISTINCT_LG_K}))").alias(alias)


def _top(column: str, alias: str, tracked: int = TOP_TRACKED):
    # one more than shown: approx_top_k counts null as an item
    return F.expr(f"approx_top_k({column}, {TOP_K + 1}, {tracked})").alias(alias)


def _row(kind, i, b, v, w, t, y, q, o, x=None):
    """One element of pass 2's exploded rows: kind (1 numeric value, 2 level, 3 pair of levels),
    column or pair, histogram bin, level, second level, class, numeric target, decile bin,
    outlier side, value minus the column's median (for the moments)."""
    def lit(value, typ):
        return value if isinstance(value, Column) else F.lit(value).cast(typ)

    return F.struct(
        F.lit(kind).cast("int").alias("k"), F.lit(i).cast("int").alias("i"), lit(b, "int").alias("b"),
        lit(q, "int").alias("q"), lit(o, "int").alias("o"), lit(v, "string").alias("v"), lit(w, "string").alias("w"),
        lit(t, "string").alias("t"), lit(y, "double").alias("y"), lit(x, "double").alias("x"),
    )


def _correlations(base: DataFrame, terms: list[tuple]) -> tuple[dict, dict]:
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
    vectors = MLUtils.convertVectorColumnsFromML(framed.select(array_to_vector(F.array(*items)).alias("v")), "v")
    g = RowMatrix(vectors, 0, len(items)).computeGramianMatrix().toArray()

    def corr(i: int, j: int, x: int, x2: int) -> float | None:
        m = 1 + 2 * k
        n, si, sj = g[m + i, m + j], g[x + i, m + j], g[x + j, m + i]
        sii, sjj, sij = g[x2 + i, m + j], g[x2 + j, m + i], g[x + i, x + j]
        vi, vj = n * sii - si * si, n * sjj - sj * sj
        if n < 2 or vi <= 0 or vj <= 0:
            return None
        return max(-1.0, min(1.0, float((n * sij - si * sj) / math.sqrt(vi * vj))))

    pearson, spearman = {}, {}
    for i in range(k):
        for j in range(i + 1, k):
            pair = (terms[i][0], terms[j][0])
            pearson[pair] = corr(i, j, 1, 1 + k)
            spearman[pair] = corr(i, j, 1 + 3 * k, 1 + 4 * k)
    return pearson, spearman


def _bucketize(df: DataFrame, splits: dict[str, list[float]], prefix: str) -> DataFrame:
    """Add ``<prefix>_<column>``: the index of each value's bucket (nulls stay null)."""
    usable = {c: s for c, s in splits.items() if len(s) >= 3}
    if not usable:
        return df
    cols = list(usable)
    return Bucketizer(splitsArray=[usable[c] for c in cols], inputCols=cols, outputCols=[f"{prefix}_{c}" for c in cols],
                      handleInvalid="keep").transform(df)


def _edges(pct: list[float] | None, bins: int, lowest: float) -> list[float]:
    """Bucketizer splits at the 1/bins quantiles (ties merged; no empty first bin)."""
    if not pct:
        return []
    step = GRID // bins
    inner = sorted({pct[k * step - 1] for k in range(1, bins)} - {lowest})
    return [-math.inf, *inner, math.inf]


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


def _pairs(items: list) -> list[tuple]:
    return [(items[a], items[b]) for a in range(len(items)) for b in range(a + 1, len(items))]


def _lap(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def _text(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _clean(obj):
    if hasattr(obj, "item") and not isinstance(obj, (list, dict, str)):  # numpy scalars
        obj = obj.item()
    if isinstance(obj, float):
        return _num(obj)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _moments(c: ColumnProfile, s: dict, n: int) -> None:
    c.mean, c.std = _num(s["mean"]), _num(s["std"])
    g1 = _num(s["skew"])
    # Spark's skewness is the population g1; report the adjusted Fisher-Pearson G1 (as pandas)
    c.skew = g1 * math.sqrt(n * (n - 1)) / (n - 2) if g1 is not None and n > 2 else None


def _percentiles(c: ColumnProfile, pct: list[float] | None) -> None:
    """min, quartiles, max from [0 %, 1 %, ..., 100 %]."""
    if not pct:
        return
    c.min, c.max = float(pct[0]), float(pct[-1])
    c.percentiles = [float(v) for v in pct[1:]]
    c.q1, c.median, c.q3 = (c.percentiles[GRID * k // 4 - 1] for k in (1, 2, 3))


def _sums_moments(c: ColumnProfile, n: float, s1: float, s2: float, s3: float) -> None:
    """mean, sample std and adjusted skew (as pandas) from the sums of (x - median)^1..3."""
    if not n:
        return
    m1 = s1 / n
    m2 = max(0.0, s2 / n - m1 * m1)
    m3 = s3 / n - 3 * m1 * (s2 / n) + 2 * m1 ** 3
    c.mean = c.median + m1
    c.std = math.sqrt(m2 * n / (n - 1)) if n > 1 else None
    g1 = m3 / m2 ** 1.5 if m2 > 0 else None
    c.skew = g1 * math.sqrt(n * (n - 1)) / (n - 2) if g1 is not None and n > 2 else None


def _positive(target: str, classes: list[tuple[str, int]], configured) -> str:
    names = [n for n, _ in classes]
    if configured is None:
        return default_positive(names, lambda: dict(classes))
    want = _text(configured)
    for n in names:
        if n == want or n.lower() == want.lower() or _same_number(n, want):
            return n
    raise InputDataError(f"positive_class {configured!r} is not a value of the target column {target!r} "
                         f"(its values: {', '.join(repr(n) for n in names)}); fix positive_class in the pipeline config")


def _same_number(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------
# Helpers: from pass 2's groups to histograms, target relations, Cramér's V
# ---------------------------------------------------------------------------------------------


def _histograms(live: list[ColumnProfile], idx: dict[str, int], groups: pd.DataFrame) -> None:
    h = groups[groups["k"] == 1].groupby(["i", "b"])["n"].sum()
    for c in live:
        counts = {b: n for (i, b), n in h.items() if i == idx[c.name]}
        width = (c.max - c.min) / HIST_BINS
        c.histogram = [(c.min + k * width, c.min + (k + 1) * width, int(counts.get(k, 0))) for k in range(HIST_BINS)]


def _target_relations(cols, idx, groups, bins, task, positive, tprof) -> None:
    classes = [n for n, _ in tprof.classes]
    for c in cols:
        i = idx[c.name]
        if c.role == "numeric" and c.name in bins:
            g = groups[(groups["k"] == 1) & (groups["i"] == i)]
            edges = bins[c.name]
            labels = {}
            for b in range(max(1, len(edges) - 1)):
                lo = c.min if b == 0 else edges[b]
                hi = c.max if b + 1 >= len(edges) - 1 else edges[b + 1]
                labels[b] = f"[{_fmt(lo)}, {_fmt(hi)}{']' if b + 1 >= len(edges) - 1 else ')'}"
            keys = sorted(set(g["q"]))
            c.by_target = _relation(g, "q", keys, lambda b: labels.get(int(b), str(b)), task, positive, classes)
            table = _contingency(g, "q", keys, classes) if task != "regression" else None
        elif c.role in ("categorical", "text") and c.count and c.distinct <= LEVELS_MAX:
            g = groups[(groups["k"] == 2) & (groups["i"] == i)]
            totals = g.groupby("v", dropna=False)["n"].sum().sort_values(ascending=False)
            keys = list(totals.index)
            c.by_target = _relation(g, "v", keys, lambda v: "(missing)" if _isnull(v) else str(v), task, positive, classes)
            if len(c.by_target) > LEVELS_SHOWN:
                c.by_target = c.by_target[:LEVELS_SHOWN]
            table = _contingency(g[g["v"].notna()], "v", [k for k in keys if not _isnull(k)], classes) if task != "regression" else None
        else:
            continue
        if task == "regression":
            c.association, c.association_measure = _correlation_ratio(g), "correlation ratio (eta)"
            if c.role == "numeric":
                c.association, c.association_measure = c.target_pearson, "Pearson r"
            continue
        c.association = _cramers_v(table)
        c.association_measure = "Cramér's V" + (" (decile bins)" if c.role == "numeric" else "")
        if task == "binary" and c.role == "numeric":
            auc = _binned_auc(table, classes.index(positive)) if table is not None else None
            # oriented: 0.5 is no relation, 1 a perfect ranking in either direction (Pearson has the sign)
            c.predictive = None if auc is None else max(auc, 1 - auc)
            c.predictive_measure = "ROC-AUC of the decile bins"
        else:
            c.predictive = _lambda(table, min_rows=2 if c.role != "numeric" else 1)
            c.predictive_measure = "Goodman-Kruskal lambda" + (" (decile bins)" if c.role == "numeric" else "")


def _isnull(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _relation(g: pd.DataFrame, by: str, keys: list, label, task: str, positive, classes) -> list[dict]:
    out = []
    for key in keys:
        rows = g[g[by].isna()] if _isnull(key) else g[g[by] == key]
        n = int(rows["n"].sum())
        item = {"label": label(key), "rows": n}
        if task == "regression":
            ny = rows["ny"].sum()
            item["mean"] = float(rows["sy"].sum() / ny) if ny else None
        else:
            known = rows[rows["t"].notna()]
            total = int(known["n"].sum())
            if task == "binary":
                item["rate"] = float(known.loc[known["t"] == positive, "n"].sum() / total) if total else None
            else:
                item["shares"] = {cl: float(known.loc[known["t"] == cl, "n"].sum() / total) if total else None
                                  for cl in classes[:5]}
        out.append(item)
    return out


def _contingency(g: pd.DataFrame, by: str, keys: list, classes: list[str]):
    known = g[g["t"].notna()]
    if known.empty:
        return None
    table = known.pivot_table(index=by, columns="t", values="n", aggfunc="sum", fill_value=0)
    return table.reindex(index=keys, columns=classes, fill_value=0).fillna(0)


def _cramers_v(table) -> float | None:
    if table is None:
        return None
    t = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0].to_numpy(dtype=float)
    if t.size == 0 or min(t.shape) < 2:
        return None
    n = t.sum()
    expected = t.sum(axis=1, keepdims=True) * t.sum(axis=0, keepdims=True) / n
    chi2 = float(((t - expected) ** 2 / expected).sum())
    return min(1.0, math.sqrt(chi2 / (n * (min(t.shape) - 1))))


def _lambda(table, min_rows: int = 2) -> float | None:
    """Goodman-Kruskal lambda: the share of the errors of always guessing the majority class
    that knowing the level removes (levels of ``min_rows``+ rows; they must cover half the rows,
    or a near-unique column would predict the target trivially)."""
    if table is None:
        return None
    t = table.to_numpy(dtype=float)
    n_all = t.sum()
    t = t[t.sum(axis=1) >= min_rows]
    n = t.sum()
    if n == 0 or n < 0.5 * n_all:
        return None
    base = t.sum(axis=0).max()
    if n == base:
        return None
    return float((t.max(axis=1).sum() - base) / (n - base))


def _binned_auc(table, pos_col: int) -> float | None:
    """ROC-AUC of the bins in value order as a score (ties within a bin count half)."""
    t = table.to_numpy(dtype=float)
    pos = t[:, pos_col]
    neg = t.sum(axis=1) - pos
    if pos.sum() == 0 or neg.sum() == 0:
        return None
    below = 0.0
    auc = 0.0
    for p, n in zip(pos, neg):
        auc += p * (below + n / 2)
        below += n
    return float(auc / (pos.sum() * neg.sum()))


def _correlation_ratio(g: pd.DataFrame) -> float | None:
    ny, sy, syy = g["ny"].astype(float), g["sy"].astype(float), g["syy"].astype(float)
    n = ny.sum()
    if n < 2:
        return None
    mean = sy.sum() / n
    total = syy.sum() - n * mean * mean
    if total <= 0:
        return None
    keep = ny > 0
    between = float((ny[keep] * (sy[keep] / ny[keep] - mean) ** 2).sum())
    return math.sqrt(max(0.0, min(1.0, between / total)))


def _cramers(pair_cols, pair_index, groups) -> dict[tuple[str, str], float | None]:
    p = groups[groups["k"] == 3]
    out = {}
    for m, (a, b) in pair_index.items():
        g = p[p["i"] == m]
        table = g.pivot_table(index="v", columns="w", values="n", aggfunc="sum", fill_value=0) if not g.empty else None
        out[(a, b)] = _cramers_v(table)
    return out


def _leakage(cols: list[ColumnProfile], target: str, task: str) -> list[dict]:
    """Features that (almost) determine the target on their own, or are named after it."""
    out = []
    base = re.sub(r"[^a-z0-9]", "", target.lower())
    for c in cols:
        if c.role in ("key", "id", "excluded", "datetime"):
            continue
        name = re.sub(r"[^a-z0-9]", "", c.name.lower())
        reason = None
        if len(base) > 2 and base in name:
            reason = "its name contains the target's"
        elif task == "binary" and c.role == "numeric" and c.predictive is not None and c.predictive >= LEAKAGE_AUC:
            reason = f"its decile bins separate the classes (binned ROC-AUC {c.predictive:.3f})"
        elif task != "regression" and c.role != "numeric" and c.predictive is not None and c.predictive >= LEAKAGE_THRESHOLD:
            reason = f"its levels determine the target (Goodman-Kruskal lambda {c.predictive:.3f})"
        elif task != "regression" and c.association is not None and c.association >= LEAKAGE_THRESHOLD:
            reason = f"{c.association_measure} {c.association:.3f} with the target"
        elif task == "regression" and c.association is not None and abs(c.association) >= 0.98:
            reason = f"{c.association_measure} {c.association:+.3f} with the target"
        elif task in ("binary", "regression") and c.target_spearman is not None and abs(c.target_spearman) >= 0.98:
            reason = f"Spearman {c.target_spearman:+.3f} with the target"
        if reason:
            c.leakage = reason
            out.append({"column": c.name, "reason": reason})
    return out


def _matrix(names: list[str], values: dict, diagonal: float = 1.0) -> pd.DataFrame:
    m = pd.DataFrame(float("nan"), index=names, columns=names)
    for n in names:
        m.loc[n, n] = diagonal
    for (a, b), v in values.items():
        v = _num(v)
        m.loc[a, b] = m.loc[b, a] = float("nan") if v is None else v
    return m


def _with_target(m: pd.DataFrame, label: str, values: dict) -> pd.DataFrame:
    names = list(m.columns)
    out = m.reindex(index=[*names, label], columns=[*names, label])
    out.loc[label, label] = 1.0
    for n in names:
        v = _num(values.get(n))
        out.loc[n, label] = out.loc[label, n] = float("nan") if v is None else v
    return out


# ---------------------------------------------------------------------------------------------
# The job: read, profile, write the tables, the HTML report and the MLflow run
# ---------------------------------------------------------------------------------------------

FILE_FORMATS = ("csv", "json", "parquet", "delta")  # read directly when the bronze table does not exist
COLUMNS_TABLE = "profile_columns"
CORRELATIONS_TABLE = "profile_correlations"

_TOP_TYPE = "array<struct<value:string,count:bigint,share:double>>"
COLUMNS_SCHEMA = (
    "pipeline string, run_id string, profiled_at timestamp, source string, position int, `column` string, "
    "dtype string, role string, role_reason string, rows bigint, `count` bigint, missing bigint, missing_share double, "
    "distinct_approx bigint, mean double, std double, min double, q1 double, median double, q3 double, max double, "
    "skew double, outliers_low bigint, outliers_high bigint, outlier_share double, iqr_low double, iqr_high double, "
    f"min_text string, max_text string, top_values {_TOP_TYPE}, target_measure string, target_association double, "
    "target_pearson double, target_spearman double, predictive_power double, predictive_measure string, "
    "leakage string, warnings array<string>"
)
CORRELATIONS_SCHEMA = (
    "pipeline string, run_id string, profiled_at timestamp, column_a string, column_b string, method string, "
    "value double, flagged boolean, involves_target boolean"
)


@dataclass
class ProfileRun:
    result: ProfileResult
    source: str
    report_path: str | None
    tables: dict[str, int]      # table -> Delta version written
    mlflow_run_id: str
    seconds: float


def run_profile(spark, settings, pipeline, run_id: str, *, threshold: float = FLAG_THRESHOLD,
                progress: Progress | None = None) -> ProfileRun:
    """Profile the pipeline's bronze table (or its source when the table does not exist yet).

    Writes one row per column to ``profile_columns`` and one per pair to ``profile_correlations``
    (each run replaces only this pipeline's rows), the HTML report to
    ``<reports_dir>/<pipeline>/profile.html``, and logs the report and the numbers (JSON) to an
    MLflow run in the configured experiment.
    """
    import datetime as dt

    from lakeforge.core import tracking
    from lakeforge.core.io import latest_version, read_source, read_version, table_exists
    from lakeforge.profiling.page import profile_report

    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    bronze = settings.table(pipeline.tables.bronze)
    if table_exists(spark, bronze):
        version = latest_version(spark, bronze)
        df = read_version(spark, bronze, version)
        source = f"table {bronze} (Delta version {version})"
        tags = {"data.table": bronze, "data.table_version": str(version)}
    elif pipeline.source.format in FILE_FORMATS:
        df = read_source(spark, pipeline.source, settings, where=f"{pipeline.file}: source")
        source = f"{pipeline.source.format} source {pipeline.source.path} (no table {bronze} yet)"
        tags = {"data.source": pipeline.source.path}
    else:
        raise InputDataError(f"{pipeline.file}: no table {bronze} yet, and a {pipeline.source.format} source is read by "
                             f"ingest only: run 'lakeforge ingest {pipeline.file}' first")
    say(f"profiling {source}")
    result = profile(
        df, pipeline.target, pipeline.key, task=pipeline.model.task, positive_class=pipeline.positive_class,
        numeric=list(pipeline.features.numeric), categorical=list(pipeline.features.categorical),
        threshold=threshold, what=f"{pipeline.file}: {source}", progress=say,
    )
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    say("writing the report, the profile tables and the MLflow run")
    page = profile_report(result, pipeline.name, source, now.strftime("%Y-%m-%d %H:%M UTC"))
    report_path = None
    if settings.reports_dir:
        folder = settings.path(settings.reports_dir) / pipeline.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "profile.html"
        tmp = path.with_suffix(".html.tmp")
        tmp.write_text(page.html, encoding="utf-8")
        tmp.replace(path)  # readers never see half a page
        report_path = str(path)

    tables = {}
    cols_df = spark.createDataFrame(_column_rows(result, pipeline.name, run_id, now, source), COLUMNS_SCHEMA)
    tables[settings.table(COLUMNS_TABLE)] = write_for_pipeline(cols_df, settings.table(COLUMNS_TABLE), pipeline.name)
    corr_rows = [(pipeline.name, run_id, now, r["column_a"], r["column_b"], r["method"], r["value"], r["flagged"],
                  r["involves_target"]) for r in result.correlations]
    corr_df = spark.createDataFrame(corr_rows, CORRELATIONS_SCHEMA)
    tables[settings.table(CORRELATIONS_TABLE)] = write_for_pipeline(corr_df, settings.table(CORRELATIONS_TABLE), pipeline.name)

    import mlflow

    experiment_id = tracking.configure(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{pipeline.name}-profile") as run:
        mlflow.set_tags({
            "lakeforge.pipeline": pipeline.name, "lakeforge.run_id": run_id, "lakeforge.stage": "profile",
            "git_commit": tracking.git_commit(settings.root), "config_hash": pipeline.config_hash, **tags,
        })
        t = result.target
        mlflow.log_params({"target": t.name, "task": t.task, "positive_class": t.positive_class, "threshold": threshold,
                           "passes": result.passes, "source": source[:500]})
        mlflow.log_metrics({"rows": result.rows, "columns": len(result.columns), "passes": result.passes,
                            "flagged_pairs": len(result.flagged), "leakage_suspects": len(result.leakage),
                            **{f"seconds_{k}": v for k, v in result.seconds.items()}})
        mlflow.log_text(page.html, "profile/profile.html")
        mlflow.log_dict(result.to_dict(), "profile/profile.json")
    return ProfileRun(result, source, report_path, tables, run.info.run_id, round(time.perf_counter() - t0, 3))


def write_for_pipeline(df: DataFrame, table: str, pipeline_name: str) -> int:
    """Replace this pipeline's rows of ``table`` (partitioned by ``pipeline``) in one Delta commit;
    other pipelines' rows stay. Returns the table version written."""
    from lakeforge.core.io import write_table

    # pipeline names are identifiers (config validation): safe inside the predicate
    return write_table(df, table, partition_col="pipeline", replace_where=f"pipeline = '{pipeline_name}'").version


def _column_rows(result: ProfileResult, pipeline: str, run_id: str, now, source: str) -> list[tuple]:
    rows = []
    for pos, c in enumerate(result.columns):
        top = [(v, n, n / result.rows if result.rows else None) for v, n in c.top]
        rows.append((
            pipeline, run_id, now, source, pos, c.name, c.dtype, c.role, c.reason, result.rows, c.count, c.missing,
            c.missing / result.rows if result.rows else None, c.distinct, c.mean, c.std, c.min, c.q1, c.median, c.q3,
            c.max, c.skew, c.outliers_low, c.outliers_high, c.outliers / c.count if c.count and c.role == "numeric" else None,
            c.iqr_low, c.iqr_high, c.min_text, c.max_text, top, c.association_measure, c.association, c.target_pearson,
            c.target_spearman, c.predictive, c.predictive_measure, c.leakage, list(c.warnings),
        ))
    return rows
