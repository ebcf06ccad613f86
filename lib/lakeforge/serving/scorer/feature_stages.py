"""Numpy versions of Spark ML's feature stages lakeforge's preprocessing uses: Imputer,
StringIndexer, OneHotEncoder, Bucketizer, Interaction, VectorAssembler, StandardScaler,
MinMaxScaler and RobustScaler. Each follows the Spark 4 source of its ``transform`` (same
arithmetic in the same order: e.g. the scalers multiply by a precomputed ``1 / std``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lakeforge.serving.scorer.base import Frame, UnsupportedStage, as_float, num_rows, param, read_data, register, vector
from lakeforge.serving.scorer.sql_values import to_string


def _cols(meta: dict, single: str, multi: str) -> list[str]:
    cols = param(meta, multi)
    if cols:
        return list(cols)
    one = param(meta, single)
    return [one] if one else []


def _handle(meta: dict, stage: str, allowed=("keep", "error")) -> str:
    h = param(meta, "handleInvalid", "error")
    if h not in allowed:
        raise UnsupportedStage(f"{stage} with handleInvalid={h!r} (it drops rows)")
    return h


def floats(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, null mask) of a numeric or boolean scalar column, as base.as_float, with
    numpy's conversion (None becomes NaN) and a Python look only at the NaN slots."""
    if col.dtype != object:
        return col.astype(np.float64, copy=False), np.zeros(len(col), dtype=bool)
    try:
        values = col.astype(np.float64)
    except (TypeError, ValueError):
        return as_float(col)
    nulls = np.zeros(len(col), dtype=bool)
    nan = np.flatnonzero(np.isnan(values))
    if len(nan):
        nulls[nan] = [col[i] is None for i in nan]
    return values, nulls


def scalar_or_matrix(col: np.ndarray) -> np.ndarray:
    """A column as a 2-D float64 array (a scalar column is one slot; nulls are NaN)."""
    if col.ndim == 2:
        return col
    return floats(col)[0][:, None]


# --- Imputer ------------------------------------------------------------------------------------


class Imputer:
    name = "ImputerModel"

    def __init__(self, inputs: list[str], outputs: list[str], surrogates: list[float], missing: float):
        self.items = list(zip(inputs, outputs, surrogates))
        self.missing = missing

    def transform(self, frame: Frame) -> Frame:
        out = dict(frame)
        for src, dst, surrogate in self.items:
            values, nulls = floats(frame[src])
            miss = nulls | (np.isnan(values) if math.isnan(self.missing) else values == self.missing)
            out[dst] = np.where(miss, surrogate, values)
        return out


@register("org.apache.spark.ml.feature.ImputerModel")
def _imputer(path: Path, meta: dict) -> Imputer:
    inputs, outputs = _cols(meta, "inputCol", "inputCols"), _cols(meta, "outputCol", "outputCols")
    row = read_data(path)[0]
    surrogates = [math.nan if row.get(c) is None else float(row[c]) for c in inputs]
    return Imputer(inputs, outputs, surrogates, float(param(meta, "missingValue", math.nan)))


# --- StringIndexer ------------------------------------------------------------------------------


class StringIndexer:
    name = "StringIndexerModel"

    def __init__(self, inputs: list[str], outputs: list[str], labels: list[list[str]], handle: str):
        self.items = [(i, o, {lab: float(k) for k, lab in enumerate(ls)}, float(len(ls))) for i, o, ls in zip(inputs, outputs, labels)]
        self.keep = handle == "keep"

    def transform(self, frame: Frame) -> Frame:
        out = dict(frame)
        for src, dst, index, unknown in self.items:
            get = index.get
            keys = [v if type(v) is str else to_string(v) for v in frame[src].tolist()]
            idx = np.fromiter((unknown if k is None else get(k, unknown) for k in keys), dtype=np.float64, count=len(keys))
            if not self.keep and (idx == unknown).any():
                bad = next(k for k, i in zip(keys, idx) if i == unknown)
                raise ValueError(f"StringIndexer: column {src!r}: unseen label {bad!r} (handleInvalid=error)")
            out[dst] = idx
        return out


@register("org.apache.spark.ml.feature.StringIndexerModel")
def _string_indexer(path: Path, meta: dict) -> StringIndexer:
    row = read_data(path)[0]
    labels = row["labelsArray"] if row.get("labelsArray") is not None else [row["labels"]]
    handle = _handle(meta, "StringIndexerModel")
    return StringIndexer(_cols(meta, "inputCol", "inputCols"), _cols(meta, "outputCol", "outputCols"), labels, handle)


