"""A saved PipelineModel (or an MLflow spark-flavor model directory) as one numpy scorer.

``load_pipeline(path)`` reads every stage (nested PipelineModels are flattened) and refuses, with
the stage's Spark class name, a stage the scorer cannot compute (``UnsupportedStage``).
``NumpyPipeline.transform`` runs the stages in order on a frame; ``frame_from_records`` builds
that frame from JSON-like records (lakeforge.serving.scorer.base explains the frame).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lakeforge.serving.scorer.base import LOADERS, Frame, Stage, load_stage, param, read_metadata, register

# the modules whose loaders register the stages (imported once, on first load)
STAGE_MODULES = (
    "lakeforge.serving.scorer.feature_stages",  # imputer, indexer, one-hot, assembler, scalers, buckets...
    "lakeforge.serving.scorer.sql_stages",      # the SQLTransformer statements lakeforge generates
    "lakeforge.serving.scorer.text_stages",     # RegexTokenizer, HashingTF, IDF
    "lakeforge.serving.scorer.selection_stages",  # feature selectors, PCA, VectorSlicer
    "lakeforge.serving.scorer.linear_models",   # logistic / linear / GLM / SVC / naive Bayes / FM / MLP
    "lakeforge.serving.scorer.tree_models",     # decision tree, random forest, GBT
    "lakeforge.serving.scorer.xgboost_models",  # lakeforge's XGBoost stage
    "lakeforge.serving.scorer.meta_models",     # OneVsRest, IndexToString
)


def _import_stage_modules() -> None:
    for m in STAGE_MODULES:
        importlib.import_module(m)


@dataclass
class NumpyPipeline:
    stages: list[Stage]
    path: Path

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def transform(self, frame: Frame) -> Frame:
        # NaN or infinite inputs give NaN or infinite scores silently in Spark's JVM, and here
        # equally (tests/test_serve_parity.py): numpy's RuntimeWarnings about them would only be
        # noise in the server's log, one per request.
        with np.errstate(all="ignore"):
            for s in self.stages:
                frame = s.transform(frame)
        return frame


class _PipelineStage:
    """A nested PipelineModel: its stages in order."""

    name = "PipelineModel"

    def __init__(self, stages: list[Stage]):
        self.stages = stages

    def transform(self, frame: Frame) -> Frame:
        for s in self.stages:
            frame = s.transform(frame)
        return frame


def _stage_dirs(path: Path, meta: dict) -> list[Path]:
    uids = param(meta, "stageUids") or []
    stages_dir = path / "stages"
    dirs = []
    for i, uid in enumerate(uids):
        d = stages_dir / f"{i}_{uid}"
        if not d.exists():  # older layouts pad the index
            d = next(iter(sorted(stages_dir.glob(f"*_{uid}"))), d)
        dirs.append(d)
    return dirs


PIPELINE_CLASSES = ("org.apache.spark.ml.PipelineModel",
                    "pyspark.ml.pipeline.PipelineModel")  # PySpark's writer, when a stage (OneVsRest) is Python-saved


@register(*PIPELINE_CLASSES)
def _load_pipeline_model(path: Path, meta: dict) -> _PipelineStage:
    return _PipelineStage([load_stage(d) for d in _stage_dirs(path, meta)])


def spark_model_dir(path: Path) -> Path:
    """The PipelineModel directory in ``path``: itself, or the ``sparkml`` folder of an MLflow model."""
    path = Path(path)
    if (path / "metadata").is_dir():
        return path
    if (path / "sparkml" / "metadata").is_dir():
        return path / "sparkml"
    raise FileNotFoundError(f"{path}: neither a saved Spark PipelineModel nor an MLflow spark model (no sparkml/ folder)")


def _flatten(stages: list[Stage]) -> list[Stage]:
    out: list[Stage] = []
    for s in stages:
        out.extend(_flatten(s.stages) if isinstance(s, _PipelineStage) else [s])
    return out


def load_pipeline(path: Path) -> NumpyPipeline:
    _import_stage_modules()
    root = spark_model_dir(path)
    meta = read_metadata(root)
    if meta["class"] not in PIPELINE_CLASSES:
        return NumpyPipeline([load_stage(root)], root)
    return NumpyPipeline(_flatten(LOADERS[meta["class"]](root, meta).stages), root)


def frame_from_records(records: list[dict], columns: list[str]) -> Frame:
    """The frame of ``records`` for ``columns`` (missing keys are null); values are kept as given."""
    frame: Frame = {}
    for c in columns:
        col = np.empty(len(records), dtype=object)
        col[:] = [r.get(c) for r in records]
        frame[c] = col
    return frame
