"""Feature statistics over the training rows, and the columns they drop.

``feature_statistics`` runs one aggregation over the rows (plus one grouped count when constant /
near-constant / ID-like columns are to be dropped): it counts missing and coerced-to-null values
and decides which columns are dropped, with the reason. Both go into the plan's
``PreprocessingReport``. (Not to be confused with lakeforge.profiling, the EDA profile of a table.)
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakeforge.core.errors import InputDataError
from lakeforge.core.sketches import approx_distinct
from lakeforge.core.sql import q
from lakeforge.features.encodings import choose_encodings
from lakeforge.features.plan import FeaturePlan
from lakeforge.features.stages import stacked


def feature_statistics(plan: FeaturePlan, df: DataFrame, where: str, train: Column | None = None) -> FeaturePlan:
    """Count missing and coerced-to-null values and apply the drop rules.

    ``train``: a boolean column selecting the training rows (statistics and decisions use only
    them; coerced values are counted over every row of ``df``). Raises InputDataError for a
    feature that is null in every training row (unless a drop rule removes it) and for a numeric
    feature none of whose values is a number. Returns the plan without the dropped columns."""
    mask = train if train is not None else F.lit(True)
    generated = {**plan.derived, **{n: f"CAST(datediff(current_date(), to_date({e})) AS DOUBLE)"
                                     for n, e in plan.reference_dates.items()}}
    frame = df.selectExpr("*", *[f"{e} AS {q(n)}" for n, e in generated.items()]) if generated else df
    cols = [*plan.numeric, *plan.categorical]
    value = {c: F.expr(plan.typed_sql(c)) if c in plan.numeric else F.col(c) for c in cols}
    missing, levels = _count_values(plan, frame, mask, cols, value, where)
    rows = plan.report.rows_profiled

    dropped: dict[str, tuple[str, str]] = {}
    d = plan.prep.drop
    for c in cols:
        if d.max_missing_fraction is not None and rows and missing[c] / rows > d.max_missing_fraction:
            dropped[c] = ("too_many_missing", f"{missing[c] / rows:.1%} of {rows:,} training rows missing, "
                                              f"above preprocessing.drop.max_missing_fraction {d.max_missing_fraction}")
    for c in cols:
        if c not in dropped and rows and missing[c] == rows:
            raise InputDataError(
                f"{where}: feature {c!r} is null in all {rows:,} training rows; nothing to learn from it: remove it from the "
                "features (features.exclude, preprocessing.drop.columns) or set preprocessing.drop.max_missing_fraction")
    if d.constant or d.near_constant is not None or d.id_like:
        dropped.update(_low_information(plan, frame.where(mask), value, [c for c in cols if c not in dropped]))
    plan.report.dropped_columns += [{"column": c, "reason": r, "detail": t} for c, (r, t) in dropped.items()]
    if not dropped:
        plan.report.numeric, plan.report.categorical = list(plan.numeric), list(plan.categorical)
        return _choose_encodings(_resolve_indicators(plan), levels)
    return _choose_encodings(_without(plan, dropped, where), levels)


def _count_values(plan: FeaturePlan, frame: DataFrame, mask: Column, cols: list[str], value: dict[str, Column],
                  where: str) -> tuple[dict[str, int], dict[str, int]]:
    """One aggregation: training rows, missing values per feature and levels per categorical
    feature (training rows; approximate, 1 % error, exact for few levels), values not readable as
    what they are parsed as (every row). Fills the report; returns (missing, levels) counts."""
    aggs = [F.count_if(mask).alias("rows")]
    for i, c in enumerate(cols):
        v = value[c]
        missing = v.isNull() | F.isnan(v) if c in plan.numeric else v.isNull()
        aggs.append(F.count_if(mask & missing).alias(f"m{i}"))
        if c in plan.categorical:
            aggs.append(approx_distinct(F.when(mask, v.cast("string"))).alias(f"d{i}"))
    coercible = list(plan.coercible.items())
    for i, (c, spec) in enumerate(coercible):
        parsed, src = F.expr(spec[0]), F.expr(spec[2])
        bad = src.isNotNull() & parsed.isNull()
        aggs += [F.count_if(bad).alias(f"c{i}"), F.count_if(src.isNotNull()).alias(f"n{i}"),
                 F.first(F.when(bad, src.cast("string")), ignorenulls=True).alias(f"e{i}")]
    row = frame.agg(*aggs).first()
    plan.report.rows_profiled = int(row["rows"])
    coerced = {}
    for i, (c, spec) in enumerate(coercible):
        n_bad, n_values = int(row[f"c{i}"]), int(row[f"n{i}"])
        name = c[:-len("__date")] if c.endswith("__date") else c
        if n_bad:
            coerced[name] = {"count": n_bad, "example": row[f"e{i}"], "as": spec[1]}
        if n_values and n_bad == n_values and c in plan.numeric and c not in plan.ordinal:
            raise InputDataError(
                f"{where}: column {c!r} is used as a numeric feature but none of its {n_values:,} values is a number "
                f"(e.g. {row[f'e{i}']!r}); list it under features.categorical (or fix the source)")
    plan.report.coerced_to_null = coerced
    missing = {c: int(row[f"m{i}"]) for i, c in enumerate(cols)}
    plan.report.missing_counts = {c: n for c, n in missing.items() if n}
    return missing, {c: int(row[f"d{i}"]) for i, c in enumerate(cols) if c in plan.categorical}


def _low_information(plan: FeaturePlan, training: DataFrame, value: dict[str, Column], live: list[str]) -> dict[str, tuple[str, str]]:
    """Constant, near-constant and ID-like columns among ``live`` (one grouped count of the
    training rows' values): column -> (reason, detail)."""
    d = plan.prep.drop
    values = training.select(*[value[c].cast("string").alias(f"v{i}") for i, c in enumerate(live)])
    per_col = (stacked(values, [f"v{i}" for i in range(len(live))]).where(F.col("v").isNotNull())
               .groupBy("c", "v").count().groupBy("c")
               .agg(F.count(F.lit(1)).alias("distinct"), F.max("count").alias("top"), F.sum("count").alias("values"))
               .collect())
    stats = {live[r["c"]]: (int(r["distinct"]), int(r["top"]), int(r["values"])) for r in per_col}
    dropped: dict[str, tuple[str, str]] = {}
    for c in live:
        distinct, top, n = stats.get(c, (0, 0, 0))
        if not n:
            continue
        if d.constant and distinct <= 1:
            dropped[c] = ("constant", f"one value in all {n:,} non-missing training rows")
        elif d.near_constant is not None and top / n >= d.near_constant:
            dropped[c] = ("near_constant", f"the most frequent value covers {top / n:.2%} of {n:,} rows, "
                                           f"at least preprocessing.drop.near_constant {d.near_constant}")
        elif d.id_like and (c in plan.categorical or c in plan.integral) and n >= 2 and distinct >= math.ceil(0.99 * n):
            dropped[c] = ("id_like", f"{distinct:,} distinct values in {n:,} rows")
    return dropped


def _without(plan: FeaturePlan, dropped: dict[str, tuple[str, str]], where: str) -> FeaturePlan:
    """The plan without the dropped columns; settings that name one are reported as skipped."""
    prep, report = plan.prep, plan.report
    numeric = [c for c in plan.numeric if c not in dropped]
    categorical = [c for c in plan.categorical if c not in dropped]
    if not numeric and not categorical:
        raise InputDataError(f"{where}: every feature column was dropped ({', '.join(sorted(dropped))}); relax preprocessing.drop")
    referenced = {"preprocessing.log": prep.log, "preprocessing.clip.columns": prep.clip.columns if prep.clip else [],
                  "features.buckets": list(plan.features.buckets), "preprocessing.impute": list(prep.impute),
                  "features.interactions": [c for g in plan.features.interactions for c in g],
                  "preprocessing.missing_indicators": plan.indicators}
    for key_path, names in referenced.items():
        for c in names:
            if c in dropped:
                report.notes.append(f"{key_path}: {c!r} was dropped ({dropped[c][0]}); its setting is skipped")
    kept_inputs = set(numeric) | set(categorical) | plan.reads
    plan = FeaturePlan(
        numeric, categorical, prep, plan.features,
        derived={n: e for n, e in plan.derived.items() if n not in dropped},
        reference_dates={n: e for n, e in plan.reference_dates.items() if n not in dropped},
        coercible={c: s for c, s in plan.coercible.items() if c not in dropped}, integral=plan.integral - set(dropped),
        inputs=[c for c in plan.inputs if c in kept_inputs], reads=plan.reads,
        indicators=[c for c in plan.indicators if c not in dropped], report=report, as_text=plan.as_text - set(dropped),
        labelled=plan.labelled,
    )
    plan.report.numeric, plan.report.categorical = list(numeric), list(categorical)
    return _resolve_indicators(plan)


def _choose_encodings(plan: FeaturePlan, levels: dict[str, int]) -> FeaturePlan:
    """The many-level columns (preprocessing.encoding) and why, into the plan and its report.
    Target-encoded columns keep their encoding (preprocessing.target_encoding)."""
    plan.bounded, rows = choose_encodings(plan.categorical, levels, plan.prep.encoding, set(plan.target_encoded),
                                          plan.labelled)
    plan.report.encodings = rows
    return plan


def _resolve_indicators(plan: FeaturePlan) -> FeaturePlan:
    if plan.prep.missing_indicators is True:
        plan.indicators = [c for c in [*plan.numeric, *plan.categorical] if plan.report.missing_counts.get(c)]
    return plan