# --- OneHotEncoder ------------------------------------------------------------------------------


class OneHotEncoder:
    name = "OneHotEncoderModel"

    def __init__(self, inputs, outputs, sizes: list[int], drop_last: bool, keep: bool):
        self.items = list(zip(inputs, outputs, sizes))
        self.drop_last, self.keep = drop_last, keep

    def _size(self, size: int) -> int:
        if self.drop_last and not self.keep:
            return size - 1
        if not self.drop_last and self.keep:
            return size + 1
        return size

    def transform(self, frame: Frame) -> Frame:
        out = dict(frame)
        for src, dst, size in self.items:
            values, nulls = floats(frame[src])
            n, width = len(values), self._size(size)
            valid = (values >= 0) & (values < size)
            if not self.keep and (~valid & ~nulls).any():
                raise ValueError(f"OneHotEncoder: column {src!r}: an index outside [0, {size}) (handleInvalid=error)")
            idx = np.where(valid, np.trunc(np.nan_to_num(values)), size).astype(np.int64)
            vec = np.zeros((n, width))
            hit = idx < width
            vec[np.nonzero(hit)[0], idx[hit]] = 1.0
            vec[nulls] = np.nan  # a null index gives a null vector: the assembler's NaNs ('keep')
            out[dst] = vec
        return out


@register("org.apache.spark.ml.feature.OneHotEncoderModel")
def _one_hot(path: Path, meta: dict) -> OneHotEncoder:
    sizes = [int(s) for s in read_data(path)[0]["categorySizes"]]
    keep = _handle(meta, "OneHotEncoderModel") == "keep"
    return OneHotEncoder(_cols(meta, "inputCol", "inputCols"), _cols(meta, "outputCol", "outputCols"), sizes,
                         bool(param(meta, "dropLast", True)), keep)


# --- Bucketizer ---------------------------------------------------------------------------------


def _split_value(v) -> float:
    return float(v) if not isinstance(v, str) else {"-Inf": -math.inf, "Inf": math.inf, "NaN": math.nan}.get(v, float(v))


class Bucketizer:
    name = "Bucketizer"

    def __init__(self, inputs, outputs, splits: list[list[float]], keep: bool):
        self.items = [(i, o, np.asarray(s, dtype=np.float64)) for i, o, s in zip(inputs, outputs, splits)]
        self.keep = keep

    def transform(self, frame: Frame) -> Frame:
        out = dict(frame)
        for src, dst, splits in self.items:
            x, nulls = floats(frame[src])
            idx = (np.searchsorted(splits, x, side="right") - 1).astype(np.float64)
            idx[x == splits[-1]] = len(splits) - 2
            # java.util.Arrays.binarySearch orders -0.0 below 0.0: -0.0 falls below a 0.0 split
            neg_zero = (x == 0) & np.signbit(x)
            if neg_zero.any():
                pos_zero = np.nonzero((splits == 0) & ~np.signbit(splits))[0]
                if len(pos_zero):
                    idx[neg_zero] = pos_zero[0] - 1
            nan = np.isnan(x) & ~nulls
            if nan.any() and not self.keep:
                raise ValueError(f"Bucketizer: column {src!r}: NaN value (handleInvalid=error)")
            idx[nan] = len(splits) - 1
            outside = ~nan & ~nulls & ((x < splits[0]) | (x > splits[-1]))
            if outside.any():
                raise ValueError(f"Bucketizer: column {src!r}: a value outside the splits [{splits[0]}, {splits[-1]}]")
            out[dst] = idx if not nulls.any() else np.where(nulls, None, idx.astype(object))
        return out


@register("org.apache.spark.ml.feature.Bucketizer")
def _bucketizer(path: Path, meta: dict) -> Bucketizer:
    splits = param(meta, "splitsArray") or [param(meta, "splits")]
    splits = [[_split_value(v) for v in s] for s in splits]
    keep = _handle(meta, "Bucketizer") == "keep"
    return Bucketizer(_cols(meta, "inputCol", "inputCols"), _cols(meta, "outputCol", "outputCols"), splits, keep)


# --- Interaction --------------------------------------------------------------------------------


class Interaction:
    """Products of every combination of the inputs' slots, the first input varying slowest (as
    Spark's FeatureEncoder: vector inputs are one-hot vectors, whose zero slots are skipped)."""

    name = "Interaction"

    def __init__(self, inputs: list[str], output: str):
        self.inputs, self.output = inputs, output

    def transform(self, frame: Frame) -> Frame:
        n = num_rows(frame)
        acc = np.ones((n, 1))
        for c in reversed(self.inputs):
            col = frame[c]
            if col.ndim == 1 and floats(col)[1].any():
                raise ValueError(f"Interaction: column {c!r} holds a null")
            a = scalar_or_matrix(col)
            prod = (a[:, :, None] * acc[:, None, :])
            if col.ndim == 2:  # sparse vectors: inactive (zero) slots give no product
                prod = np.where(a[:, :, None] == 0.0, 0.0, prod)
            acc = prod.reshape(n, -1)
        out = dict(frame)
        out[self.output] = acc
        return out


