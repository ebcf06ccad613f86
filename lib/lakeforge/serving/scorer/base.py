"""The frame, the stage protocol and the readers of Spark ML's saved files.

A **frame** is a dict ``column name -> numpy array`` with one entry per row:

- a scalar column is a 1-D array. Numbers that can be null are ``object`` arrays holding Python
  values (``None`` is SQL null, ``float('nan')`` is NaN); a stage whose output is never null may
  return ``float64``. Strings, booleans, dates and timestamps are ``object`` arrays of ``str``,
  ``bool``, ``datetime.date`` and ``datetime.datetime`` (or ``None``).
- a vector column (Spark's ``VectorUDT``) is a 2-D ``float64`` array of shape (rows, size).

``null_mask`` and ``as_float`` turn any scalar column into float64 values plus a null mask.

A **stage** is any object with ``transform(frame) -> frame`` (it returns a new dict holding the
input's columns plus its outputs, like Spark's ``transform``) and a ``name`` (Spark's class name,
for error messages and ``/model``). Stage loaders register themselves by the Java class name in
the saved metadata (``@register("org.apache.spark.ml.feature.StringIndexerModel")``) and are called
as ``loader(path, metadata)``; ``load_stage(path)`` dispatches. A stage class with no loader raises
``UnsupportedStage`` naming it.

Spark's saved layout: ``<stage dir>/metadata/part-00000`` (one JSON line: class, uid, paramMap,
defaultParamMap, sparkVersion) and ``<stage dir>/data/*.parquet`` (the fitted values; vectors and
matrices as Spark's structs, read with ``vector`` and ``matrix``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

Frame = dict[str, np.ndarray]
Loader = Callable[[Path, dict], "Stage"]

LOADERS: dict[str, Loader] = {}


class UnsupportedStage(Exception):
    """A saved stage the numpy scorer cannot compute (its Spark class name is the message)."""


class Stage(Protocol):
    name: str

    def transform(self, frame: Frame) -> Frame: ...


def register(*java_classes: str) -> Callable[[Loader], Loader]:
    """Register ``loader`` for the saved stages of these Java class names."""

    def deco(loader: Loader) -> Loader:
        for c in java_classes:
            LOADERS[c] = loader
        return loader

    return deco


def read_metadata(path: Path) -> dict:
    files = sorted((Path(path) / "metadata").glob("part-*"))
    if not files:
        raise FileNotFoundError(f"{path}: no metadata/part-* file: not a saved Spark ML stage")
    return json.loads(files[0].read_text().splitlines()[0])


def param(meta: dict, name: str, default: Any = None) -> Any:
    """A stage's param: set value, else Spark's default saved with it, else ``default``."""
    if name in meta.get("paramMap", {}):
        return meta["paramMap"][name]
    return meta.get("defaultParamMap", {}).get(name, default)


def read_data(path: Path, subdir: str = "data") -> list[dict]:
    """The rows of a stage's Parquet data as Python dicts (vectors/matrices still as structs)."""
    import pyarrow.parquet as pq

    files = sorted(p for p in (Path(path) / subdir).glob("*.parquet"))
    rows: list[dict] = []
    for f in files:
        rows.extend(pq.read_table(f).to_pylist())
    return rows


def vector(struct: dict | None) -> np.ndarray:
    """Spark's saved vector struct (type 0 sparse, 1 dense) as a dense float64 array."""
    if struct is None:
        return np.zeros(0)
    if struct["type"] == 1:
        return np.asarray(struct["values"], dtype=np.float64)
    out = np.zeros(struct["size"], dtype=np.float64)
    out[np.asarray(struct["indices"], dtype=np.int64)] = struct["values"]
    return out


def matrix(struct: dict) -> np.ndarray:
    """Spark's saved matrix struct (type 0 sparse CSC, 1 dense column-major) as a dense 2-D array."""
    rows, cols = struct["numRows"], struct["numCols"]
    transposed = bool(struct.get("isTransposed"))
    if struct["type"] == 1:
        values = np.asarray(struct["values"], dtype=np.float64)
        return values.reshape((rows, cols)) if transposed else values.reshape((cols, rows)).T
    out = np.zeros((cols, rows) if transposed else (rows, cols), dtype=np.float64)
    ptrs, idx, vals = struct["colPtrs"], struct["rowIndices"], struct["values"]
    for j in range(len(ptrs) - 1):  # compressed columns (rows when transposed)
        for k in range(ptrs[j], ptrs[j + 1]):
            if transposed:
                out[j, idx[k]] = vals[k]
            else:
                out[idx[k], j] = vals[k]
    return out.T if transposed else out


def load_stage(path: Path) -> Stage:
    meta = read_metadata(path)
    cls = meta["class"]
    loader = LOADERS.get(cls)
    if loader is None:
        raise UnsupportedStage(cls)
    return loader(Path(path), meta)


def num_rows(frame: Frame) -> int:
    for v in frame.values():
        return len(v)
    return 0


