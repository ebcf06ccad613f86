"""``lakeforge serve --spark-fallback``: score with a local SparkSession and
``PipelineModel.transform`` when the numpy scorer cannot compute a stage. Slow (a Spark job per
request, hundreds of milliseconds) but exact by definition; /model says ``"scorer": "spark"``.

The records become a DataFrame typed by the model's MLflow signature (objects as structs,
arrays as arrays; a ``datetime`` column as DATE when a request sends dates only, else as
TIMESTAMP), the model's output columns are collected back into a frame, and
lakeforge.serving.predict computes the answer from them exactly as for the numpy scorer.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import numpy as np

from lakeforge.core.frames import local_frame
from lakeforge.serving.model_store import signature_columns, spark_folder, stage_classes

OUTPUTS = ("probability", "rawPrediction", "prediction", "predicted_class")
SIMPLE_TYPES = {"string": "StringType", "integer": "IntegerType", "long": "LongType", "double": "DoubleType",
                "float": "FloatType", "boolean": "BooleanType", "datetime": "TimestampType", "binary": "BinaryType"}


def spark_type(spec: dict):
    """The Spark type of one column (or property, or array item) of an MLflow signature, as
    MLflow writes it from the training table's schema: objects are structs, arrays arrays."""
    from pyspark.sql import types as T

    kind = spec.get("type")
    if kind == "object":
        return T.StructType([T.StructField(name, spark_type(p), True) for name, p in spec.get("properties", {}).items()])
    if kind == "array":
        return T.ArrayType(spark_type(spec.get("items", {})), True)
    if kind == "map":
        return T.MapType(T.StringType(), spark_type(spec.get("values", {})), True)
    return getattr(T, SIMPLE_TYPES.get(kind, "StringType"))()


def _only_dates(values: np.ndarray) -> bool:
    """A ``datetime`` column whose values are all dates (the server parses 'YYYY-MM-DD' as a date):
    a DATE column, as in the training table (MLflow's signature has one type for both)."""
    given = [v for v in values if v is not None]
    return bool(given) and all(type(v) is dt.date for v in given)


class SparkScorer:
    kind = "spark"

    def __init__(self, settings, model_folder: Path):
        from pyspark.ml import PipelineModel

        from lakeforge.core.spark import get_spark

        self.spark = get_spark(settings)
        self.model = PipelineModel.load(str(spark_folder(model_folder)))
        self.columns: list[dict] = signature_columns(model_folder)
        self.stages = stage_classes(spark_folder(model_folder))
        self._lock = threading.Lock()  # one Spark job at a time

    def _schema(self, frame: dict[str, np.ndarray]):
        from pyspark.sql import types as T

        return T.StructType([
            T.StructField(c["name"], T.DateType() if c.get("type") == "datetime" and _only_dates(frame[c["name"]])
                          else spark_type(c), True)
            for c in self.columns])

    def transform(self, frame: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pyspark.errors.exceptions.captured import CapturedException
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        schema = self._schema(frame)
        n = len(next(iter(frame.values())))
        rows = [tuple(frame[c.name][i] for c in schema.fields) for i in range(n)]
        with self._lock:
            scored = self.model.transform(local_frame(self.spark, rows, schema))
            cols = [c for c in OUTPUTS if c in scored.columns]
            picked = [vector_to_array(F.col(c)).alias(c) if c in ("probability", "rawPrediction") else F.col(c)
                      for c in cols]
            try:
                got = scored.select(*picked).collect()  # the request's own rows: at most serving.max_records
            except CapturedException as exc:  # a row Spark cannot compute (as in batch scoring): its error class
                condition = getattr(exc, "getCondition", exc.getErrorClass)() or "SPARK_ERROR"
                raise ValueError(f"[{condition}] Spark cannot score the rows") from None
        out = dict(frame)
        for c in cols:
            values = [r[c] for r in got]
            out[c] = (np.asarray(values, dtype=np.float64) if c != "predicted_class"
                      else np.asarray(values, dtype=object))
        return out


def spark_fallback(settings):
    """The ``spark_fallback`` factory of lakeforge.serving.model_store.make_scorer."""
    return lambda model_folder: SparkScorer(settings, model_folder)
