"""Preprocessing, feature engineering and feature selection as pure Spark ML stages (no Python
UDF), fitted once and shipped inside the model, so batch scoring and serving apply exactly the
transformation fitted at training time.

Three steps:

* ``plan_features`` (schema only, no Spark job): resolves the feature roles and every column the
  config names, and fails with a message naming the key path, the column and the fix.
* ``profile_features`` (one aggregation over the training rows, plus one grouped count when
  constant / near-constant / ID-like columns are to be dropped): counts missing and coerced-to-null
  values and decides which columns are dropped, with the reason. Both go into a
  ``PreprocessingReport`` that lakeforge.train logs to MLflow and prints.
* ``preprocessing_pipeline``: the unfitted Pipeline. Stages, in order (each only when configured;
  with no option set, stages 2, 6, 8, 11 and 12 are exactly lakeforge's original pipeline):

  1. SQLTransformer: derived features (SQL expressions), date parts, text lengths;
  2. SQLTransformer: numeric features parsed with ``try_cast(... AS DOUBLE)`` (so text numbers
     such as Telco's ``TotalCharges``, blank for new customers, become doubles or null), boolean
     text (yes/no, true/false) as 1/0, ordinal levels as 0, 1, 2...;
  3. quantile clipping (SQLTransformer with the quantiles fitted), 4. log1p (SQLTransformer),
  5. "was missing" indicators (SQLTransformer);
  6. Imputer per strategy (mean / median / mode), constants by SQLTransformer;
  7. categorical columns: mode / constant fill, rare-level grouping, target encoding
     (SQLTransformers with the fitted levels and means);
  8. StringIndexer (``handleInvalid='keep'``: nulls and categories unseen at fit time get their
     own index) and OneHotEncoder;
  9. Bucketizer / QuantileDiscretizer + OneHotEncoder, 10. Interaction, free text as TF-IDF
     word weights (RegexTokenizer, HashingTF, IDF);
  11. the numeric block assembled and scaled (StandardScaler / MinMaxScaler / RobustScaler; one-hot
      columns stay 0/1), 12. one VectorAssembler of everything;
  13. feature selection (lakeforge.selection).

The label is made by lakeforge.train (binary, multiclass or numeric targets).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from pyspark.errors import AnalysisException, ParseException
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import (
    PCAModel,
    Bucketizer,
    HashingTF,
    IDF,
    Imputer,
    Interaction,
    MinMaxScaler,
    OneHotEncoder,
    QuantileDiscretizer,
    RegexTokenizer,
    RobustScaler,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegralType, NumericType, StringType, TimestampNTZType, TimestampType

from lakeforge.core.config import FeaturesConfig, PreprocessingConfig, SelectionConfig
from lakeforge.core.errors import InputDataError, MissingColumnError
from lakeforge.core.columns import FEATURES_COL, LABEL_COL, METADATA_COLUMNS
from lakeforge.core.sql import dbl, lit, q, select_sql
from lakeforge.features.stages import (
    FitSQL,
    FlatPipeline,
    SlotNamer,
    derive_with_reference,
    mode_fill,
    quantile_clip,
    rare_grouping,
    stacked,
    target_encoding,
)

NUMERIC_RAW_COL = "__numeric_raw"
NUMERIC_COL = "__numeric_scaled"
ASSEMBLED_COL = "__assembled"
# The gold feature table gets one column per slot up to this many slots, else one array column.
MAX_NAMED_COLUMNS = 1000


@dataclass(frozen=True)
class FeatureRoles:
    numeric: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def resolve_roles(df: DataFrame, features: FeaturesConfig, key: str, target: str) -> FeatureRoles:
    """The configured feature columns, or every other column by its Spark type."""
    if features.numeric or features.categorical:
        return FeatureRoles(list(features.numeric), list(features.categorical))
    skip = {key, target, *features.exclude, *METADATA_COLUMNS}
    numeric, categorical = [], []
    for field_ in df.schema.fields:
        if field_.name in skip:
            continue
        (numeric if isinstance(field_.dataType, NumericType) else categorical).append(field_.name)
    return FeatureRoles(numeric, categorical)


_q = q  # kept for callers of the former private helper


# ---------------------------------------------------------------------------------------------
# The plan and its report
# ---------------------------------------------------------------------------------------------


@dataclass
class PreprocessingReport:
    """What preprocessing did to the data: logged to MLflow (preprocessing.json) and printed."""

    rows_profiled: int = 0  # training rows the statistics were computed on
    rows_missing_target: int | None = None  # dropped before training
    duplicates_removed: int | None = None
    dropped_columns: list[dict] = field(default_factory=list)  # {column, reason, detail}
    coerced_to_null: dict[str, dict] = field(default_factory=dict)  # column -> {count, example, as}
    missing_counts: dict[str, int] = field(default_factory=dict)  # feature -> missing values (training rows)
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    fitted: dict[str, dict] = field(default_factory=dict)  # fit-time statistics (clip bounds, kept levels)
    ranking: list[dict] = field(default_factory=list)  # feature selection
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def params(self) -> dict[str, str | int]:
        """Short MLflow params (the full report is an artifact)."""
        out: dict[str, str | int] = {"prep.features_numeric": len(self.numeric), "prep.features_categorical": len(self.categorical)}
        if self.rows_missing_target is not None:
            out["prep.rows_missing_target"] = self.rows_missing_target
        if self.duplicates_removed is not None:
            out["prep.duplicates_removed"] = self.duplicates_removed
        if self.dropped_columns:
            out["prep.dropped_columns"] = json.dumps({d["column"]: d["reason"] for d in self.dropped_columns})[:6000]
        if self.coerced_to_null:
            out["prep.coerced_to_null"] = json.dumps({c: v["count"] for c, v in self.coerced_to_null.items()})[:6000]
        if self.ranking:
            out["prep.selected_features"] = len({r["feature"] for r in self.ranking if r.get("selected")})
        return out

    def lines(self) -> list[str]:
        out = []
        if self.rows_missing_target:
            out.append(f"{self.rows_missing_target:,} row(s) without a target value dropped")
        if self.duplicates_removed:
            out.append(f"{self.duplicates_removed:,} duplicate row(s) removed")
        for c, v in self.coerced_to_null.items():
            out.append(f"{c}: {v['count']:,} value(s) not readable as {v['as']} became null (e.g. {v['example']!r})")
        for d in self.dropped_columns:
            out.append(f"column {d['column']!r} dropped: {d['reason']} ({d['detail']})")
        out += self.notes
        if self.ranking:
            kept = sorted({r["feature"] for r in self.ranking if r.get("selected")})
            out.append(f"feature selection kept {len(kept)} feature(s)")
        return out


@dataclass
class FeaturePlan:
    """Resolved feature roles and column-level decisions for one pipeline config."""

    numeric: list[str]  # numeric features (input, derived or generated columns; ordinal ones too)
    categorical: list[str]  # categorical features (one-hot, or target encoded)
    prep: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    derived: dict[str, str] = field(default_factory=dict)  # generated column -> SQL expression
    reference_dates: dict[str, str] = field(default_factory=dict)  # days_since column -> parsed timestamp SQL
    coercible: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # -> (parsed SQL, parsed as, source SQL)
    integral: set[str] = field(default_factory=set)  # integer-typed numeric inputs (ID-like candidates)
    inputs: list[str] = field(default_factory=list)  # input columns the fitted model reads
    reads: set[str] = field(default_factory=set)  # input columns the generated columns' SQL reads
    indicators: list[str] = field(default_factory=list)  # features with a "was missing" column
    report: PreprocessingReport = field(default_factory=PreprocessingReport)
    as_text: set[str] = field(default_factory=set)  # categorical inputs neither text nor numbers (booleans, dates)

    @classmethod
    def from_roles(cls, roles: FeatureRoles, prep: PreprocessingConfig | None = None) -> "FeaturePlan":
        prep = prep or PreprocessingConfig()
        indicators = list(prep.missing_indicators) if isinstance(prep.missing_indicators, list) else []
        return cls(list(roles.numeric), list(roles.categorical), prep, inputs=roles.columns, indicators=indicators)

    @property
    def ordinal(self) -> dict[str, list[str]]:
        return {c: v for c, v in self.prep.ordinal.items() if c in self.numeric}

    @property
    def target_encoded(self) -> list[str]:
        te = self.prep.target_encoding
        return [c for c in self.categorical if te and c in te.columns]

    @property
    def supervised(self) -> bool:
        return bool(self.target_encoded)

    def typed_sql(self, col: str) -> str:
        """SQL giving the numeric feature ``col`` as a double (null when it does not parse)."""
        if col in self.ordinal:
            pairs = ", ".join(f"{lit(v)}, {dbl(i)}" for i, v in enumerate(self.ordinal[col]))
            return f"try_element_at(map({pairs}), CAST({q(col)} AS STRING))"
        if self.prep.types.get(col) == "boolean":
            return f"CAST(try_cast(trim(CAST({q(col)} AS STRING)) AS BOOLEAN) AS DOUBLE)"
        return f"try_cast({q(col)} AS DOUBLE)"

    def impute_numeric(self, col: str) -> tuple[str, float | None]:
        spec = self.prep.impute.get(col)
        if spec is None:
            return self.prep.numeric_impute, self.prep.numeric_fill_value if self.prep.numeric_impute == "constant" else None
        return spec.strategy, spec.value

    def impute_categorical(self, col: str) -> tuple[str, str | None]:
        spec = self.prep.impute.get(col)
        if spec is None:
            return self.prep.categorical_impute, self.prep.categorical_fill_value if self.prep.categorical_impute == "constant" else None
        return spec.strategy, None if spec.value is None else str(spec.value)

    def keeps_numeric(self, col: str) -> bool:
        spec = self.features.buckets.get(col)
        return spec is None or spec.keep_numeric


_PART_SQL = {"year": "year", "month": "month", "day": "dayofmonth", "day_of_week": "dayofweek", "hour": "hour"}


def plan_features(df: DataFrame, features: FeaturesConfig, prep: PreprocessingConfig, key: str, target: str,
                  where: str) -> FeaturePlan:
    """Resolve roles and check every column the config names against ``df``'s schema (no Spark
    job). ``where`` prefixes messages (e.g. "table lakeforge.bronze_x (conf/pipelines/x.yaml)")."""
    available = df.columns
    types = {f.name: f.dataType for f in df.schema.fields}

    def require(cols, key_path: str) -> None:
        missing = [c for c in cols if c not in available]
        if missing:
            raise MissingColumnError(f"{where}: {key_path}", missing, available)

    require(features.numeric, "features.numeric")
    require(features.categorical, "features.categorical")
    require(prep.drop.columns, "preprocessing.drop.columns")
    require(list(features.dates), "features.dates")
    require(features.text_length, "features.text_length")
    require(features.text_tfidf, "features.text_tfidf")
    for c, spec in features.dates.items():
        if not isinstance(types[c], (StringType, DateType, TimestampType, TimestampNTZType)):
            raise InputDataError(f"{where}: features.dates.{c}: column {c!r} is {types[c].simpleString()}; date parts need "
                                 "a date, timestamp or text column (remove it from features.dates)")

    roles = resolve_roles(df, features, key, target)
    numeric, categorical = list(roles.numeric), list(roles.categorical)
    inferred = not (features.numeric or features.categorical)
    if inferred:  # date and text-length sources, typed and encoded columns change role
        for c in [*features.dates, *features.text_length, *features.text_tfidf]:
            numeric, categorical = [x for x in numeric if x != c], [x for x in categorical if x != c]
        for c in prep.types:
            if c in categorical:
                categorical.remove(c)
                numeric.append(c)
        encoded = {*prep.ordinal, *(prep.target_encoding.columns if prep.target_encoding else [])}
        for c in encoded:
            if c in numeric:
                numeric.remove(c)
                categorical.append(c)
    dropped_by_user = [c for c in prep.drop.columns if c in numeric or c in categorical]
    numeric = [c for c in numeric if c not in prep.drop.columns]
    categorical = [c for c in categorical if c not in prep.drop.columns]
    inputs = [c for c in roles.columns if c in numeric or c in categorical]
    integral = {c for c in numeric if isinstance(types.get(c), IntegralType)}

    # generated columns: derived expressions, date parts, text lengths
    derived: dict[str, str] = {}
    reference_dates: dict[str, str] = {}
    coercible: dict[str, tuple[str, str, str]] = {}
    probe = df.limit(0)
    taken = set(available)
    for name, spec in features.derived_specs.items():
        if name in taken:
            raise InputDataError(f"{where}: features.derived.{name}: {name!r} is already a column of the table; pick another name")
        try:
            probe.selectExpr(f"({spec.expr}) AS {q(name)}").schema
        except (AnalysisException, ParseException) as exc:
            msg = str(exc).strip().splitlines()[0][:300]
            raise InputDataError(
                f"{where}: features.derived.{name}: cannot evaluate {spec.expr!r}: {msg}. Fix the expression; it sees the "
                "table's columns as they are (numbers stored as text need try_cast(x AS DOUBLE))") from None
        derived[name] = f"({spec.expr})" if spec.role == "numeric" else f"CAST(({spec.expr}) AS STRING)"
        (numeric if spec.role == "numeric" else categorical).append(name)
        taken.add(name)
    for col, spec in features.dates.items():
        parsed = (f"CAST({q(col)} AS TIMESTAMP)" if not isinstance(types[col], StringType) else
                  f"try_to_timestamp({q(col)}{', ' + lit(spec.format) if spec.format else ''})")
        if isinstance(types[col], StringType):
            coercible[f"{col}__date"] = (parsed, "date" + (f" ({spec.format})" if spec.format else ""), q(col))
        inputs += [] if col in inputs else [col]
        for part in spec.parts:
            name = f"{col}_{part}"
            if name in taken:
                raise InputDataError(f"{where}: features.dates.{col}: the feature {name!r} would replace a column of the table; rename that column")
            taken.add(name)
            numeric.append(name)
            if part != "days_since":
                derived[name] = f"CAST({_PART_SQL[part]}({parsed}) AS DOUBLE)"
            elif spec.reference is None:
                reference_dates[name] = parsed
            else:
                day = "current_date()" if spec.reference == "today" else f"DATE'{spec.reference}'"
                derived[name] = f"CAST(datediff({day}, to_date({parsed})) AS DOUBLE)"
    for col in features.text_length:
        name = f"{col}_length"
        if name in taken:
            raise InputDataError(f"{where}: features.text_length: the feature {name!r} would replace a column of the table; rename that column")
        taken.add(name)
        derived[name] = f"CAST(COALESCE(length(CAST({q(col)} AS STRING)), 0) AS DOUBLE)"
        numeric.append(name)
        inputs += [] if col in inputs else [col]
    for col in features.text_tfidf:
        inputs += [] if col in inputs else [col]
    reads = {*features.dates, *features.text_length, *features.text_tfidf}
    for name, spec in features.derived_specs.items():  # input columns the expressions read
        for col in available:
            if re.search(r"(?<![\w`])" + re.escape(col) + r"(?![\w`])|`" + re.escape(col) + "`", spec.expr):
                reads.add(col)
                inputs += [] if col in inputs else [col]

    allowed = set(numeric) | set(categorical)

    def features_named(cols, key_path: str) -> None:
        missing = [c for c in cols if c not in allowed and c not in available]
        if missing:
            raise MissingColumnError(f"{where}: {key_path}", missing, sorted(allowed) + [c for c in available if c not in allowed])
        for c in cols:
            if c not in allowed and c not in prep.drop.columns:
                raise InputDataError(f"{where}: {key_path}: column {c!r} is not a feature; list it under features.numeric or "
                                     f"features.categorical (or remove it from {key_path})")

    def numeric_only(cols, key_path: str) -> None:
        features_named(cols, key_path)
        for c in cols:
            if c in categorical:
                kind = types[c].simpleString() if c in types else "categorical"
                raise InputDataError(
                    f"{where}: {key_path}: column {c!r} is a categorical ({kind}) feature; this transform applies to numeric "
                    f"features: list {c!r} under features.numeric (or preprocessing.types as number) or remove it from {key_path}")

    def categorical_only(cols, key_path: str) -> None:
        features_named(cols, key_path)
        for c in cols:
            if c in numeric and c not in prep.ordinal:
                raise InputDataError(f"{where}: {key_path}: column {c!r} is a numeric feature; encodings apply to categorical "
                                     f"features (list it under features.categorical or remove it from {key_path})")

    features_named(list(prep.impute), "preprocessing.impute")
    features_named(list(prep.types), "preprocessing.types")
    numeric_only(prep.log, "preprocessing.log")
    numeric_only(prep.clip.columns if prep.clip else [], "preprocessing.clip.columns")
    numeric_only(list(features.buckets), "features.buckets")
    categorical_only(list(prep.ordinal), "preprocessing.ordinal")
    categorical_only(prep.target_encoding.columns if prep.target_encoding else [], "preprocessing.target_encoding.columns")
    categorical_only(prep.rare_levels.columns or [] if prep.rare_levels else [], "preprocessing.rare_levels.columns")
    if isinstance(prep.missing_indicators, list):
        features_named(prep.missing_indicators, "preprocessing.missing_indicators")
    for i, group in enumerate(features.interactions):
        features_named(group, f"features.interactions[{i}]")
    for c, spec in prep.impute.items():
        if c in numeric and spec.strategy == "keep":
            raise InputDataError(f"{where}: preprocessing.impute.{c}: 'keep' applies to categorical features; "
                                 f"use mean, median, mode or constant for the numeric feature {c!r}")
        if c in categorical and spec.strategy in ("mean", "median"):
            raise InputDataError(f"{where}: preprocessing.impute.{c}: {spec.strategy} needs numbers but {c!r} is categorical; "
                                 "use mode, constant or keep")
        if c in numeric and spec.strategy == "constant" and not isinstance(spec.value, (int, float)):
            raise InputDataError(f"{where}: preprocessing.impute.{c}.value: the numeric feature {c!r} needs a number (got {spec.value!r})")

    # ordinal columns become numeric features (0, 1, 2...) right where they were listed
    for c in prep.ordinal:
        if c in categorical:
            categorical.remove(c)
            numeric.append(c)
    report = PreprocessingReport(dropped_columns=[
        {"column": c, "reason": "user_listed", "detail": "listed in preprocessing.drop.columns"} for c in dropped_by_user])
    indicators = list(prep.missing_indicators) if isinstance(prep.missing_indicators, list) else []
    plan = FeaturePlan(numeric, categorical, prep, features, derived, reference_dates, {}, integral, inputs, reads,
                       indicators, report, {c for c in categorical if c in types and not isinstance(types[c], (StringType, NumericType))})
    for c in numeric:  # parsed value, what it is parsed as, the source value
        if c in prep.ordinal:
            coercible[c] = (plan.typed_sql(c), "one of the levels in preprocessing.ordinal", q(c))
        elif prep.types.get(c) == "boolean":
            coercible[c] = (plan.typed_sql(c), "boolean (yes/no, true/false, y/n, 1/0)", q(c))
        elif (c in available and not isinstance(types[c], NumericType)) or c in features.derived:
            coercible[c] = (plan.typed_sql(c), "number", q(c))
    plan.coercible = coercible
    return plan


# ---------------------------------------------------------------------------------------------
# Profile: missing, coerced and droppable columns, from Spark aggregations
# ---------------------------------------------------------------------------------------------


def profile_features(plan: FeaturePlan, df: DataFrame, where: str, train: Column | None = None) -> FeaturePlan:
    """Count missing and coerced-to-null values and apply the drop rules.

    ``train``: a boolean column selecting the training rows (statistics and decisions use only
    them; coerced values are counted over every row of ``df``). Raises InputDataError for a
    feature that is null in every training row (unless a drop rule removes it) and for a numeric
    feature none of whose values is a number. Returns the plan without the dropped columns."""
    prep, report = plan.prep, plan.report
    mask = train if train is not None else F.lit(True)
    generated = {**plan.derived, **{n: f"CAST(datediff(current_date(), to_date({e})) AS DOUBLE)"
                                     for n, e in plan.reference_dates.items()}}
    frame = df.selectExpr("*", *[f"{e} AS {q(n)}" for n, e in generated.items()]) if generated else df
    cols = [*plan.numeric, *plan.categorical]
    value = {c: F.expr(plan.typed_sql(c)) if c in plan.numeric else F.col(c) for c in cols}
    aggs = [F.count_if(mask).alias("rows")]
    for i, c in enumerate(cols):
        v = value[c]
        missing = v.isNull() | F.isnan(v) if c in plan.numeric else v.isNull()
        aggs.append(F.count_if(mask & missing).alias(f"m{i}"))
    coercible = list(plan.coercible.items())
    for i, (c, spec) in enumerate(coercible):
        parsed, src = F.expr(spec[0]), F.expr(spec[2])
        bad = src.isNotNull() & parsed.isNull()
        aggs += [F.count_if(bad).alias(f"c{i}"), F.count_if(src.isNotNull()).alias(f"n{i}"),
                 F.first(F.when(bad, src.cast("string")), ignorenulls=True).alias(f"e{i}")]
    row = frame.agg(*aggs).first()
    rows = int(row["rows"])
    report.rows_profiled = rows
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
    report.coerced_to_null = coerced
    missing = {c: int(row[f"m{i}"]) for i, c in enumerate(cols)}
    report.missing_counts = {c: n for c, n in missing.items() if n}

    dropped: dict[str, tuple[str, str]] = {}
    d = prep.drop
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
        live = [c for c in cols if c not in dropped]
        values = frame.where(mask).select(*[value[c].cast("string").alias(f"v{i}") for i, c in enumerate(live)])
        per_col = (stacked(values, [f"v{i}" for i in range(len(live))]).where(F.col("v").isNotNull())
                   .groupBy("c", "v").count().groupBy("c")
                   .agg(F.count(F.lit(1)).alias("distinct"), F.max("count").alias("top"), F.sum("count").alias("values"))
                   .collect())
        stats = {live[r["c"]]: (int(r["distinct"]), int(r["top"]), int(r["values"])) for r in per_col}
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
    report.dropped_columns += [{"column": c, "reason": r, "detail": t} for c, (r, t) in dropped.items()]
    if not dropped:
        plan.report.numeric, plan.report.categorical = list(plan.numeric), list(plan.categorical)
        return _resolve_indicators(plan)
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
    )
    plan.report.numeric, plan.report.categorical = list(numeric), list(categorical)
    return _resolve_indicators(plan)


def _resolve_indicators(plan: FeaturePlan) -> FeaturePlan:
    if plan.prep.missing_indicators is True:
        plan.indicators = [c for c in [*plan.numeric, *plan.categorical] if plan.report.missing_counts.get(c)]
    return plan


def deduplicate(how: str, key: str) -> Callable[[DataFrame], DataFrame]:
    """rows: identical rows (ingestion metadata aside) kept once; key: one row per key, the latest
    ingested (ties broken by a hash of the row, so the choice is deterministic)."""

    def transform(df: DataFrame) -> DataFrame:
        content = [c for c in df.columns if c not in METADATA_COLUMNS]
        if how == "rows":
            return df.dropDuplicates(content)
        if how == "key":
            order = ([F.col("_ingested_at").desc_nulls_last()] if "_ingested_at" in df.columns else []) + \
                    [F.xxhash64(*[F.col(c) for c in content]).desc()]
            w = Window.partitionBy(F.col(key)).orderBy(*order)
            return df.withColumn("__dup_rank", F.row_number().over(w)).where(F.col("__dup_rank") == 1).drop("__dup_rank")
        return df

    return transform


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


def preprocessing_pipeline(
    plan: FeaturePlan | FeatureRoles,
    prep: PreprocessingConfig | None = None,
    features_col: str = FEATURES_COL,
    *,
    selection: SelectionConfig | None = None,
    label_col: str = LABEL_COL,
    task: str = "binary",
    classes: list[float] | None = None,
    seed: int = 42,
    ranking: list | None = None,
) -> Pipeline:
    """An unfitted Pipeline turning raw columns into one feature vector.

    ``classes``: the label values of a multiclass target (target encoding makes one column per
    class); ``ranking``: a list that receives the feature-selection ranking when fitted."""
    if isinstance(plan, FeatureRoles):
        plan = FeaturePlan.from_roles(plan, prep)
    prep = plan.prep
    fitted_stats = plan.report.fitted if ranking is not None else None
    stages: list = []
    if plan.derived or plan.reference_dates:
        exprs = [f"{e} AS {q(n)}" for n, e in plan.derived.items()]
        stages.append(FitSQL(derive_with_reference(exprs, plan.reference_dates), "derived") if plan.reference_dates
                      else SQLTransformer(statement=select_sql(exprs)))

    # numeric features: parse, clip, log, indicators, impute
    numeric = plan.numeric
    cur = {c: f"{c}__num" for c in numeric}
    if numeric:
        stages.append(SQLTransformer(statement=select_sql([f"{plan.typed_sql(c)} AS {q(cur[c])}" for c in numeric])))
    clip_cols = [c for c in (prep.clip.columns if prep.clip else []) if c in cur]
    if clip_cols:
        stats = fitted_stats.setdefault("clip", {}) if fitted_stats is not None else None
        stages.append(FitSQL(quantile_clip({cur[c]: f"{c}__clip" for c in clip_cols}, prep.clip.lower, prep.clip.upper, stats), "clip"))
        cur.update({c: f"{c}__clip" for c in clip_cols})
    log_cols = [c for c in prep.log if c in cur]
    if log_cols:
        stages.append(SQLTransformer(statement=select_sql(
            [f"CASE WHEN {q(cur[c])} > -1 THEN log1p({q(cur[c])}) END AS {q(c + '__log')}" for c in log_cols])))
        cur.update({c: f"{c}__log" for c in log_cols})
    if plan.indicators:
        exprs = []
        for c in plan.indicators:
            x = q(f"{c}__num") if c in cur else q(c)
            cond = f"{x} IS NULL OR isnan({x})" if c in cur else f"{x} IS NULL"
            exprs.append(f"CASE WHEN {cond} THEN 1.0D ELSE 0.0D END AS {q(c + '__missing')}")
        stages.append(SQLTransformer(statement=select_sql(exprs)))
    imputed = {c: f"{c}__imp" for c in numeric}
    groups: dict[str, list[str]] = {}
    for c in numeric:
        groups.setdefault(plan.impute_numeric(c)[0], []).append(c)
    for strategy, cols in groups.items():
        if strategy == "constant":
            exprs = []
            for c in cols:
                x, v = q(cur[c]), dbl(float(plan.impute_numeric(c)[1]))
                exprs.append(f"CASE WHEN {x} IS NULL OR isnan({x}) THEN {v} ELSE {x} END AS {q(imputed[c])}")
            stages.append(SQLTransformer(statement=select_sql(exprs)))
        else:
            stages.append(Imputer(inputCols=[cur[c] for c in cols], outputCols=[imputed[c] for c in cols], strategy=strategy))

    # categorical features: fill, rare levels, target encoding, one-hot
    categorical = plan.categorical
    ccur = {c: c for c in categorical}
    constant_fill = [c for c in categorical if plan.impute_categorical(c)[0] == "constant"]
    if constant_fill:
        stages.append(SQLTransformer(statement=select_sql(
            [f"COALESCE(CAST({q(c)} AS STRING), {lit(plan.impute_categorical(c)[1])}) AS {q(c + '__fill')}" for c in constant_fill])))
    mode_cols = [c for c in categorical if plan.impute_categorical(c)[0] == "mode"]
    if mode_cols:
        stages.append(FitSQL(mode_fill({c: f"{c}__fill" for c in mode_cols}), "mode"))
    ccur.update({c: f"{c}__fill" for c in constant_fill + mode_cols})
    rare = prep.rare_levels
    rare_cols = [c for c in (rare.columns if rare and rare.columns is not None else categorical if rare else []) if c in ccur]
    if rare_cols:
        stats = fitted_stats.setdefault("rare_levels", {}) if fitted_stats is not None else None
        stages.append(FitSQL(rare_grouping({ccur[c]: f"{c}__grp" for c in rare_cols}, rare.min_count, rare.min_fraction,
                                           rare.max_levels, rare.label, stats), "rare_levels"))
        ccur.update({c: f"{c}__grp" for c in rare_cols})
    te_cols = plan.target_encoded
    te_out: dict[str, list[str]] = {}
    if te_cols:
        te = prep.target_encoding
        te_out = {c: [f"{c}__te"] if not classes else [f"{c}__te{int(k)}" for k in classes] for c in te_cols}
        stages.append(FitSQL(target_encoding({ccur[c]: te_out[c] for c in te_cols}, label_col, classes, te.smoothing,
                                             te.max_levels), "target_encoding"))
    onehot = [c for c in categorical if c not in te_out]
    cat_vec = [f"{c}__ohe" for c in onehot]
    if onehot:
        raw = [c for c in onehot if ccur[c] == c and c in plan.as_text]  # booleans, dates... as text
        if raw:                                                          # (StringIndexer takes text and numbers only)
            stages.append(SQLTransformer(statement=select_sql([f"CAST({q(c)} AS STRING) AS {q(c + '__str')}" for c in raw])))
            ccur.update({c: f"{c}__str" for c in raw})
        stages.append(StringIndexer(inputCols=[ccur[c] for c in onehot], outputCols=[f"{c}__idx" for c in onehot],
                                    handleInvalid="keep", stringOrderType="frequencyDesc"))
        stages.append(OneHotEncoder(inputCols=[f"{c}__idx" for c in onehot], outputCols=cat_vec, handleInvalid="keep"))

    # buckets and interactions
    buckets = {c: s for c, s in plan.features.buckets.items() if c in imputed}
    for c, spec in buckets.items():
        if spec.splits is not None:
            splits = [float(x) for x in spec.splits]
            splits = ([] if splits[0] == -math.inf else [-math.inf]) + splits + ([] if splits[-1] == math.inf else [math.inf])
            stages.append(Bucketizer(splits=splits, inputCol=imputed[c], outputCol=f"{c}__bkt", handleInvalid="keep"))
        else:
            stages.append(QuantileDiscretizer(numBuckets=spec.quantiles, inputCol=imputed[c], outputCol=f"{c}__bkt",
                                              handleInvalid="keep", relativeError=0.001))
    bucket_vec = [f"{c}__bucket" for c in buckets]
    if buckets:
        stages.append(OneHotEncoder(inputCols=[f"{c}__bkt" for c in buckets], outputCols=bucket_vec, handleInvalid="keep"))
    interactions = []
    for group in plan.features.interactions:
        if not all(c in imputed or c in ccur for c in group):
            continue  # a member was dropped (reported)
        parts = [(imputed[c] if plan.keeps_numeric(c) else f"{c}__bucket") if c in imputed else
                 te_out[c][0] if c in te_out else f"{c}__ohe" for c in group]
        out = "_x_".join(group) + "__int"
        stages.append(Interaction(inputCols=parts, outputCol=out))
        interactions.append(out)

    # free text: TF-IDF word weights (null text: no words)
    texts = [f"{c}__tfidf" for c in plan.features.text_tfidf]
    if texts:
        stages.append(SQLTransformer(statement=select_sql(
            [f"COALESCE(CAST({q(c)} AS STRING), '') AS {q(c + '__txt')}" for c in plan.features.text_tfidf])))
    for c in plan.features.text_tfidf:
        stages += [RegexTokenizer(inputCol=f"{c}__txt", outputCol=f"{c}__words", pattern=r"[^\p{L}\p{N}]+", minTokenLength=2),
                   HashingTF(inputCol=f"{c}__words", outputCol=f"{c}__tf", numFeatures=plan.features.text_tfidf_size),
                   IDF(inputCol=f"{c}__tf", outputCol=f"{c}__tfidf", minDocFreq=2)]

    # assemble: the numeric block (scaled), indicators, one-hot vectors, buckets, interactions, text
    block = [imputed[c] for c in numeric if plan.keeps_numeric(c)] + [o for c in te_cols for o in te_out[c]]
    numeric_part = block
    scaler = _scaler(prep.scale)
    if scaler is not None and block:
        # Only the numeric columns are scaled: one-hot columns stay 0/1 (scaling them would
        # blow rare levels up and weaken the regularization on them).
        stages.append(VectorAssembler(inputCols=block, outputCol=NUMERIC_RAW_COL, handleInvalid="keep"))
        stages.append(scaler)
        numeric_part = [NUMERIC_COL]
    final_inputs = numeric_part + [f"{c}__missing" for c in plan.indicators] + cat_vec + bucket_vec + interactions + texts
    select = selection is not None and selection.enabled
    stages.append(VectorAssembler(inputCols=final_inputs, outputCol=ASSEMBLED_COL if select else features_col, handleInvalid="keep"))
    if select:
        from lakeforge.features.feature_selection import FeatureSelection

        namer = SlotNamer(final_inputs, NUMERIC_COL if numeric_part != block else None, block)
        stages.append(FeatureSelection(selection, ASSEMBLED_COL, features_col, label_col, task, seed, namer, ranking))
    return FlatPipeline(stages=stages)


def _scaler(scale):
    if scale is True:
        return StandardScaler(inputCol=NUMERIC_RAW_COL, outputCol=NUMERIC_COL, withMean=False, withStd=True)
    if scale == "standard":
        return StandardScaler(inputCol=NUMERIC_RAW_COL, outputCol=NUMERIC_COL, withMean=True, withStd=True)
    if scale == "minmax":
        return MinMaxScaler(inputCol=NUMERIC_RAW_COL, outputCol=NUMERIC_COL)
    if scale == "robust":
        return RobustScaler(inputCol=NUMERIC_RAW_COL, outputCol=NUMERIC_COL, withCentering=True, withScaling=True)
    return None


def is_supervised(plan: FeaturePlan, selection: SelectionConfig | None) -> bool:
    """True when fitting reads the label (target encoding, univariate or model-based selection):
    then lakeforge.train refits the preprocessing inside every CV fold."""
    return plan.supervised or bool(selection is not None and selection.supervised)


# ---------------------------------------------------------------------------------------------
# Fitted models: slot names and the gold feature table
# ---------------------------------------------------------------------------------------------


def slot_names(prep_model: PipelineModel, df: DataFrame, features_col: str = FEATURES_COL) -> list[tuple[str, str]]:
    """(slot name, source column) for every slot of the fitted model's feature vector, from the
    vector's ML attribute metadata (schema only, no Spark job)."""
    stages = prep_model.stages
    assemblers = [s for s in stages if isinstance(s, VectorAssembler)]
    block = next((s.getInputCols() for s in assemblers if s.getOutputCol() == NUMERIC_RAW_COL), [])
    final = next((s for s in reversed(assemblers) if s.getOutputCol() != NUMERIC_RAW_COL), None)
    if final is None:
        return []
    scaled = any(s.hasParam("outputCol") and s.getOrDefault("outputCol") == NUMERIC_COL for s in stages)
    namer = SlotNamer(final.getInputCols(), NUMERIC_COL if scaled else None, block)
    schema = prep_model.transform(df.limit(0)).schema
    if isinstance(stages[-1], PCAModel):
        return [(f"pc{i + 1}", "pca") for i in range(stages[-1].getK())]
    return namer.names(schema[features_col])


def feature_table(prep_model: PipelineModel, df: DataFrame, key: str, features_col: str = FEATURES_COL) -> DataFrame:
    """``key`` and one double column per slot of the feature vector (names made safe for Delta),
    or one array column ``features`` beyond MAX_NAMED_COLUMNS slots."""
    from pyspark.ml.functions import vector_to_array

    names = [n for n, _ in slot_names(prep_model, df, features_col)]
    arr = vector_to_array(F.col(features_col))
    scored = prep_model.transform(df)
    if len(names) > MAX_NAMED_COLUMNS:
        return scored.select(F.col(key), arr.alias("features"))
    seen: set[str] = {key.lower()}
    cols = []
    for i, n in enumerate(names):
        base = re.sub(r"[^A-Za-z0-9]+", "_", n).strip("_") or f"f{i}"
        name, k = base, 2
        while name.lower() in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name.lower())
        cols.append(arr[i].alias(name))
    return scored.select(F.col(key), *cols)