def null_mask(col: np.ndarray) -> np.ndarray:
    """True where the value is SQL null (None); NaN is a value, not null."""
    if col.dtype != object:
        return np.zeros(len(col), dtype=bool)
    return np.fromiter((v is None for v in col), dtype=bool, count=len(col))


def as_float(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, null mask) of a numeric or boolean scalar column; nulls are NaN in values."""
    if col.dtype != object:
        return col.astype(np.float64, copy=False), np.zeros(len(col), dtype=bool)
    nulls = null_mask(col)
    values = np.fromiter((math.nan if v is None else float(v) for v in col), dtype=np.float64, count=len(col))
    return values, nulls


def with_nulls(values: np.ndarray, nulls: np.ndarray) -> np.ndarray:
    """float64 values as a scalar column: ``object`` with None where ``nulls``, else float64 as is."""
    if not nulls.any():
        return values
    out = values.astype(object)
    out[nulls] = None
    return out


# --- helpers of the model stages (linear_models, tree_models, meta_models) ---------------------------


def short_name(meta: dict) -> str:
    """The stage's Spark class name without its package (``LogisticRegressionModel``)."""
    return meta["class"].rsplit(".", 1)[-1]


def feature_matrix(frame: Frame, col: str) -> np.ndarray:
    """The vector column ``col`` as a 2-D float64 array (rows, size)."""
    values = frame[col]
    if values.dtype == object:  # a column of 1-D vectors
        if len(values) == 0:
            return np.zeros((0, 0))
        return np.vstack([np.asarray(v, dtype=np.float64) for v in values])
    values = np.asarray(values, dtype=np.float64)
    return values if values.ndim == 2 else values.reshape(len(values), -1)


def spark_argmax(values: np.ndarray) -> np.ndarray:
    """Per row, the index of the first largest value as Spark's ``Vector.argmax`` finds it
    (strictly greater replaces: a NaN in column 0 keeps index 0), as float64 predictions."""
    best = np.zeros(len(values), dtype=np.float64)
    if values.shape[1] == 0:
        return best
    top = values[:, 0].copy()
    for i in range(1, values.shape[1]):
        better = values[:, i] > top
        best[better] = i
        top[better] = values[better, i]
    return best


def thresholded_argmax(probability: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """Spark's ``probability2prediction`` with ``thresholds``: the first class with the largest
    probability / threshold; a zero threshold wins outright (the last such class)."""
    best = np.zeros(len(probability), dtype=np.float64)
    top = np.full(len(probability), -np.inf)
    for i, t in enumerate(thresholds):
        if t == 0.0:
            best[:] = i
            top[:] = np.inf
            continue
        scaled = probability[:, i] / t
        better = scaled > top
        best[better] = i
        top[better] = scaled[better]
    return best


class ClassifierStage:
    """Spark's ``ClassificationModel`` / ``ProbabilisticClassificationModel`` transform: subclasses
    give ``predict_raw`` (and, when probabilistic, ``raw_to_probability``); the outputs are the
    columns whose params are non-empty, the prediction computed from the raw column as Spark does."""

    probabilistic = True

    def __init__(self, meta: dict):
        self.name = short_name(meta)
        self.features_col = param(meta, "featuresCol", "features")
        self.prediction_col = param(meta, "predictionCol", "prediction")
        self.raw_col = param(meta, "rawPredictionCol", "rawPrediction")
        self.probability_col = param(meta, "probabilityCol", "probability") if self.probabilistic else ""
        self.thresholds = meta.get("paramMap", {}).get("thresholds")  # only when set

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def raw_to_probability(self, raw: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def raw_to_prediction(self, raw: np.ndarray) -> np.ndarray:
        if self.probabilistic and self.thresholds is not None:
            return self.probability_to_prediction(self.raw_to_probability(raw))
        return spark_argmax(raw)

    def probability_to_prediction(self, probability: np.ndarray) -> np.ndarray:
        if self.thresholds is None:
            return spark_argmax(probability)
        return thresholded_argmax(probability, self.thresholds)

    def transform(self, frame: Frame) -> Frame:
        out = dict(frame)
        if not (self.raw_col or self.probability_col or self.prediction_col):
            return out
        raw = self.predict_raw(feature_matrix(frame, self.features_col))
        probability = None
        if self.raw_col:
            out[self.raw_col] = raw
        if self.probability_col:
            probability = self.raw_to_probability(raw)
            out[self.probability_col] = probability
        if self.prediction_col:
            if self.raw_col or probability is None:
                out[self.prediction_col] = self.raw_to_prediction(raw)
            else:
                out[self.prediction_col] = self.probability_to_prediction(probability)
        return out


class RegressorStage:
    """Spark's ``RegressionModel`` transform: subclasses give ``predict`` (rows -> float64)."""

    def __init__(self, meta: dict):
        self.name = short_name(meta)
        self.features_col = param(meta, "featuresCol", "features")
        self.prediction_col = param(meta, "predictionCol", "prediction")

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def transform(self, frame: Frame) -> Frame:
        out = dict(frame)
        if self.prediction_col:
            out[self.prediction_col] = self.predict(feature_matrix(frame, self.features_col))
        return out