@register("org.apache.spark.ml.feature.Interaction")
def _interaction(path: Path, meta: dict) -> Interaction:
    return Interaction(list(param(meta, "inputCols")), param(meta, "outputCol"))


# --- VectorAssembler ----------------------------------------------------------------------------


class VectorAssembler:
    name = "VectorAssembler"

    def __init__(self, inputs: list[str], output: str, keep: bool):
        self.inputs, self.output, self.keep = inputs, output, keep

    def transform(self, frame: Frame) -> Frame:
        parts = [scalar_or_matrix(frame[c]) for c in self.inputs]
        vec = np.hstack(parts) if parts else np.zeros((num_rows(frame), 0))
        if not self.keep and np.isnan(vec).any():
            raise ValueError("VectorAssembler: a null or NaN input (handleInvalid=error)")
        out = dict(frame)
        out[self.output] = vec
        return out


@register("org.apache.spark.ml.feature.VectorAssembler")
def _assembler(path: Path, meta: dict) -> VectorAssembler:
    keep = _handle(meta, "VectorAssembler") == "keep"
    return VectorAssembler(list(param(meta, "inputCols")), param(meta, "outputCol"), keep)


# --- scalers ------------------------------------------------------------------------------------


class ShiftScale:
    """StandardScaler / RobustScaler: (x - shift) * scale, scale = 1 / std (0 where std is 0)."""

    def __init__(self, name: str, src: str, dst: str, shift: np.ndarray | None, scale: np.ndarray | None):
        self.name, self.src, self.dst, self.shift, self.scale = name, src, dst, shift, scale

    def transform(self, frame: Frame) -> Frame:
        x = frame[self.src]
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 is NaN, as in Spark
            if self.shift is not None:
                x = x - self.shift
            if self.scale is not None:
                x = x * self.scale
        out = dict(frame)
        out[self.dst] = np.array(x, dtype=np.float64, copy=True)
        return out


def _inverse(v: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(v == 0, 0.0, 1.0 / np.where(v == 0, 1.0, v))


@register("org.apache.spark.ml.feature.StandardScalerModel")
def _standard(path: Path, meta: dict) -> ShiftScale:
    row = read_data(path)[0]
    std, mean = vector(row["std"]), vector(row["mean"])
    return ShiftScale("StandardScalerModel", param(meta, "inputCol"), param(meta, "outputCol"),
                      mean if param(meta, "withMean", False) else None, _inverse(std) if param(meta, "withStd", True) else None)


@register("org.apache.spark.ml.feature.RobustScalerModel")
def _robust(path: Path, meta: dict) -> ShiftScale:
    row = read_data(path)[0]
    rng, median = vector(row["range"]), vector(row["median"])
    return ShiftScale("RobustScalerModel", param(meta, "inputCol"), param(meta, "outputCol"),
                      median if param(meta, "withCentering", False) else None,
                      _inverse(rng) if param(meta, "withScaling", True) else None)


class MinMaxScaler:
    name = "MinMaxScalerModel"

    def __init__(self, src: str, dst: str, lo: np.ndarray, hi: np.ndarray, out_min: float, out_max: float):
        self.src, self.dst, self.lo, self.out_min = src, dst, lo, out_min
        self.scale = out_max - out_min
        rng = hi - lo
        self.factor = np.where(rng != 0, self.scale / np.where(rng != 0, rng, 1.0), 0.0)

    def transform(self, frame: Frame) -> Frame:
        x = frame[self.src]
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.where(self.factor != 0, (x - self.lo) * self.factor + self.out_min,
                              0.5 * self.scale + self.out_min)
        out = dict(frame)
        out[self.dst] = np.where(np.isnan(x), x, scaled)
        return out


@register("org.apache.spark.ml.feature.MinMaxScalerModel")
def _minmax(path: Path, meta: dict) -> MinMaxScaler:
    row = read_data(path)[0]
    return MinMaxScaler(param(meta, "inputCol"), param(meta, "outputCol"), vector(row["originalMin"]),
                        vector(row["originalMax"]), float(param(meta, "min", 0.0)), float(param(meta, "max", 1.0)))
