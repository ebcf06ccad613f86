"""The EDA profile of a DataFrame (``eda_profile``): per-column statistics, the relation of each
feature to the target, correlations and leakage suspects, from the three Spark aggregations of
lakeforge.profiling.passes (see there: nothing row-level reaches the driver; the plots of
lakeforge.profiling.page are drawn from the same aggregates). A pure step: a DataFrame in, a
ProfileResult out; lakeforge.profiling.job reads the data and writes the results.

Column roles come from the ProfileSpec (the pipeline config's ``features.numeric`` /
``features.categorical``, the key, the target) and, for every other column, from
lakeforge.profiling.frame's detector run on the first ``ROLE_SAMPLE_ROWS`` rows (a bounded read,
not a pass). Text holding numbers (Telco's ``TotalCharges``, blank for new customers) is
profiled as numbers; blanks count as missing.

The steps: the roles, the projection every pass reads (``passes.project``), pass 1 and what it tells
of the target and of each column, pass 2 (histograms, moments, outliers, the target per bin and
level), pass 3 (correlations), then the associations, leakage suspects, matrices and the long
form of every correlation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from lakeforge.core.columns import METADATA_COLUMNS
from lakeforge.core.errors import InputDataError
from lakeforge.core.io import require_columns
from lakeforge.profiling.frame import MAX_CLASSES, as_text, default_positive, frame, infer_task
from lakeforge.profiling.leakage import eda_leakage
from lakeforge.profiling.measures import (
    correlation_matrices,
    correlation_rows,
    cramers_by_pair,
    histograms,
    set_moments,
    set_percentiles,
    set_sums_moments,
    target_relations,
)
from lakeforge.profiling.passes import (
    LEVELS_MAX,
    PASSES,
    TARGET_BINS,
    TOP_K,
    correlation_pass,
    decile_edges,
    grouped_columns,
    grouped_pass,
    pairs,
    project,
    summary_pass,
)
from lakeforge.profiling.result import ColumnProfile, ProfileResult, TargetProfile

ROLE_SAMPLE_ROWS = 10_000
FLAG_THRESHOLD = 0.8

Progress = Callable[[str], None]


@dataclass
class ProfileSpec:
    """What the EDA profile relates: the target and key columns, the task (``auto``: inferred
    from the target's values), the positive class of a binary target (None: a 1/yes-like value,
    else the minority class), the columns whose role is given, and the |value| at or above which
    a pair of columns is flagged."""
    target: str
    key: str
    task: str = "auto"
    positive_class: str | int | bool | None = None
    numeric: Sequence[str] = ()
    categorical: Sequence[str] = ()
    threshold: float = FLAG_THRESHOLD


@dataclass
class _Target:
    profile: TargetProfile
    column: ColumnProfile          # the target's own statistics (a row of the column table)
    share: float | None            # binary: the positive class's share of the rows with a target


# ---------------------------------------------------------------------------------------------
# Roles and the projection
# ---------------------------------------------------------------------------------------------


def column_roles(df: DataFrame, target: str, key: str, numeric: list[str], categorical: list[str]) -> dict[str, tuple[str, str]]:
    """{column: (role, reason)}: the config's lists first, lakeforge.profiling.frame's detector for the rest.

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


def eda_profile(df: DataFrame, spec: ProfileSpec, *, cache: bool = True, what: str = "profile input",
                progress: Progress | None = None) -> ProfileResult:
    """Profile ``df`` against ``spec.target`` in three passes (see lakeforge.profiling.passes);
    ``what`` names the input in errors, ``progress`` is told each step."""
    say = progress or (lambda _msg: None)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    df = df.drop(*[c for c in METADATA_COLUMNS if c in df.columns])
    require_columns(df, [spec.target, spec.key, *spec.numeric, *spec.categorical], what)
    say(f"column roles (config, and lakeforge frame on the first {ROLE_SAMPLE_ROWS:,} rows)")
    roles = column_roles(df, spec.target, spec.key, list(spec.numeric), list(spec.categorical))
    seconds["roles"] = _lap(t0)
    cols, base, target_numeric = project(df, roles, spec.target)
    if cache:
        base = base.cache()
    try:
        return _profile_passes(base, cols, target_numeric, spec, say, seconds, t0)
    finally:
        if cache:
            base.unpersist()


