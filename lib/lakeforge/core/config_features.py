"""Pipeline config, the features: roles and feature engineering (``features``), preprocessing
(``preprocessing``) and feature selection (the top-level ``selection`` key: which features the
model sees; not to be confused with ``model.selection``, the rule that picks the winning model)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lakeforge.core.config_base import StrictModel, is_column_name


class DerivedFeature(StrictModel):
    # A Spark SQL expression over the input table's columns as they are (text stays text: use
    # try_cast(x AS DOUBLE) for numbers stored as text), evaluated by a SQLTransformer.
    expr: str
    role: Literal["numeric", "categorical"] = "numeric"


DATE_PARTS = ("year", "month", "day", "day_of_week", "hour", "days_since")


class DateFeature(StrictModel):
    # Numeric features <column>_<part>; text is parsed with ``format`` (Spark datetime pattern,
    # null: ISO dates/timestamps); values that do not parse are counted and become null (imputed).
    parts: list[Literal[DATE_PARTS]] = Field(default_factory=lambda: ["year", "month", "day_of_week"])  # type: ignore[valid-type]
    format: str | None = None
    # days_since: days from the date to ``reference``: 'YYYY-MM-DD', 'today' (the day the model
    # runs), or null: the latest date in the training data (fixed at fit time).
    reference: str | None = None

    @field_validator("parts")
    @classmethod
    def _parts(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("expected at least one of " + ", ".join(DATE_PARTS))
        if len(set(v)) != len(v):
            raise ValueError("a part is listed twice")
        return v

    @field_validator("reference")
    @classmethod
    def _reference(cls, v: str | None) -> str | None:
        if v is not None and v != "today" and not re.match(r"^\d{4}-\d{2}-\d{2}$", v):
            raise ValueError("expected 'YYYY-MM-DD', 'today' or null (the latest training date)")
        return v


class BucketFeature(StrictModel):
    # Fixed ``splits`` (Bucketizer; -inf/+inf are added at the ends) or ``quantiles`` equal-count
    # buckets (QuantileDiscretizer); the bucket is one-hot encoded as feature <column>_bucket.
    splits: list[float] | None = None
    quantiles: int | None = Field(None, ge=2, le=1000)
    # false: the bucket replaces the numeric column in the feature vector.
    keep_numeric: bool = True

    @model_validator(mode="after")
    def _one(self) -> "BucketFeature":
        if (self.splits is None) == (self.quantiles is None):
            raise ValueError("give exactly one of splits (fixed edges) or quantiles (number of buckets)")
        if self.splits is not None:
            if not self.splits or any(b <= a for a, b in zip(self.splits, self.splits[1:])):
                raise ValueError("splits must be strictly increasing numbers")
        return self


class FeaturesConfig(StrictModel):
    # Columns parsed as numbers (text such as " " becomes null, then imputed).
    numeric: list[str] = Field(default_factory=list)
    # Columns indexed and one-hot encoded (unseen values at scoring time get their own slot).
    categorical: list[str] = Field(default_factory=list)
    # With both lists empty, lakeforge takes every column but key, target and excluded ones:
    # numeric types as numeric, the rest as categorical.
    exclude: list[str] = Field(default_factory=list)
    # Feature engineering (each compiles to Spark ML stages inside the fitted model):
    # name: SQL expression (a numeric feature) or {expr, role}.
    derived: dict[str, str | DerivedFeature] = Field(default_factory=dict)
    # date/timestamp (or text) column: {parts, format, reference}.
    dates: dict[str, DateFeature] = Field(default_factory=dict)
    # numeric feature: {splits} or {quantiles}.
    buckets: dict[str, BucketFeature] = Field(default_factory=dict)
    # products of features (Interaction): each a list of 2+ feature names (numeric values,
    # one-hot vectors of categorical ones).
    interactions: list[list[str]] = Field(default_factory=list)
    # text columns whose length (characters, 0 for null) is a numeric feature <column>_length.
    text_length: list[str] = Field(default_factory=list)
    # free-text columns as TF-IDF word weights: words (letters and digits, lower-cased, 2+
    # characters) hashed into text_tfidf_size slots per column (HashingTF), weighted by IDF.
    text_tfidf: list[str] = Field(default_factory=list)
    text_tfidf_size: int = Field(256, ge=2, le=1 << 18)

    @model_validator(mode="after")
    def _no_overlap(self) -> "FeaturesConfig":
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"column(s) {both} listed as both numeric and categorical")
        for name in self.derived:
            if not is_column_name(name):
                raise ValueError(f"derived.{name}: expected an identifier (letters, digits, underscore) as the feature name")
            if name in self.numeric or name in self.categorical:
                raise ValueError(f"derived.{name}: the name is already a listed column; pick another name")
        for i, group in enumerate(self.interactions):
            if len(group) < 2 or len(set(group)) != len(group):
                raise ValueError(f"interactions[{i}]: expected 2 or more different feature names (got {group})")
        return self

    @property
    def derived_specs(self) -> dict[str, DerivedFeature]:
        return {k: v if isinstance(v, DerivedFeature) else DerivedFeature(expr=v) for k, v in self.derived.items()}


class ImputeSpec(StrictModel):
    # keep: categorical nulls stay null (the indexer's unknown slot); mode / constant fill them.
    strategy: Literal["mean", "median", "mode", "constant", "keep"]
    value: float | str | None = None

    @model_validator(mode="after")
    def _value(self) -> "ImputeSpec":
        if self.strategy == "constant" and self.value is None:
            raise ValueError("strategy 'constant' needs 'value'")
        if self.strategy != "constant" and self.value is not None:
            raise ValueError(f"'value' is only for strategy 'constant' (got strategy {self.strategy!r})")
        return self


class RareLevelsConfig(StrictModel):
    # Levels of one-hot encoded columns seen fewer than ``min_count`` times or in less than
    # ``min_fraction`` of the training rows, and levels beyond the ``max_levels`` most frequent,
    # become one level ``label`` (so do levels first seen at scoring time).
    min_count: int = Field(0, ge=0)
    min_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    max_levels: int | None = Field(None, ge=1)
    columns: list[str] | None = None  # null: every one-hot encoded column
    label: str = "__rare__"

    @model_validator(mode="after")
    def _rule(self) -> "RareLevelsConfig":
        if not self.min_count and not self.min_fraction and self.max_levels is None:
            raise ValueError("set at least one of min_count, min_fraction, max_levels")
        return self


class ClipConfig(StrictModel):
    # Numeric features clipped to their ``lower`` / ``upper`` quantiles (computed at fit time).
    columns: list[str] = Field(min_length=1)
    lower: float | None = Field(0.01, ge=0.0, lt=1.0)
    upper: float | None = Field(0.99, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _order(self) -> "ClipConfig":
        if self.lower is None and self.upper is None:
            raise ValueError("set lower and/or upper")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        return self


class TargetEncodingConfig(StrictModel):
    # Categorical columns replaced by the smoothed target mean per level:
    # (sum + smoothing * prior) / (count + smoothing); unseen levels get the prior. Fitted per CV
    # fold (no leakage into the validation folds); the ``max_levels`` most frequent levels get
    # their own value.
    columns: list[str] = Field(min_length=1)
    smoothing: float = Field(10.0, ge=0.0)
    max_levels: int = Field(1000, ge=1)


class EncodingConfig(StrictModel):
    """Categorical columns encoded by their number of levels (``preprocessing.encoding``)."""

    # Columns with at most this many levels (distinct values in the training rows) are one-hot
    # encoded, every level; null: every column so (the wide one-hot).
    max_onehot_levels: int | None = Field(50, ge=1)
    # A column with more levels: its ``top_levels`` most frequent levels seen in at least
    # ``min_count`` training rows are one-hot encoded, the others (and levels first seen at
    # scoring time) share one slot; plus, by ``high_cardinality``:
    top_levels: int = Field(50, ge=1)
    min_count: int = Field(20, ge=1)
    # target: the smoothed target mean of each level, (sum + smoothing * prior) / (count +
    # smoothing), fitted inside every CV fold on its training rows only (one per class for
    # multiclass targets; clustering falls back to frequency); frequency: the level's share of
    # the training rows; none: the grouped one-hot only.
    high_cardinality: Literal["target", "frequency", "none"] = "target"
    smoothing: float = Field(10.0, ge=0.0)

    def choose(self, levels: int, key_path: str = "preprocessing.encoding") -> tuple[str, str]:
        """(encoding, why) for a column with ``levels`` levels: 'onehot' or 'bounded'."""
        if self.max_onehot_levels is None:
            return "onehot", f"{levels:,} levels, one-hot (every level: {key_path}.max_onehot_levels is null)"
        if levels <= self.max_onehot_levels:
            return "onehot", f"{levels:,} levels <= {key_path}.max_onehot_levels {self.max_onehot_levels}: one-hot"
        extra = {"target": " + its target mean per level (fitted in-fold)", "frequency": " + its frequency per level",
                 "none": ""}[self.high_cardinality]
        return "bounded", (f"{levels:,} levels > {key_path}.max_onehot_levels {self.max_onehot_levels}: the top "
                           f"{self.top_levels} levels (>= {self.min_count} rows) one-hot, the rest one slot{extra}")


class DropConfig(StrictModel):
    columns: list[str] = Field(default_factory=list)  # always dropped (reported as user-listed)
    constant: bool = False  # one value in every training row (nulls aside)
    near_constant: float | None = Field(None, gt=0.5, lt=1.0)  # the top value covers at least this share
    id_like: bool = False  # text or integer columns with a distinct value in (almost) every row
    max_missing_fraction: float | None = Field(None, ge=0.0, lt=1.0)  # dropped above this missing share


class PreprocessingConfig(StrictModel):
    numeric_impute: Literal["mean", "median", "mode", "constant"] = "median"
    numeric_fill_value: float = 0.0  # numeric_impute: constant
    # keep: nulls get the indexer's unknown slot; mode: the most frequent level; constant: the value.
    categorical_impute: Literal["keep", "mode", "constant"] = "keep"
    categorical_fill_value: str = "missing"
    # Per-column strategy: column -> mean | median | mode | constant | keep, or {strategy, value}.
    impute: dict[str, ImputeSpec] = Field(default_factory=dict)
    # 0/1 "was missing" features <column>__missing: a list, or true for every feature column with
    # a missing value in the training rows.
    missing_indicators: bool | list[str] = False
    # true: divide numeric features by their standard deviation (StandardScaler without centering);
    # standard: center and divide; minmax: to [0, 1]; robust: median/IQR (RobustScaler); false: none.
    scale: bool | Literal["standard", "minmax", "robust"] = True
    log: list[str] = Field(default_factory=list)  # log1p of these numeric features (values <= -1: missing)
    clip: ClipConfig | None = None
    # Type repair of text columns: number (try_cast) or boolean (yes/no, true/false, y/n, 1/0 -> 1/0).
    types: dict[str, Literal["number", "boolean"]] = Field(default_factory=dict)
    rare_levels: RareLevelsConfig | None = None
    # Ordinal encoding: column -> its levels in order (-> 0, 1, 2...; unknown levels: missing).
    ordinal: dict[str, list[str]] = Field(default_factory=dict)
    target_encoding: TargetEncodingConfig | None = None
    # one-hot for few levels, a bounded encoding for many (see EncodingConfig)
    encoding: EncodingConfig = EncodingConfig()
    # Training rows only (scoring scores every row): rows (identical but for ingestion metadata)
    # or key (one row per key: the latest ingested).
    deduplicate: Literal["none", "rows", "key"] = "none"
    drop: DropConfig = DropConfig()

    @field_validator("impute", mode="before")
    @classmethod
    def _impute_shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"strategy": s} if isinstance(s, str) else s for k, s in v.items()}
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "PreprocessingConfig":
        for col, levels in self.ordinal.items():
            if not levels or len(set(levels)) != len(levels):
                raise ValueError(f"ordinal.{col}: expected the column's levels in order, each once")
        te = set(self.target_encoding.columns) if self.target_encoding else set()
        both = sorted(te & set(self.ordinal))
        if both:
            raise ValueError(f"column(s) {both} are both ordinal and target encoded; pick one encoding")
        return self

    @property
    def supervised(self) -> bool:
        return self.target_encoding is not None


class UnivariateSelection(StrictModel):
    """Feature selection by a univariate test of each feature against the target (``selection.univariate``)."""

    # auto: ANOVA F for class targets, F-regression for numeric targets; chi2 suits 0/1 (one-hot)
    # features.
    test: Literal["auto", "chi2", "anova", "f_regression"] = "auto"
    # top: the ``threshold`` best features; percentile: that share of them; fpr / fdr / fwe: a
    # p-value bound (false positive rate, Benjamini-Hochberg, Bonferroni).
    mode: Literal["top", "percentile", "fpr", "fdr", "fwe"] = "top"
    threshold: float = Field(20, gt=0)

    @model_validator(mode="after")
    def _threshold(self) -> "UnivariateSelection":
        if self.mode == "top" and self.threshold != int(self.threshold):
            raise ValueError("mode 'top' needs a whole number of features as threshold")
        if self.mode != "top" and self.threshold > 1:
            raise ValueError(f"mode {self.mode!r} needs a threshold between 0 and 1")
        return self


class ModelBasedSelection(StrictModel):
    """Feature selection by a model's feature importances or coefficients (``selection.model``)."""

    # random_forest: feature importances; lasso: |coefficients| of an L1 (elasticNetParam=1) model.
    method: Literal["random_forest", "lasso"] = "random_forest"
    top: int | None = Field(None, ge=1)  # keep the ``top`` most important features, or
    min_importance: float | None = Field(None, ge=0.0)  # those with this share of the total; default: > 0
    reg_param: float = Field(0.01, gt=0.0)  # lasso
    num_trees: int = Field(50, ge=1, le=1000)  # random_forest
    max_depth: int = Field(5, ge=1, le=30)


class FeatureSelectionConfig(StrictModel):
    """Feature selection (the top-level ``selection`` key), lakeforge.features.feature_selection."""

    # Applied in this order to the assembled feature vector (after scaling); every step is
    # reported (score, rank, kept/dropped) in the feature ranking.
    variance_threshold: float | None = Field(None, ge=0.0)  # drop features with variance <= this
    correlation_threshold: float | None = Field(None, gt=0.0, le=1.0)  # drop one of each pair with |r| above
    univariate: UnivariateSelection | None = None
    model: ModelBasedSelection | None = None
    pca: int | None = Field(None, ge=1)  # project onto this many principal components

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.variance_threshold, self.correlation_threshold,
                                           self.univariate, self.model, self.pca))

    @property
    def supervised(self) -> bool:
        return self.univariate is not None or self.model is not None
