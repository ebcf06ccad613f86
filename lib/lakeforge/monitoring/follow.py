"""``lakeforge monitor --follow``: the batch monitor's computation as Spark Structured Streaming
over the online prediction log, in windows of ``monitoring.follow_minutes`` minutes.

Two streaming queries, each with its checkpoint under the warehouse
(``<warehouse>/_checkpoints/monitor_follow/<pipeline>/<log table>/{log,windows_<N>min}``: a new
window length computes the windows again from the start of the table; the files stay loaded once):

1. **log** (when no ingest source of the pipeline loads the log table): the finished JSON-lines
   files of ``lakeforge serve`` (``<serving.log_dir>/<pipeline>/*.jsonl``; a ``.jsonl.part`` file
   is still being written) -> the Delta table ``monitoring.prediction_log`` (default
   ``prediction_log_<pipeline>``), appended exactly once per file (file source + Delta sink).
   When a source in the pipeline YAML loads that table (``lakeforge ingest``), that loader owns it
   and this query does not run.
2. **windows**: that Delta table -> event time ``logged_at`` with a watermark of
   ``follow_late_minutes`` -> every monitored column stacked by one ``explode`` (the bins of the
   record's model version's reference, as lakeforge.monitoring.aggregates does) -> grouped by
   (window, model version, column, bin / category) in Spark's state -> emitted once per window
   when the watermark passes its end (append mode: only complete windows, never reopened; a
   record older than the watermark is dropped) -> foreachBatch:
   lakeforge.monitoring.follow_windows closes the windows (idempotent writes).

A restart resumes from the checkpoints: the files and table versions already read are not read
again, the open windows' partial counts come back from the state store, and a batch interrupted
after its writes is run again with the same rows (its writes replace the same windows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import StringType, TimestampType

from lakeforge.core.config import PipelineConfig
from lakeforge.core.errors import InputDataError
from lakeforge.core.settings import Settings
from lakeforge.core.sql import q
from lakeforge.monitoring import alerts as al
from lakeforge.monitoring.aggregates import NULL_BIN, ColumnSpec, bucket
from lakeforge.monitoring.follow_windows import ROWS_ENTRY, ClosedWindow, VersionPlan, WindowCloser
from lakeforge.monitoring.reference import load_reference, reference_table, window_specs
from lakeforge.monitoring.statistics import NumericHist

LOG_TYPES = {"request_id": "string", "record_index": "bigint", "logged_at": "string", "model_name": "string",
             "model_version": "string"}
MAX_VERSIONS = 5  # the newest model versions with a reference are monitored; older ones only counted
REFERENCE_POLL_S = 60  # how often a running --follow looks for a newly trained version's reference


@dataclass
class FollowPlan:
    table: str  # the prediction log's Delta table (qualified)
    files: str | None  # the log folder --follow streams into it (None: a configured ingest source loads it)
    versions: dict[tuple[str, str], VersionPlan]
    checkpoint: str  # the folder of both queries' checkpoints (log, windows_<N>min)
    log_columns: dict[str, bool] = field(default_factory=dict)  # the key and every reference column -> numeric?


@dataclass
class FollowResult:
    windows: list[ClosedWindow] = field(default_factory=list)
    alerts: list[al.Alert] = field(default_factory=list)
    restarts: int = 0


def log_table(settings: Settings, pipeline: PipelineConfig) -> str:
    return settings.table(pipeline.monitoring.prediction_log or f"prediction_log_{pipeline.name}")


def plan_follow(spark: SparkSession, settings: Settings, pipeline: PipelineConfig) -> FollowPlan:
    """The versions to monitor (their references), the log table and who loads it; every check
    before a query starts."""
    table = log_table(settings, pipeline)
    loaders = [n for n, t, _ in pipeline.ingest_plan() if settings.table(t) == table]
    files = None
    if not loaders:
        if not settings.serving.log_dir:
            raise InputDataError(f"serving.log_dir is null (no prediction log) and no source of {pipeline.file} "
                                 f"loads {table}: set serving.log_dir, or add a source that loads {table}")
        files = str(settings.path(settings.serving.log_dir) / pipeline.name)
    versions, log_columns = {}, {pipeline.key: False}
    for name, version in reference_versions(spark, settings, pipeline):
        reference = load_reference(spark, settings, pipeline, name, version)
        log_columns.update({c: isinstance(s, NumericHist) for c, s in reference.items()})
        wanted = pipeline.monitoring.columns or sorted(reference)
        unknown = [c for c in wanted if c not in reference]
        if unknown:
            raise InputDataError(f"monitoring.columns {unknown} are not in the reference of model {name} version "
                                 f"{version} (it has {sorted(reference)}); fix monitoring.columns; nothing was written")
        kept = {c: reference[c] for c in wanted}
        versions[(name, version)] = VersionPlan(name, version, kept, window_specs(kept))
    checkpoint = f"{settings.warehouse.rstrip('/')}/_checkpoints/monitor_follow/{pipeline.name}/{table}"
    return FollowPlan(table, files, versions, checkpoint, log_columns)


def reference_versions(spark: SparkSession, settings: Settings, pipeline: PipelineConfig) -> list[tuple[str, str]]:
    """The newest MAX_VERSIONS (model name, version) pairs with a stored reference (one small query)."""
    table = settings.table(reference_table(pipeline))
    if not spark.catalog.tableExists(table):
        raise InputDataError(f"no monitoring reference in {table}: it is written by 'lakeforge train' when a "
                             f"model version is registered; train {pipeline.file} first")
    rows = (spark.table(table).groupBy("model_name", "model_version").agg(F.max("created_at").alias("at"))
            .orderBy(F.col("at").desc()).limit(MAX_VERSIONS).collect())
    return sorted((r["model_name"], str(r["model_version"])) for r in rows)


# ------------------------------------------------------------------------------------------
# The log query: finished JSON-lines files -> the log table
# ------------------------------------------------------------------------------------------


def log_rows(raw: DataFrame, columns: dict[str, bool]) -> DataFrame:
    """The log's JSON fields typed for the table: the key as text, the model's numeric inputs and
    outputs as doubles (``try_cast``: a value that is not a number becomes null), the others as
    text, ``logged_at`` as a timestamp; plus ``_source`` (the file) and ``_ingested_at``."""
    typed = [F.col(q(c)) if c != "logged_at" else F.try_to_timestamp(F.col("logged_at")).alias("logged_at")
             for c in LOG_TYPES]
    typed += [F.expr(f"try_cast({q(c)} AS double)").alias(c) if numeric else F.col(q(c)) for c, numeric in columns.items()
              if c not in LOG_TYPES]
    return raw.select(*typed, F.col("_metadata.file_path").alias("_source"), F.current_timestamp().alias("_ingested_at"))


def _start_log_query(spark: SparkSession, plan: FollowPlan, trigger: dict) -> StreamingQuery:
    columns = plan.log_columns
    fields = [f"{q(c)} {t}" for c, t in LOG_TYPES.items()] + [f"{q(c)} string" for c in columns if c not in LOG_TYPES]
    raw = (spark.readStream.format("json").schema(", ".join(fields)).option("pathGlobFilter", "*.jsonl")
           .load(plan.files))
    return (log_rows(raw, columns).writeStream.format("delta").outputMode("append").option("mergeSchema", "true")
            .option("checkpointLocation", f"{plan.checkpoint}/log").queryName("prediction-log")
            .trigger(**trigger).toTable(plan.table))


def _check_log_owner(spark: SparkSession, plan: FollowPlan) -> None:
    """A first start must not load files that another loader (``lakeforge ingest``) already put in
    the table: the rows would be there twice."""
    jvm = spark._jvm  # noqa: SLF001 - Hadoop's FileSystem, for checkpoints on any storage
    path = jvm.org.apache.hadoop.fs.Path(f"{plan.checkpoint}/log")
    started = path.getFileSystem(spark._jsc.hadoopConfiguration()).exists(path)  # noqa: SLF001
    if not started and spark.catalog.tableExists(plan.table) and not spark.table(plan.table).isEmpty():
        raise InputDataError(f"{plan.table} already has rows that --follow did not load (lakeforge ingest?); "
                             f"--follow would load the files in {plan.files} again. Set monitoring.prediction_log to "
                             f"a new table, or keep loading it with a source in the pipeline YAML; nothing was written")


# ------------------------------------------------------------------------------------------
# The window query: the log table -> grouped rows of the closed windows -> WindowCloser
# ------------------------------------------------------------------------------------------


def _entry(c: str, b: Column, v: Column, p: Column, x: Column) -> Column:
    return F.struct(F.lit(c).alias("c"), b.cast("int").alias("b"), v.cast("string").alias("v"),
                    p.cast("double").alias("p"), x.cast("double").alias("x"))


def _entries(specs: list[ColumnSpec], cleaned: dict[str, str]) -> list[Column]:
    """One stacked entry per monitored column (its bin in this version's reference edges, or its
    category), as lakeforge.monitoring.aggregates stacks them; plus the row's own entry."""
    out, none = [], F.lit(None)
    for s in specs:
        x = F.col(cleaned[s.name])
        if s.numeric:
            b = F.when(x.isNull(), F.lit(NULL_BIN)).otherwise(bucket(x, s.edges) if s.edges else F.lit(0))
            out.append(_entry(s.name, b, none, none, x))
        else:
            out.append(_entry(s.name, F.when(x.isNull(), F.lit(NULL_BIN)).otherwise(F.lit(0)), x, none, none))
    return out + [_entry(ROWS_ENTRY, F.lit(0), none, none, none)]


