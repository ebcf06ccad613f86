"""``lakeforge serve --spark-fallback``: score with a local SparkSession and
``PipelineModel.transform`` when the numpy scorer cannot compute a stage. Slow (a Spark job per
request, hundreds of milliseconds) but exact by definition; /model says ``"scorer": "spark"``.

The records become a DataFrame typed by the model's MLflow signature, the model's output
columns are collected back into a frame, and lakeforge.serving.predict computes the answer from
them exactly as for the numpy scorer.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from lakeforge.serving.model_store import InputColumn, signature_inputs, spark_folder, stage_classes

OUTPUTS = ("probability", "rawPrediction", "prediction", "predicted_class")


def _spark_type(t: str):
    from pyspark.sql import types as T

    return {"string": T.StringType(), "integer": T.IntegerType(), "long": T.LongType(), "double": T.DoubleType(),
            "float": T.FloatType(), "boolean": T.BooleanType(), "datetime": T.TimestampType(),
            "binary": T.BinaryType()}.get(t, T.StringType())


class SparkScorer:
    kind = "spark"

    def __init__(self, settings, model_folder: Path):
        from pyspark.ml import PipelineModel

        from lakeforge.core.spark import get_spark

        self.spark = get_spark(settings)
        self.model = PipelineModel.load(str(spark_folder(model_folder)))
        self.inputs: list[InputColumn] = signature_inputs(model_folder)
        self.stages = stage_classes(spark_folder(model_folder))
        self._lock = threading.Lock()  # one Spark job at a time

    def transform(self, frame: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        schema = T.StructType([T.StructField(c.name, _spark_type(c.type), True) for c in self.inputs])
        n = len(next(iter(frame.values())))
        rows = [tuple(frame[c.name][i] for c in self.inputs) for i in range(n)]
        with self._lock:
            scored = self.model.transform(self.spark.createDataFrame(rows, schema))
            cols = [c for c in OUTPUTS if c in scored.columns]
            picked = [vector_to_array(F.col(c)).alias(c) if c in ("probability", "rawPrediction") else F.col(c)
                      for c in cols]
            got = scored.select(*picked).collect()  # the request's own rows: at most serving.max_records
        out = dict(frame)
        for c in cols:
            values = [r[c] for r in got]
            out[c] = (np.asarray(values, dtype=np.float64) if c != "predicted_class"
                      else np.asarray(values, dtype=object))
        return out


def spark_fallback(settings):
    """The ``spark_fallback`` factory of lakeforge.serving.model_store.make_scorer."""
    return lambda model_folder: SparkScorer(settings, model_folder)