def _profile_passes(base: DataFrame, cols: list[ColumnProfile], target_numeric: bool, spec: ProfileSpec,
                    say: Progress, seconds: dict[str, float], t0: float) -> ProfileResult:
    idx = {c.name: i for i, c in enumerate(cols)}
    num = [c for c in cols if c.role == "numeric"]

    say(f"pass 1/{PASSES}: counts, moments, percentiles, distinct counts, top values ({len(cols) + 1} columns)")
    t = time.perf_counter()
    p1 = summary_pass(base, cols, target_numeric)
    seconds["pass1"] = _lap(t)
    rows = p1["rows"]
    if rows == 0:
        raise InputDataError("the input has no rows; nothing to profile")
    tgt = _target(p1, spec, target_numeric)
    task, positive = tgt.profile.task, tgt.profile.positive_class
    warnings = _column_statistics(cols, p1, rows)

    columns = grouped_columns(cols)
    live, _levels, pair_cols = columns
    say(f"pass 2/{PASSES}: histograms, {tgt.profile.rate_name} per bin and level, "
        f"{len(pair_cols) * (len(pair_cols) - 1) // 2} categorical pairs, IQR outliers")
    t = time.perf_counter()
    bins = {c.name: decile_edges(c.percentiles, TARGET_BINS, c.min) for c in live}
    groups, pair_index, ran2 = grouped_pass(base, cols, columns, bins, task)
    seconds["pass2"] = _lap(t)
    _set_moments_and_outliers(num, idx, bins, groups)

    terms = _correlation_terms(live, idx, tgt)
    pearson_raw, spearman_raw, ran3 = _correlate(base, terms, spec.target, num, bins, say, seconds)

    histograms(live, idx, groups)
    target_relations(cols, idx, groups, bins, task, positive, tgt.profile)
    raws = {"pearson": pearson_raw, "spearman": spearman_raw, "cramers_v": cramers_by_pair(pair_index, groups)}
    leakage = eda_leakage(cols, spec.target, task)
    warnings += [f"{c.name}: possible leakage: {c.leakage}" for c in cols if c.leakage]
    pearson, spearman, cramer = correlation_matrices(cols, live, pair_cols, spec.target, task, raws)
    correlations = correlation_rows(cols, spec.target, raws, spec.threshold)
    flagged = sorted((r for r in correlations if r["flagged"]), key=lambda r: -abs(r["value"]))
    seconds["total"] = _lap(t0)
    return ProfileResult(rows, tgt.profile, [*cols, tgt.column], pearson, spearman, cramer, correlations, flagged,
                         leakage, warnings, 1 + ran2 + ran3, seconds, spec.threshold)


# ---------------------------------------------------------------------------------------------
# Pass 1: the target and each column
# ---------------------------------------------------------------------------------------------


def _target(p1: dict, spec: ProfileSpec, target_numeric: bool) -> _Target:
    """The target's task, classes and statistics from pass 1; clear errors for a target that is
    empty, constant, or neither a class nor a numeric target."""
    target, rows = spec.target, p1["rows"]
    classes = [(str(r["item"]), int(r["count"])) for r in p1["tclasses"] if r["item"] is not None]
    if p1["tn"] == 0:
        raise InputDataError(f"target column {target!r} is empty: all {rows:,} rows are null. "
                             "Check the source, or set 'target' in the pipeline config to the column to predict.")
    distinct = len(classes) if len(classes) <= MAX_CLASSES else int(p1["td"])
    if distinct < 2:
        raise InputDataError(f"target column {target!r} has one value only ({classes[0][0]!r} in all {p1['tn']:,} "
                             "non-null rows): there is nothing to relate the features to. Check the source or the target.")
    task = spec.task
    if task == "auto":
        try:
            task, _ = infer_task([p1["tfrac"]] if target_numeric and p1.get("tfrac") is not None else [], target_numeric, distinct)
        except InputDataError as exc:
            raise InputDataError(f"target column {target!r}: {exc}") from None
    if task == "regression" and not target_numeric:
        raise InputDataError(f"target column {target!r} is text ({distinct:,} values): it cannot be a regression target")
    positive = _positive(target, classes, spec.positive_class) if task == "binary" else None
    rate_name = {"binary": f"{target} rate", "regression": f"mean {target}"}.get(task, f"{target} class shares")
    tprof = TargetProfile(target, task, positive, classes if task != "regression" else [], rows - p1["tn"], rate_name)
    share = dict(classes)[positive] / p1["tn"] if task == "binary" else None
    return _Target(tprof, _target_column(p1, tprof, target_numeric, classes, distinct), share)