def _clean(df: DataFrame, name: str, numeric: bool) -> Column:
    if name not in df.columns:
        raise InputDataError(f"monitored column {name!r} is not in the prediction log table (it has "
                             f"{sorted(df.columns)}); fix monitoring.columns or the log; nothing was written")
    col = F.col(q(name))
    if not numeric:
        return col.cast("string")
    x = F.expr(f"try_cast({q(name)} AS double)") if isinstance(df.schema[name].dataType, StringType) else col.cast("double")
    return F.when(F.isnan(x), F.lit(None).cast("double")).otherwise(x)


def window_groups(log: DataFrame, versions: dict[tuple[str, str], VersionPlan], minutes: int,
                  late_minutes: int) -> DataFrame:
    """The prediction log's rows -> (ws, we: the window's epoch seconds, model_name, model_version,
    c, b, v, p, n, sx, sxx, lo, hi): the grouped rows aggregates.build reads. On a stream, with a
    watermark: each window's rows come out once, when the watermark passes its end."""
    t = F.col("logged_at")
    event = t if isinstance(log.schema["logged_at"].dataType, TimestampType) else F.try_to_timestamp(t.cast("string"))
    columns = {s.name: s.numeric for p in versions.values() for s in p.specs}
    cleaned = {c: f"_m{i}" for i, c in enumerate(columns)}
    rows = (log.select(event.alias("_t"), F.col("model_name").cast("string").alias("model_name"),
                       F.col("model_version").cast("string").alias("model_version"),
                       *[_clean(log, c, numeric).alias(cleaned[c]) for c, numeric in columns.items()])
            .where(F.col("_t").isNotNull()).withWatermark("_t", f"{late_minutes} minutes"))
    stacked = F.array(_entry(ROWS_ENTRY, F.lit(0), F.lit(None), F.lit(None), F.lit(None)))
    for (name, version), plan in versions.items():
        mine = (F.col("model_name") == name) & (F.col("model_version") == version)
        stacked = F.when(mine, F.array(*_entries(plan.specs, cleaned))).otherwise(stacked)
    exploded = rows.select("_t", "model_name", "model_version", F.explode(stacked).alias("e")).select(
        "_t", "model_name", "model_version", "e.*")
    grouped = exploded.groupBy(F.window("_t", f"{minutes} minutes").alias("w"), "model_name", "model_version",
                               "c", "b", "v", "p").agg(
        F.count(F.lit(1)).alias("n"), F.sum("x").alias("sx"), F.sum(F.col("x") * F.col("x")).alias("sxx"),
        F.min("x").alias("lo"), F.max("x").alias("hi"))
    return grouped.select(F.unix_seconds("w.start").alias("ws"), F.unix_seconds("w.end").alias("we"),
                          "model_name", "model_version", "c", "b", "v", "p", "n", "sx", "sxx", "lo", "hi")


