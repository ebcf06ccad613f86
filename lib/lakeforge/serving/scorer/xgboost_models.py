"""lakeforge's XGBoost stage (lakeforge.training.xgboost.XGBoostModel) without a JVM.

The stage's ``data/`` Parquet row holds the booster as XGBoost's JSON; the ``xgboost`` Python
package (``xgboost-cpu``, the same version as the XGBoost4J jar) loads it and predicts with the
same C++ code the JVM calls, on the features as float32 with NaN as the missing value (infinite
or beyond-float32 values as NaN), as the JVM stage hands them over. The outputs are built as the
JVM stage builds them: regression, the prediction; binary, rawPrediction [-margin, margin],
probability [1 - p, p] (p as XGBoost's float32, widened) and the prediction by the stored
thresholds (Spark's rule); multiclass, each class's margin, their softmax (XGBoost's float32) and
the class of the largest margin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lakeforge.serving.scorer.base import (
    ClassifierStage,
    RegressorStage,
    feature_matrix,
    param,
    read_data,
    register,
    spark_argmax,
)

XGBOOST_MODEL = "lakeforge.training.xgboost.XGBoostModel"
FLOAT32_MAX = 3.4028234663852886e38  # lakeforge.training.xgboost.FLOAT32_MAX (not imported: no pyspark here)


def _booster(path: Path):
    import xgboost

    rows = read_data(path)
    if len(rows) != 1 or not rows[0].get("booster"):
        raise FileNotFoundError(f"{path}/data: expected one row with the booster's JSON")
    booster = xgboost.Booster()
    booster.load_model(bytearray(rows[0]["booster"].encode()))
    booster.set_param({"nthread": 1})
    return booster


def _predict(booster, x: np.ndarray, margin: bool) -> np.ndarray:
    import xgboost

    x = np.where(np.abs(x) <= FLOAT32_MAX, x, np.nan)  # as the JVM stage hands them over (dense_features)
    data = xgboost.DMatrix(x.astype(np.float32), missing=np.nan)
    return booster.predict(data, output_margin=margin).astype(np.float64)


class XGBoostClassifierStage(ClassifierStage):
    def __init__(self, meta: dict, booster, multiclass: bool = False):
        super().__init__(meta)
        self.name = "XGBoostModel"
        self.booster = booster
        self.multiclass = multiclass

    def transform(self, frame):
        out = dict(frame)
        x = feature_matrix(frame, self.features_col)
        margin = _predict(self.booster, x, True)
        p = _predict(self.booster, x, False)
        if self.multiclass:  # (rows, classes) each
            raw, probability = margin.reshape(len(x), -1), p.reshape(len(x), -1)
            prediction = spark_argmax(raw)
        else:
            raw, probability = np.column_stack([-margin, margin]), np.column_stack([1.0 - p, p])
            prediction = self.probability_to_prediction(probability)
        if self.raw_col:
            out[self.raw_col] = raw
        if self.probability_col:
            out[self.probability_col] = probability
        if self.prediction_col:
            out[self.prediction_col] = prediction
        return out


class XGBoostRegressorStage(RegressorStage):
    def __init__(self, meta: dict, booster):
        super().__init__(meta)
        self.name = "XGBoostModel"
        self.booster = booster

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _predict(self.booster, x, False)


@register(XGBOOST_MODEL)
def _load_xgboost(path: Path, meta: dict):
    booster = _booster(path)
    task = param(meta, "task", "binary")
    if task == "regression":
        return XGBoostRegressorStage(meta, booster)
    return XGBoostClassifierStage(meta, booster, multiclass=task == "multiclass")