def _target_column(p1: dict, tprof: TargetProfile, target_numeric: bool, classes: list, distinct: int) -> ColumnProfile:
    tcp = ColumnProfile(tprof.name, "numeric" if target_numeric else "string", "target", "the pipeline's target")
    tcp.count, tcp.missing, tcp.distinct = p1["tn"], tprof.missing, distinct
    tcp.top = classes[:TOP_K] if tprof.task != "regression" else []
    if tprof.task == "regression":
        set_moments(tcp, {k: p1[f"t{k}"] for k in ("mean", "std", "skew", "min", "max")}, p1["tnn"])
        set_percentiles(tcp, [p1["tmin"], *p1["tpct"]] if p1["tpct"] else None)
        tcp.distinct = int(p1["tdn"])
    return tcp


def _positive(target: str, classes: list[tuple[str, int]], configured) -> str:
    names = [n for n, _ in classes]
    if configured is None:
        return default_positive(names, lambda: dict(classes))
    want = as_text(configured)
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


def _column_statistics(cols: list[ColumnProfile], p1: dict, rows: int) -> list[str]:
    """Each column's counts, quartiles, top values... from pass 1, and its IQR fences; returns
    the data warnings ("<column>: <warning>")."""
    warnings: list[str] = []
    for i, c in enumerate(cols):
        if c.role == "excluded":
            c.missing, c.count = p1[f"nulls{i}"], rows - p1[f"nulls{i}"]
            continue
        _set_summary(c, i, p1, rows)
        c.warnings += _column_warnings(c, rows)
        warnings += [f"{c.name}: {w}" for w in c.warnings]
    for c in cols:
        if c.role == "numeric" and c.q1 is not None:
            iqr = c.q3 - c.q1
            c.iqr_low, c.iqr_high = c.q1 - 1.5 * iqr, c.q3 + 1.5 * iqr
    return warnings


def _set_summary(c: ColumnProfile, i: int, p1: dict, rows: int) -> None:
    c.count, c.distinct = p1[f"n{i}"], int(p1[f"d{i}"])
    c.missing = rows - c.count
    if c.role == "numeric":
        set_percentiles(c, p1[f"pct{i}"])
        c.unparsed = p1.get(f"bad{i}") or 0
        if c.unparsed:
            c.warnings.append(f"{c.unparsed:,} non-blank values are not numbers (profiled as missing)")
    if c.role in ("numeric", "categorical", "text"):
        items = p1[f"top{i}"]
        c.top = [(as_text(r["item"]), int(r["count"])) for r in items if r["item"] is not None][:TOP_K]
        if len(items) <= TOP_K:  # the sketch listed every value (null included): exact
            c.distinct = len(c.top)
    if c.role == "text":
        c.mean_length = p1[f"len{i}"]
    if c.role == "datetime":
        c.min_text, c.max_text = p1[f"min{i}"], p1[f"max{i}"]


