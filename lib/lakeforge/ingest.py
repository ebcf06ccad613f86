"""Ingest: raw source -> bronze Delta table with ingestion metadata."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.config import PipelineConfig, Settings
from lakeforge.errors import InputDataError
from lakeforge.io import WriteResult, read_source, require_columns, write_table

METADATA_COLUMNS = ("_ingested_at", "_source_file", "_run_id", "_run_date")


@dataclass(frozen=True)
class IngestResult:
    write: WriteResult
    source: str


def with_ingest_metadata(run_id: str, run_date: dt.date, source_label: str | None = None) -> Callable[[DataFrame], DataFrame]:
    """Add ``_ingested_at``, ``_source_file``, ``_run_id`` and ``_run_date``.

    ``_source_file`` is the file each row came from (Spark's ``_metadata.file_path``) for file
    sources, or ``source_label`` for sources without files.
    """

    def transform(df: DataFrame) -> DataFrame:
        clash = [c for c in METADATA_COLUMNS if c in df.columns]
        if clash:
            raise InputDataError(f"source already has lakeforge metadata column(s) {clash}; rename them")
        source = F.lit(source_label) if source_label is not None else F.col("_metadata.file_path")
        return df.select(
            "*",
            F.current_timestamp().alias("_ingested_at"),
            source.alias("_source_file"),
            F.lit(run_id).alias("_run_id"),
            F.lit(run_date).cast("date").alias("_run_date"),
        )

    return transform


def ingest(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, run_id: str, run_date: dt.date) -> IngestResult:
    """Read the pipeline's source and write it to its bronze table in one atomic commit.

    Checked before anything is written: the path exists, the key and target columns (and any
    listed feature) exist, and the source has at least one row.
    """
    raw = read_source(spark, pipeline.source, settings, where=f"{pipeline.file}: source")
    wanted = [pipeline.key, pipeline.target, *pipeline.features.numeric, *pipeline.features.categorical]
    require_columns(raw, wanted, f"{pipeline.file}: source {pipeline.source.path}")
    if raw.isEmpty():
        raise InputDataError(
            f"{pipeline.file}: source {pipeline.source.path} has no rows; refusing to replace "
            f"{settings.table(pipeline.tables.bronze)} with nothing"
        )
    label = None if pipeline.source.format != "delta" or "/" in pipeline.source.path else pipeline.source.path
    bronze = raw.transform(with_ingest_metadata(run_id, run_date, label))
    table = settings.table(pipeline.tables.bronze)
    if pipeline.ingest.mode == "append":
        result = write_table(bronze, table, partition_col="_run_date", partition_value=run_date)
    else:
        result = write_table(bronze, table)
    return IngestResult(result, pipeline.source.path)
