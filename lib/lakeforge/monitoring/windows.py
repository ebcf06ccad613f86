"""Which scored rows make up each window, and where their model inputs come from.

A window is ``monitoring.granularity_days`` run dates of the predictions table (partitioned by
run_date). The predictions keep only the key and the score; the inputs are the input table's
version that the score run of that date read (recorded in ``job_runs``: input_table,
input_version), joined on the key. Without such a record only the score columns are monitored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.io import read_version
from lakeforge.core.runs import JOB_RUNS_TABLE
from lakeforge.core.settings import Settings
from lakeforge.core.sql import q

EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class DateBatch:
    """One run date of the predictions table: its rows, model version and the input it scored."""

    run_date: dt.date
    rows: int
    model_name: str
    model_version: str
    input_table: str | None
    input_version: int | None


def window_start(day: dt.date, granularity_days: int) -> dt.date:
    return day - dt.timedelta(days=(day - EPOCH).days % granularity_days)


def window_start_col(col: Column, granularity_days: int) -> Column:
    if granularity_days == 1:
        return col.cast("date")
    days = F.datediff(col.cast("date"), F.lit(EPOCH))
    return F.date_sub(col.cast("date"), (days % granularity_days).cast("int"))


def granularity(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def date_batches(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, dates: list[dt.date]) -> list[DateBatch]:
    """One small query (run_date, model version, rows) over the dates' partitions, plus job_runs.
    Raises for a date with no scored rows: nothing is written then."""
    table = settings.table(pipeline.tables.predictions)
    if not spark.catalog.tableExists(table):
        raise InputDataError(f"predictions table {table} does not exist; run 'lakeforge score {pipeline.file}' first")
    found = (spark.table(table).where(F.col("run_date").isin(dates))
             .groupBy("run_date", "model_name", "model_version").count().collect())
    by_date: dict[dt.date, list] = {}
    for r in found:
        by_date.setdefault(r["run_date"], []).append(r)
    empty = [d for d in dates if d not in by_date]
    if empty:
        raise InputDataError(
            f"{table} has no scored rows for run date(s) {', '.join(map(str, empty))}; score them first "
            f"('lakeforge score {pipeline.file} --run-date ...') or monitor other dates; nothing was written")
    inputs = score_inputs(spark, settings, pipeline.name, dates)
    batches = []
    for d in dates:
        main = max(by_date[d], key=lambda r: r["count"])  # a date is scored by one version
        table_in, version_in = inputs.get(d, (None, None))
        batches.append(DateBatch(d, sum(r["count"] for r in by_date[d]), main["model_name"], str(main["model_version"]),
                                 table_in, version_in))
    return batches


def score_inputs(spark: SparkSession, settings: Settings, pipeline: str, dates: list[dt.date]) -> dict:
    """run date -> (input table, input version) of its last successful score run."""
    runs = settings.table(JOB_RUNS_TABLE)
    if not spark.catalog.tableExists(runs):
        return {}
    rows = (spark.table(runs).where("job = 'score' AND status = 'succeeded' AND input_version IS NOT NULL")
            .where((F.col("pipeline") == pipeline) & F.col("run_date").isin(dates))
            .select("run_date", "input_table", "input_version", "finished_at").collect())
    latest: dict = {}
    for r in sorted(rows, key=lambda r: r["finished_at"]):
        latest[r["run_date"]] = (r["input_table"], int(r["input_version"]))
    return latest


def scored_rows(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, batches: list[DateBatch],
                columns: list[str]) -> DataFrame:
    """The dates' predictions with the model input ``columns`` joined from the input version each
    score run read (a column the input lacks is an error naming it; nothing is written)."""
    preds = spark.table(settings.table(pipeline.tables.predictions))
    own = set(preds.columns)
    parts = []
    for b in batches:
        p = preds.where(F.col("run_date") == F.lit(b.run_date))
        wanted = [c for c in columns if c not in own]
        if wanted and b.input_table is not None:
            source = read_version(spark, b.input_table, b.input_version)
            missing = [c for c in wanted if c not in source.columns]
            if missing:
                raise InputDataError(
                    f"{b.input_table} version {b.input_version} (scored on {b.run_date}) lacks monitored column(s) "
                    f"{missing}; fix monitoring.columns; nothing was written")
            keyed = source.select(F.col(q(pipeline.key)), *[F.col(q(c)) for c in wanted])
            p = p.join(keyed.dropDuplicates([pipeline.key]), pipeline.key, "left")
        else:
            p = p.select("*", *[F.lit(None).alias(c) for c in wanted])
        parts.append(p.select(*[F.col(q(c)) for c in columns], "run_date", "model_version"))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out