def _column_warnings(c: ColumnProfile, rows: int) -> list[str]:
    out = []
    if c.count == 0:
        out.append("all values are missing")
    elif c.distinct <= 1 and c.role not in ("key", "id"):
        out.append("constant: one distinct value")
    elif c.missing / rows > 0.5:
        out.append(f"{c.missing / rows:.0%} missing")
    if c.role == "key" and c.distinct < 0.95 * c.count:
        out.append(f"about {c.count - c.distinct:,} duplicate keys (approximate distinct count {c.distinct:,})")
    if c.role == "categorical" and c.distinct > LEVELS_MAX:
        out.append(f"{c.distinct:,} levels: top values only, no target relation (limit {LEVELS_MAX:,})")
    return out


# ---------------------------------------------------------------------------------------------
# Passes 2 and 3: moments, outliers, correlations
# ---------------------------------------------------------------------------------------------


def _set_moments_and_outliers(num: list[ColumnProfile], idx: dict[str, int], bins: dict, groups: pd.DataFrame) -> None:
    """Mean, std and skew from pass 2's sums (a constant column: its value), and the IQR outliers."""
    moments = groups[groups["k"] == 1].groupby("i")[["n", "s1", "s2", "s3"]].sum()
    for c in num:
        if c.name in bins and idx[c.name] in moments.index:
            set_sums_moments(c, *(float(v) for v in moments.loc[idx[c.name]]))
        elif c.count and c.min is not None:  # constant
            c.mean, c.std = c.min, (0.0 if c.count > 1 else None)
    out = groups[groups["k"] == 1].groupby(["i", "o"])["n"].sum()
    for c in num:
        c.outliers_low, c.outliers_high = int(out.get((idx[c.name], 1), 0)), int(out.get((idx[c.name], 2), 0))


def _correlation_terms(live: list[ColumnProfile], idx: dict[str, int], tgt: _Target) -> list[tuple]:
    """Pass 3's terms (name, column, mean, percentiles): the numeric columns with a range, and
    the target's indicator (binary) or values (numeric, with a range)."""
    terms = [(c.name, F.col(f"c{idx[c.name]}"), c.mean, c.percentiles) for c in live]
    t, tcp = tgt.profile, tgt.column
    if t.task == "binary":
        y = F.when(F.col("__t").isNotNull(), (F.col("__t") == F.lit(t.positive_class)).cast("double"))
        terms.append((t.name, y, tgt.share, None))  # two values: the ranks are an affine map of the indicator
    elif t.task == "regression" and tcp.max is not None and tcp.max > tcp.min:
        terms.append((t.name, F.col("__tn"), tcp.mean, tcp.percentiles))
    return terms


def _correlate(base: DataFrame, terms: list[tuple], target: str, num: list[ColumnProfile], bins: dict, say: Progress,
               seconds: dict[str, float]) -> tuple[dict, dict, int]:
    """Pass 3 (when there are two terms or more): ({(a, b): Pearson}, {(a, b): Spearman}) of the
    pairs of numeric columns (every pair of ``num`` in the Pearson one, None when not computed),
    the passes made (0 or 1); sets each numeric column's correlations with ``target`` (the last
    term, when it is one)."""
    pearson_raw, spearman_raw, with_target_, ran = {}, {}, {}, 0
    if len(terms) >= 2:
        say(f"pass 3/{PASSES}: Pearson and Spearman correlations of {len(terms)} numeric columns (one Gram matrix)")
        t = time.perf_counter()
        pr, sp = correlation_pass(base, terms)
        ran = 1
        seconds["pass3"] = _lap(t)
        for (a, b), v in pr.items():
            (with_target_ if b == target else pearson_raw)[(a, b)] = (v, sp.get((a, b)))
        spearman_raw = {k: sp.get(k) for k in pearson_raw if k[0] in bins and k[1] in bins}
        pearson_raw = {k: v[0] for k, v in pearson_raw.items()}
    for c in num:
        c.target_pearson, c.target_spearman = with_target_.get((c.name, target), (None, None))
    for name_a, name_b in pairs([c.name for c in num]):
        pearson_raw.setdefault((name_a, name_b), None)
    return pearson_raw, spearman_raw, ran


def _lap(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)
