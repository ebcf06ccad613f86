"""Feature roles and the feature plan (schema only, no Spark job).

``plan_features`` resolves the feature roles (numeric / categorical) and every column the config
names, and fails with a message naming the key path, the column and the fix. The resulting
``FeaturePlan`` holds the column-level decisions the rest of lakeforge.features works from:

* lakeforge.features.statistics (``feature_statistics``): missing and coerced-to-null counts and
  the drop rules, over the training rows;
* lakeforge.features.pipeline (``preprocessing_pipeline``): the unfitted Spark ML Pipeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame
from pyspark.sql.types import DataType, DateType, IntegralType, NumericType, StringType, TimestampNTZType, TimestampType

from lakeforge.core.columns import METADATA_COLUMNS
from lakeforge.core.config_features import FeaturesConfig, PreprocessingConfig
from lakeforge.core.errors import InputDataError, MissingColumnError
from lakeforge.core.sql import dbl, lit, q
from lakeforge.features.report import PreprocessingReport


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
    bounded: dict[str, int] = field(default_factory=dict)  # many-level column -> its levels (preprocessing.encoding)
    labelled: bool = True  # there is a target (clustering: none)

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
    def level_encoding(self) -> str:
        """What many-level columns get beside their top levels: target, frequency or none."""
        kind = self.prep.encoding.high_cardinality
        return "frequency" if kind == "target" and not self.labelled else kind

    @property
    def supervised(self) -> bool:
        return bool(self.target_encoded) or bool(self.bounded and self.level_encoding == "target")

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
    _check_named_columns(available, types, features, prep, where)

    roles = resolve_roles(df, features, key, target)
    numeric, categorical = _role_changes(roles, features, prep)
    dropped_by_user = [c for c in prep.drop.columns if c in numeric or c in categorical]
    numeric = [c for c in numeric if c not in prep.drop.columns]
    categorical = [c for c in categorical if c not in prep.drop.columns]
    integral = {c for c in numeric if isinstance(types.get(c), IntegralType)}
    cols = _Columns(numeric, categorical, inputs=[c for c in roles.columns if c in numeric or c in categorical],
                    taken=set(available))
    _add_derived(cols, df.limit(0), features, where)
    _add_dates(cols, types, features, where)
    _add_text(cols, features, where)
    _add_reads(cols, available, features)
    _RoleCheck(where, available, types, prep, cols.numeric, cols.categorical).check(features)

    # ordinal columns become numeric features (0, 1, 2...) right where they were listed
    for c in prep.ordinal:
        if c in categorical:
            categorical.remove(c)
            numeric.append(c)
    report = PreprocessingReport(dropped_columns=[
        {"column": c, "reason": "user_listed", "detail": "listed in preprocessing.drop.columns"} for c in dropped_by_user])
    indicators = list(prep.missing_indicators) if isinstance(prep.missing_indicators, list) else []
    plan = FeaturePlan(numeric, categorical, prep, features, cols.derived, cols.reference_dates, {}, integral, cols.inputs,
                       cols.reads, indicators, report,
                       {c for c in categorical if c in types and not isinstance(types[c], (StringType, NumericType))},
                       labelled=target is not None)
    coercible = cols.coercible
    for c in numeric:  # parsed value, what it is parsed as, the source value
        if c in prep.ordinal:
            coercible[c] = (plan.typed_sql(c), "one of the levels in preprocessing.ordinal", q(c))
        elif prep.types.get(c) == "boolean":
            coercible[c] = (plan.typed_sql(c), "boolean (yes/no, true/false, y/n, 1/0)", q(c))
        elif (c in available and not isinstance(types[c], NumericType)) or c in features.derived:
            coercible[c] = (plan.typed_sql(c), "number", q(c))
    plan.coercible = coercible
    return plan


def _check_named_columns(available: list[str], types: dict[str, DataType], features: FeaturesConfig,
                         prep: PreprocessingConfig, where: str) -> None:
    """The input columns the config lists exist (and date sources have a date-like type)."""

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


def _role_changes(roles: FeatureRoles, features: FeaturesConfig, prep: PreprocessingConfig) -> tuple[list[str], list[str]]:
    """Inferred roles: date and text sources leave the features, typed columns become numeric and
    encoded ones categorical. Listed roles stay as listed."""
    numeric, categorical = list(roles.numeric), list(roles.categorical)
    if features.numeric or features.categorical:
        return numeric, categorical
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
    return numeric, categorical


@dataclass
class _Columns:
    """The features while plan_features adds the generated ones (the lists are shared, not copied)."""

    numeric: list[str]
    categorical: list[str]
    inputs: list[str]
    taken: set[str]  # names a generated column may not take
    derived: dict[str, str] = field(default_factory=dict)
    reference_dates: dict[str, str] = field(default_factory=dict)
    coercible: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    reads: set[str] = field(default_factory=set)

    def add_input(self, col: str) -> None:
        if col not in self.inputs:
            self.inputs.append(col)


def _add_derived(cols: _Columns, probe: DataFrame, features: FeaturesConfig, where: str) -> None:
    """features.derived: each expression checked against the schema (``probe``: no rows)."""
    for name, spec in features.derived_specs.items():
        if name in cols.taken:
            raise InputDataError(f"{where}: features.derived.{name}: {name!r} is already a column of the table; pick another name")
        try:
            probe.selectExpr(f"({spec.expr}) AS {q(name)}").schema
        except (AnalysisException, ParseException) as exc:
            msg = str(exc).strip().splitlines()[0][:300]
            raise InputDataError(
                f"{where}: features.derived.{name}: cannot evaluate {spec.expr!r}: {msg}. Fix the expression; it sees the "
                "table's columns as they are (numbers stored as text need try_cast(x AS DOUBLE))") from None
        cols.derived[name] = f"({spec.expr})" if spec.role == "numeric" else f"CAST(({spec.expr}) AS STRING)"
        (cols.numeric if spec.role == "numeric" else cols.categorical).append(name)
        cols.taken.add(name)


def _add_dates(cols: _Columns, types: dict[str, DataType], features: FeaturesConfig, where: str) -> None:
    """features.dates: numeric features <column>_<part>."""
    for col, spec in features.dates.items():
        parsed = (f"CAST({q(col)} AS TIMESTAMP)" if not isinstance(types[col], StringType) else
                  f"try_to_timestamp({q(col)}{', ' + lit(spec.format) if spec.format else ''})")
        if isinstance(types[col], StringType):
            cols.coercible[f"{col}__date"] = (parsed, "date" + (f" ({spec.format})" if spec.format else ""), q(col))
        cols.add_input(col)
        for part in spec.parts:
            name = f"{col}_{part}"
            if name in cols.taken:
                raise InputDataError(f"{where}: features.dates.{col}: the feature {name!r} would replace a column of the table; rename that column")
            cols.taken.add(name)
            cols.numeric.append(name)
            if part != "days_since":
                cols.derived[name] = f"CAST({_PART_SQL[part]}({parsed}) AS DOUBLE)"
            elif spec.reference is None:
                cols.reference_dates[name] = parsed
            else:
                day = "current_date()" if spec.reference == "today" else f"DATE'{spec.reference}'"
                cols.derived[name] = f"CAST(datediff({day}, to_date({parsed})) AS DOUBLE)"


def _add_text(cols: _Columns, features: FeaturesConfig, where: str) -> None:
    """features.text_length: numeric features <column>_length; features.text_tfidf: inputs only
    (the TF-IDF stages read them directly)."""
    for col in features.text_length:
        name = f"{col}_length"
        if name in cols.taken:
            raise InputDataError(f"{where}: features.text_length: the feature {name!r} would replace a column of the table; rename that column")
        cols.taken.add(name)
        cols.derived[name] = f"CAST(COALESCE(length(CAST({q(col)} AS STRING)), 0) AS DOUBLE)"
        cols.numeric.append(name)
        cols.add_input(col)
    for col in features.text_tfidf:
        cols.add_input(col)


def _add_reads(cols: _Columns, available: list[str], features: FeaturesConfig) -> None:
    """The input columns the generated columns read (derived expressions: by name)."""
    cols.reads = {*features.dates, *features.text_length, *features.text_tfidf}
    for name, spec in features.derived_specs.items():  # input columns the expressions read
        for col in available:
            if re.search(r"(?<![\w`])" + re.escape(col) + r"(?![\w`])|`" + re.escape(col) + "`", spec.expr):
                cols.reads.add(col)
                cols.add_input(col)


@dataclass
class _RoleCheck:
    """Checks that the columns a transform names are features of the role it applies to."""

    where: str
    available: list[str]
    types: dict[str, DataType]
    prep: PreprocessingConfig
    numeric: list[str]
    categorical: list[str]

    def check(self, features: FeaturesConfig) -> None:
        prep = self.prep
        self.features_named(list(prep.impute), "preprocessing.impute")
        self.features_named(list(prep.types), "preprocessing.types")
        self.numeric_only(prep.log, "preprocessing.log")
        self.numeric_only(prep.clip.columns if prep.clip else [], "preprocessing.clip.columns")
        self.numeric_only(list(features.buckets), "features.buckets")
        self.categorical_only(list(prep.ordinal), "preprocessing.ordinal")
        self.categorical_only(prep.target_encoding.columns if prep.target_encoding else [], "preprocessing.target_encoding.columns")
        self.categorical_only(prep.rare_levels.columns or [] if prep.rare_levels else [], "preprocessing.rare_levels.columns")
        if isinstance(prep.missing_indicators, list):
            self.features_named(prep.missing_indicators, "preprocessing.missing_indicators")
        for i, group in enumerate(features.interactions):
            self.features_named(group, f"features.interactions[{i}]")
        self.impute_strategies()

    def features_named(self, cols, key_path: str) -> None:
        allowed = set(self.numeric) | set(self.categorical)
        missing = [c for c in cols if c not in allowed and c not in self.available]
        if missing:
            raise MissingColumnError(f"{self.where}: {key_path}", missing,
                                     sorted(allowed) + [c for c in self.available if c not in allowed])
        for c in cols:
            if c not in allowed and c not in self.prep.drop.columns:
                raise InputDataError(f"{self.where}: {key_path}: column {c!r} is not a feature; list it under features.numeric or "
                                     f"features.categorical (or remove it from {key_path})")

    def numeric_only(self, cols, key_path: str) -> None:
        self.features_named(cols, key_path)
        for c in cols:
            if c in self.categorical:
                kind = self.types[c].simpleString() if c in self.types else "categorical"
                raise InputDataError(
                    f"{self.where}: {key_path}: column {c!r} is a categorical ({kind}) feature; this transform applies to numeric "
                    f"features: list {c!r} under features.numeric (or preprocessing.types as number) or remove it from {key_path}")

    def categorical_only(self, cols, key_path: str) -> None:
        self.features_named(cols, key_path)
        for c in cols:
            if c in self.numeric and c not in self.prep.ordinal:
                raise InputDataError(f"{self.where}: {key_path}: column {c!r} is a numeric feature; encodings apply to categorical "
                                     f"features (list it under features.categorical or remove it from {key_path})")

    def impute_strategies(self) -> None:
        where = self.where
        for c, spec in self.prep.impute.items():
            if c in self.numeric and spec.strategy == "keep":
                raise InputDataError(f"{where}: preprocessing.impute.{c}: 'keep' applies to categorical features; "
                                     f"use mean, median, mode or constant for the numeric feature {c!r}")
            if c in self.categorical and spec.strategy in ("mean", "median"):
                raise InputDataError(f"{where}: preprocessing.impute.{c}: {spec.strategy} needs numbers but {c!r} is categorical; "
                                     "use mode, constant or keep")
            if c in self.numeric and spec.strategy == "constant" and not isinstance(spec.value, (int, float)):
                raise InputDataError(f"{where}: preprocessing.impute.{c}.value: the numeric feature {c!r} needs a number (got {spec.value!r})")
