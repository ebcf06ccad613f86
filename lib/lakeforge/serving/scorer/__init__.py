"""A JVM-free scorer of saved Spark ML PipelineModels: each fitted stage is read from the files
Spark wrote (JSON metadata + Parquet data) and computed in numpy, float64, so a served model gives
the batch scores exactly. See lakeforge.serving.scorer.base for the frame and stage conventions.
"""

from lakeforge.serving.scorer.base import Frame, Stage, UnsupportedStage, load_stage, num_rows
from lakeforge.serving.scorer.pipeline import NumpyPipeline, load_pipeline

__all__ = ["Frame", "NumpyPipeline", "Stage", "UnsupportedStage", "load_pipeline", "load_stage", "num_rows"]
