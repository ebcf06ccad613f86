"""A fitted preprocessing model's feature vector: the name and source column of every slot, and
the gold feature table (the key and one column per slot)."""

from __future__ import annotations

import re

from pyspark.ml import PipelineModel
from pyspark.ml.feature import PCAModel, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.core.columns import FEATURES_COL
from lakeforge.features.pipeline import NUMERIC_COL, NUMERIC_RAW_COL
from lakeforge.features.stages import SlotNamer

# The gold feature table gets one column per slot up to this many slots, else one array column.
MAX_NAMED_COLUMNS = 1000


def slot_names(prep_model: PipelineModel, df: DataFrame, features_col: str = FEATURES_COL) -> list[tuple[str, str]]:
    """(slot name, source column) for every slot of the fitted model's feature vector, from the
    vector's ML attribute metadata (schema only, no Spark job)."""
    stages = prep_model.stages
    assemblers = [s for s in stages if isinstance(s, VectorAssembler)]
    block = next((s.getInputCols() for s in assemblers if s.getOutputCol() == NUMERIC_RAW_COL), [])
    final = next((s for s in reversed(assemblers) if s.getOutputCol() != NUMERIC_RAW_COL), None)
    if final is None:
        return []
    scaled = any(s.hasParam("outputCol") and s.getOrDefault("outputCol") == NUMERIC_COL for s in stages)
    namer = SlotNamer(final.getInputCols(), NUMERIC_COL if scaled else None, block)
    schema = prep_model.transform(df.limit(0)).schema
    if isinstance(stages[-1], PCAModel):
        return [(f"pc{i + 1}", "pca") for i in range(stages[-1].getK())]
    return namer.names(schema[features_col])


def feature_table(prep_model: PipelineModel, df: DataFrame, key: str, features_col: str = FEATURES_COL) -> DataFrame:
    """``key`` and one double column per slot of the feature vector (names made safe for Delta),
    or one array column ``features`` beyond MAX_NAMED_COLUMNS slots."""
    from pyspark.ml.functions import vector_to_array

    names = [n for n, _ in slot_names(prep_model, df, features_col)]
    arr = vector_to_array(F.col(features_col))
    scored = prep_model.transform(df)
    if len(names) > MAX_NAMED_COLUMNS:
        return scored.select(F.col(key), arr.alias("features"))
    seen: set[str] = {key.lower()}
    cols = []
    for i, n in enumerate(names):
        base = re.sub(r"[^A-Za-z0-9]+", "_", n).strip("_") or f"f{i}"
        name, k = base, 2
        while name.lower() in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name.lower())
        cols.append(arr[i].alias(name))
    return scored.select(F.col(key), *cols)
