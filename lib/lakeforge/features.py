"""Preprocessing as pure Spark ML stages (no Python UDF), fitted once and shipped in the model.

Stages, in order:
1. SQLTransformer: numeric columns parsed with ``try_cast(... AS DOUBLE)``, so text numbers
   such as Telco's ``TotalCharges`` (blank for new customers) become doubles or null;
2. Imputer (mean / median / mode) for the numeric columns;
3. StringIndexer (``handleInvalid='keep'``: nulls and categories unseen at fit time get their
   own index) and OneHotEncoder for the categorical columns;
4. StandardScaler of the numeric columns (optional; one-hot columns stay 0/1), then one
   VectorAssembler of everything.

The label is made by lakeforge.train (binary, multiclass or numeric targets).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml import Pipeline
from pyspark.ml.feature import (
    Imputer,
    OneHotEncoder,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.sql import DataFrame
from pyspark.sql.types import NumericType

from lakeforge.config import FeaturesConfig, PreprocessingConfig
from lakeforge.ingest import METADATA_COLUMNS

FEATURES_COL = "features"
NUMERIC_RAW_COL = "__numeric_raw"
NUMERIC_COL = "__numeric_scaled"


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
    for field in df.schema.fields:
        if field.name in skip:
            continue
        (numeric if isinstance(field.dataType, NumericType) else categorical).append(field.name)
    return FeatureRoles(numeric, categorical)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def preprocessing_pipeline(roles: FeatureRoles, prep: PreprocessingConfig, features_col: str = FEATURES_COL) -> Pipeline:
    """An unfitted Pipeline turning raw columns into one feature vector."""
    stages = []
    num_in = [f"{c}__num" for c in roles.numeric]
    num_out = [f"{c}__imp" for c in roles.numeric]
    if roles.numeric:
        casts = ", ".join(f"try_cast({_q(c)} AS DOUBLE) AS {_q(n)}" for c, n in zip(roles.numeric, num_in))
        stages.append(SQLTransformer(statement=f"SELECT *, {casts} FROM __THIS__"))
        stages.append(Imputer(inputCols=num_in, outputCols=num_out, strategy=prep.numeric_impute))
    cat_idx = [f"{c}__idx" for c in roles.categorical]
    cat_vec = [f"{c}__ohe" for c in roles.categorical]
    if roles.categorical:
        stages.append(
            StringIndexer(inputCols=list(roles.categorical), outputCols=cat_idx, handleInvalid="keep", stringOrderType="frequencyDesc")
        )
        stages.append(OneHotEncoder(inputCols=cat_idx, outputCols=cat_vec, handleInvalid="keep"))
    numeric_part = num_out
    if prep.scale and roles.numeric:
        # Only the numeric columns are scaled: one-hot columns stay 0/1 (scaling them would
        # blow rare levels up and weaken the regularization on them).
        stages.append(VectorAssembler(inputCols=num_out, outputCol=NUMERIC_RAW_COL, handleInvalid="keep"))
        stages.append(StandardScaler(inputCol=NUMERIC_RAW_COL, outputCol=NUMERIC_COL, withMean=False, withStd=True))
        numeric_part = [NUMERIC_COL]
    stages.append(VectorAssembler(inputCols=numeric_part + cat_vec, outputCol=features_col, handleInvalid="keep"))
    return Pipeline(stages=stages)