def _start_window_query(spark: SparkSession, plan: FollowPlan, pipeline: PipelineConfig, closer: WindowCloser,
                        trigger: dict) -> StreamingQuery:
    cfg = pipeline.monitoring
    reader = spark.readStream.format("delta")
    if plan.files is None:  # an ingest rerun replaces a file's rows: those commits were read already
        reader = reader.option("skipChangeCommits", "true")
    groups = window_groups(reader.table(plan.table), plan.versions, cfg.follow_minutes, cfg.follow_late_minutes)
    return (groups.writeStream.outputMode("append").foreachBatch(closer).queryName("monitor-windows")
            .option("checkpointLocation", f"{plan.checkpoint}/windows_{cfg.follow_minutes}min").trigger(**trigger)
            .start())


# ------------------------------------------------------------------------------------------
# Running both
# ------------------------------------------------------------------------------------------


def follow(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, available_now: bool = False,
           progress: Callable[[str], None] | None = None) -> FollowResult:
    """Run the queries until stopped (Ctrl-C), or with ``available_now`` until everything logged so
    far is read and every window the watermark closes is written; then return what was closed."""
    say = progress or (lambda _m: None)
    cfg = pipeline.monitoring
    plan = plan_follow(spark, settings, pipeline)
    trigger = {"availableNow": True} if available_now else {"processingTime": f"{cfg.follow_trigger_seconds} seconds"}
    if plan.files is not None:
        _check_log_owner(spark, plan)
        settings.path(plan.files).mkdir(parents=True, exist_ok=True)
    say(f"following {plan.table}" + (f" (loaded from {plan.files}/*.jsonl by this process)" if plan.files else
                                     " (loaded by lakeforge ingest)")
        + f": windows of {cfg.follow_minutes} min, closed {cfg.follow_late_minutes} min after their end; model versions "
        + ", ".join(f"{n} v{v}" for n, v in plan.versions) + f"; checkpoints in {plan.checkpoint}")
    result = FollowResult()
    running = _Running(spark, settings, pipeline, say)
    try:
        running.start(plan, trigger)
        if available_now:
            running.finish()
        else:
            _watch(running, plan, trigger, result)
    except KeyboardInterrupt:
        say("stopped (Ctrl-C); the next start resumes from the checkpoints")
    finally:
        running.stop()
    result.windows = [w for c in running.closers for w in c.closed]
    result.alerts = [a for c in running.closers for a in c.alerts]
    return result


