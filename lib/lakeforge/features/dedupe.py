"""Duplicate training rows removed before the features are planned (preprocessing.deduplicate)."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakeforge.core.columns import METADATA_COLUMNS


def deduplicate(how: str, key: str) -> Callable[[DataFrame], DataFrame]:
    """rows: identical rows (ingestion metadata aside) kept once; key: one row per key, the latest
    ingested (ties broken by a hash of the row, so the choice is deterministic)."""

    def transform(df: DataFrame) -> DataFrame:
        content = [c for c in df.columns if c not in METADATA_COLUMNS]
        if how == "rows":
            return df.dropDuplicates(content)
        if how == "key":
            order = ([F.col("_ingested_at").desc_nulls_last()] if "_ingested_at" in df.columns else []) + \
                    [F.xxhash64(*[F.col(c) for c in content]).desc()]
            w = Window.partitionBy(F.col(key)).orderBy(*order)
            return df.withColumn("__dup_rank", F.row_number().over(w)).where(F.col("__dup_rank") == 1).drop("__dup_rank")
        return df

    return transform
