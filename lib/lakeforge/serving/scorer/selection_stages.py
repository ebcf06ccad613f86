"""Feature selection on a vector: VectorSlicer, the fitted selectors (variance threshold,
univariate, chi-squared: their selected slots, in index order as Spark's SelectorModel) and PCA
(the projection onto the principal components)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lakeforge.serving.scorer.base import Frame, UnsupportedStage, matrix, param, read_data, register


class Slice:
    def __init__(self, name: str, src: str, dst: str, indices: list[int]):
        self.name, self.src, self.dst = name, src, dst
        self.indices = np.asarray(indices, dtype=np.int64)

    def transform(self, frame: Frame) -> Frame:
        out = dict(frame)
        out[self.dst] = frame[self.src][:, self.indices]
        return out


@register("org.apache.spark.ml.feature.VectorSlicer")
def _slicer(path: Path, meta: dict) -> Slice:
    if param(meta, "names"):
        raise UnsupportedStage("VectorSlicer selecting by names (only indices are supported)")
    return Slice("VectorSlicer", param(meta, "inputCol"), param(meta, "outputCol"), list(param(meta, "indices") or []))


@register("org.apache.spark.ml.feature.VarianceThresholdSelectorModel", "org.apache.spark.ml.feature.UnivariateFeatureSelectorModel",
          "org.apache.spark.ml.feature.ChiSqSelectorModel")
def _selector(path: Path, meta: dict) -> Slice:
    selected = sorted(int(i) for i in read_data(path)[0]["selectedFeatures"])
    return Slice(meta["class"].rsplit(".", 1)[-1], param(meta, "featuresCol", "features"), param(meta, "outputCol"), selected)


class PCA:
    name = "PCAModel"

    def __init__(self, src: str, dst: str, pc: np.ndarray):
        self.src, self.dst, self.pc = src, dst, pc

    def transform(self, frame: Frame) -> Frame:
        out = dict(frame)
        out[self.dst] = frame[self.src] @ self.pc
        return out


@register("org.apache.spark.ml.feature.PCAModel")
def _pca(path: Path, meta: dict) -> PCA:
    return PCA(param(meta, "inputCol"), param(meta, "outputCol"), matrix(read_data(path)[0]["pc"]))