class _Running:
    """The two queries of one plan (the log query only when --follow loads the table)."""

    def __init__(self, spark: SparkSession, settings: Settings, pipeline: PipelineConfig, say: Callable[[str], None]):
        self.spark, self.settings, self.pipeline, self.say = spark, settings, pipeline, say
        self.log: StreamingQuery | None = None
        self.windows: StreamingQuery | None = None
        self.closers: list[WindowCloser] = []
        self._plan: FollowPlan | None = None
        self._trigger: dict = {}

    def start(self, plan: FollowPlan, trigger: dict) -> None:
        self._plan, self._trigger = plan, trigger
        if plan.files is not None:
            self.log = _start_log_query(self.spark, plan, trigger)
            if "availableNow" in trigger:  # every finished file in the table before the windows are read
                self.log.awaitTermination()
        if not self.spark.catalog.tableExists(plan.table):
            raise InputDataError(f"{plan.table} does not exist: load the prediction log first "
                                 f"('lakeforge ingest {self.pipeline.file} --source ...')")
        closer = WindowCloser(self.spark, self.settings, self.pipeline, plan.versions, self.say)
        self.closers.append(closer)
        self.windows = _start_window_query(self.spark, plan, self.pipeline, closer, trigger)

    def finish(self) -> None:
        if self.windows is not None:
            self.windows.awaitTermination()

    def failed(self) -> None:
        """Raise the error of a query that stopped by itself."""
        for query in (self.log, self.windows):
            if query is not None and not query.isActive:
                query.awaitTermination()  # raises StreamingQueryException when it failed
                raise InputDataError(f"streaming query {query.name} stopped")

    def stop(self) -> None:
        for query in (self.windows, self.log):
            if query is not None and query.isActive:
                query.stop()
        self.log = self.windows = None


def _watch(running: _Running, plan: FollowPlan, trigger: dict, result: FollowResult) -> None:
    """Until Ctrl-C or a failure: every REFERENCE_POLL_S seconds, a version trained since the start
    restarts both queries with its reference (the state and the files read are kept)."""
    next_poll = time.monotonic() + REFERENCE_POLL_S
    while True:
        time.sleep(1.0)
        running.failed()
        if time.monotonic() < next_poll:
            continue
        next_poll = time.monotonic() + REFERENCE_POLL_S
        if reference_versions(running.spark, running.settings, running.pipeline) != sorted(plan.versions):
            running.stop()
            plan = plan_follow(running.spark, running.settings, running.pipeline)
            running.say("a new model version's reference: restarting with versions "
                        + ", ".join(f"{n} v{v}" for n, v in plan.versions))
            running.start(plan, trigger)
            result.restarts += 1
