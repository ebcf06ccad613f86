"""A model's MLflow input signature from the training table's schema, not from sample rows.

MLflow infers a signature from pandas rows by default; lakeforge used to pass it 5 rows, so an
integer column with a null among them became ``double`` (pandas has no null integers), and a
column null in all 5 rows got no usable type. The server (lakeforge.serving) checks requests
against these types, so they must be the table's: ``int`` stays ``integer``, ``date`` and
``timestamp`` are ``datetime``, structs are objects and arrays arrays, whatever the rows hold.
Decimals become ``double`` (MLflow has no decimal type; the example rows are cast the same way).
"""

from __future__ import annotations

import warnings

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType


def without_decimals(df: DataFrame) -> DataFrame:
    """``df`` with every decimal column cast to double (MLflow can neither type nor store them)."""
    return df.select(*[
        F.col(f"`{f.name}`").cast("double").alias(f.name) if isinstance(f.dataType, DecimalType) else F.col(f"`{f.name}`")
        for f in df.schema.fields])


def input_signature(inputs: DataFrame):
    """The MLflow ModelSignature (inputs only) of the model's input columns, from ``inputs``'
    schema alone: no row is read (a map column's keys excepted, which MLflow collects)."""
    from mlflow.models import infer_signature

    with warnings.catch_warnings():  # MLflow's hint that pandas integers cannot be null: not the case here
        warnings.simplefilter("ignore")
        return infer_signature(without_decimals(inputs))
