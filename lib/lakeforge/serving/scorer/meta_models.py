"""OneVsRestModel and IndexToString in numpy (Spark 4.1's behaviour).

OneVsRest saves one binary model per class under ``<stage dir>/model_<i>``; its raw prediction is,
per class, that model's rawPrediction[1] (the margin for GBT, linear SVC and factorization
machines), and the prediction the first class with the largest one (Spark 4.1's
``ml.functions.array_argmax``: NaN never wins, and a row of NaNs predicts -1). IndexToString maps the
prediction index to its label (``labels`` param) and refuses an index outside them, as Spark does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lakeforge.serving.scorer.base import (
    Frame, feature_matrix, load_stage, param, register, short_name,
)


def array_argmax(values: np.ndarray) -> np.ndarray:
    """Per row, the first index of the largest non-NaN value above -inf, else -1 (float64)."""
    best = np.full(len(values), -1.0)
    top = np.full(len(values), -np.inf)
    for i in range(values.shape[1]):
        better = values[:, i] > top  # NaN compares false
        best[better] = i
        top[better] = values[better, i]
    return best


class OneVsRestStage:
    def __init__(self, meta: dict, models: list):
        self.name = short_name(meta)
        self.models = models
        self.features_col = param(meta, "featuresCol", "features")
        self.prediction_col = param(meta, "predictionCol", "prediction")
        self.raw_col = param(meta, "rawPredictionCol", "rawPrediction")

    def transform(self, frame: Frame) -> Frame:
        x = feature_matrix(frame, self.features_col)
        raw = np.zeros((len(x), len(self.models)))
        for i, model in enumerate(self.models):
            raw[:, i] = model.predict_raw(x)[:, 1]
        out = dict(frame)
        if self.raw_col:
            out[self.raw_col] = raw
        if self.prediction_col:
            out[self.prediction_col] = array_argmax(raw)
        return out


@register("org.apache.spark.ml.classification.OneVsRestModel")
def _load_one_vs_rest(path: Path, meta: dict) -> OneVsRestStage:
    n = int(meta.get("numClasses") or len(list(path.glob("model_*"))))
    return OneVsRestStage(meta, [load_stage(path / f"model_{i}") for i in range(n)])


class IndexToStringStage:
    name = "IndexToString"

    def __init__(self, meta: dict):
        self.input_col = param(meta, "inputCol")
        self.output_col = param(meta, "outputCol")
        self.labels = list(param(meta, "labels", []) or [])

    def transform(self, frame: Frame) -> Frame:
        values = frame[self.input_col]
        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            if v is None:
                continue
            k = 0 if v != v else int(v) if abs(v) < 2**31 else -1  # Java's (int) cast: NaN is 0
            if not 0 <= k < len(self.labels):
                raise ValueError(f"IndexToString: unseen index {float(v)} (labels: {len(self.labels)})")
            out[i] = self.labels[k]
        return {**frame, self.output_col: out}




@register("org.apache.spark.ml.feature.IndexToString")
def _load_index_to_string(path: Path, meta: dict) -> IndexToStringStage:
    return IndexToStringStage(meta)
