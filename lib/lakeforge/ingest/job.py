"""Ingest: every configured source -> its bronze Delta table, with quarantine, schema enforcement,
data-quality checks and exactly-once loads.

One load of one source, in order (this module reads and writes; the steps are pure):

1. Read the raw records (lakeforge.ingest.raw, with lakeforge.ingest.readers): text formats as
   strings, typed formats as they are; every row knows its ``_source`` (file / table / URL).
2. Normalise column names to stable identifiers (mapping recorded; lakeforge.ingest.schema).
3. Decide the schema (lakeforge.ingest.schema): the config's ``schema``; else the bronze table's
   (enforced); else inferred on the first load. A new, missing or retyped column fails the load
   with the differences listed, unless ``schema_evolution`` (then Delta mergeSchema; the change
   is recorded).
4. Cast every column (lakeforge.ingest.records, lakeforge.ingest.types); a record that does not
   parse or whose value does not cast gets a reason. ONE pass writes the good rows to bronze
   while an Observation on the scan counts read N and bad Q and collects the bad records (CSV /
   JSON: their reason is worked out afterwards from their text, naming the column and value).
   Only when they are too many to collect, a second pass over the files that had bad rows writes
   them. They go to ``<table>_quarantine`` (raw record, reason, source, position, run id).
   N = M + Q (+ rows removed by ``dedupe``, reported separately).
5. Run the data-quality checks on the committed rows (lakeforge.ingest.quality), then record the
   load in ``ingest_runs`` (counts, files, column mapping, schema changes; status ``succeeded``,
   or ``failed_checks`` when an ``error`` check failed: the load is committed, the stage fails,
   and training and scoring do not read the version unless told to: lakeforge.ingest.gate).

Exactly once: ``overwrite`` replaces the table, ``append`` replaces the run date's partition,
``incremental`` loads only files absent from ``ingest_runs`` (replacing rows of those files, so a
load interrupted after its commit is redone without duplicates) or, for JDBC, only rows above
the table's largest watermark value. A failed load commits nothing to bronze.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from lakeforge.core.config import PipelineConfig
from lakeforge.core.config_source import SourceConfig
from lakeforge.core.frames import local_frame
from lakeforge.core.settings import Settings
from lakeforge.core.errors import InputDataError, LakeforgeError
from lakeforge.core.io import WriteResult, latest_version, table_exists, write_table
from lakeforge.ingest import gate, quality, readers
from lakeforge.ingest.context import LoadContext
from lakeforge.ingest.progress import SparkProgress
from lakeforge.ingest.raw import read_raw
from lakeforge.ingest.records import (
    TypedRecords,
    cast_records,
    check_dedupe,
    good_rows,
    in_list,
    load_error,
    load_metrics,
    observed_counts,
    quarantine_columns,
    quarantine_rows,
    stats_columns,
)
from lakeforge.ingest.schema import data_fields, decide_target, name_columns, old_metadata, require_columns
from lakeforge.ingest.types import parse_ddl

INGEST_RUNS_TABLE = "ingest_runs"
INGEST_RUNS_SCHEMA = (
    "run_id string, run_date date, pipeline string, source_name string, source string, table_name string, "
    "mode string, status string, rows_read long, rows_loaded long, rows_quarantined long, rows_dropped long, "
    "rows_deduplicated long, table_version long, files array<string>, column_mapping string, "
    "schema_changes string, message string, started_at timestamp, finished_at timestamp"
)


@dataclass
class IngestResult:
    name: str
    table: str
    source: str
    mode: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_dropped: int = 0
    rows_deduplicated: int = 0
    version: int | None = None
    files: list[str] = field(default_factory=list)
    column_mapping: dict[str, str] = field(default_factory=dict)
    schema_changes: list[str] = field(default_factory=list)
    checks: list[quality.CheckResult] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    write: WriteResult | None = None

    @property
    def counts_add_up(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined + self.rows_dropped + self.rows_deduplicated

    def count(self, wr: WriteResult, metrics: dict, on_bad_records: str) -> None:
        """The counts of a load from its write and its observed metrics (``n``, ``q``)."""
        self.write, self.version = wr, wr.version
        self.rows_read = int(metrics.get("n") or 0)
        self.rows_quarantined = int(metrics.get("q") or 0)
        self.rows_loaded = wr.rows_written
        self.rows_deduplicated = self.rows_read - self.rows_quarantined - self.rows_loaded
        if on_bad_records == "drop":
            self.rows_dropped, self.rows_quarantined = self.rows_quarantined, 0


# ------------------------------------------------------------------------------------------
# One source
# ------------------------------------------------------------------------------------------


def ingest_source(spark: SparkSession, settings: Settings, pipeline: PipelineConfig,
                  source: tuple[str, str, SourceConfig], run_id: str, run_date: dt.date,
                  progress: Callable[[str], None] | None = None) -> IngestResult:
    """Load one source into its bronze table (the steps in the module docstring). ``source``:
    an entry of ``pipeline.ingest_plan()``, (name, table name, source config)."""
    name, table_name, src = source
    started, t0 = dt.datetime.now(), time.perf_counter()
    ctx = _context(spark, pipeline, name, settings.table(table_name), src, run_id, run_date, progress)
    res = IngestResult(name, ctx.table, src.label, ctx.mode)

    # 1. raw read
    raw = read_raw(spark, settings, ctx, lambda: loaded_files(spark, settings, ctx.table), _watermark(spark, ctx))
    if raw.df is None:
        return _nothing(res, src, ctx.where, raw.nothing, t0)
    res.files = raw.files
    # 2. column names
    raw, mapping, data_cols, explicit = name_columns(raw, ctx)
    res.column_mapping = {k: v for k, v in mapping.items() if k != v}
    # 3. schema
    if raw.df.isEmpty():
        why = "no new rows" if ctx.mode == "incremental" else f"source {src.label} has no rows"
        return _nothing(res, src, ctx.where, why, t0, ctx.table)
    inferred = None
    if explicit is None and ctx.table_schema is None and src.format == "csv":
        ctx.say(f"{name}: inferring the schema (one pass; give 'schema' in the config to skip it)")
        inferred = StructType([StructField(mapping.get(f.name, f.name), f.dataType)
                               for f in readers.infer_schema(spark, src, raw.files).fields])
    target, res.schema_changes = decide_target(raw, data_cols, explicit, inferred, ctx)
    if name == "main":  # training and scoring read these
        require_columns(target, [pipeline.key, pipeline.target, *pipeline.features.numeric,
                                 *pipeline.features.categorical], ctx)
    # 4. the load, and the quarantine
    typed = cast_records(spark, raw, mapping, target, src)
    check_dedupe(src, target, ctx.where)
    ctx.say(f"{name}: loading into {ctx.table}")
    wr, metrics = _load(spark, ctx, typed, res.files, data_cols)
    res.count(wr, metrics, src.on_bad_records)
    prev_version = wr.version - 1 if ctx.exists else None  # the load is one commit
    if res.rows_loaded == 0 and res.rows_read > 0 and ctx.mode == "overwrite" and prev_version is not None:
        DeltaTable.forName(spark, ctx.table).restoreToVersion(prev_version)
        raise InputDataError(f"{ctx.where}: none of the {res.rows_read} records of {src.label} is valid (see the "
                             f"reasons in {ctx.quarantine}); {ctx.table} was restored to version {prev_version}")
    _quarantine(spark, ctx, typed, res, metrics)
    res.seconds = time.perf_counter() - t0
    res.message = f"read {res.rows_read}, loaded {res.rows_loaded}, quarantined {res.rows_quarantined}"
    # 5. checks, and the record of the load
    if src.checks:
        _check(spark, settings, ctx, res, target.fieldNames() + ([src.row_id] if src.row_id else []), pipeline.name)
    failed = [c.check.label for c in res.checks if not c.passed and c.check.severity == "error"]
    if failed:
        res.message += f"; error check(s) failed: {', '.join(failed)} (dq_results)"
    _record_run(spark, settings, res, run_id=run_id, run_date=run_date, pipeline=pipeline.name,
                status="failed_checks" if failed else "succeeded", started=started)
    return res


def _context(spark: SparkSession, pipeline: PipelineConfig, name: str, table: str, src: SourceConfig,
             run_id: str, run_date: dt.date, progress: Callable[[str], None] | None) -> LoadContext:
    """The load's context, with what the bronze table (if any) and the configured schema say."""
    where = f"{pipeline.file.name}: source" if name == "main" else f"{pipeline.file.name}: sources.{name}"
    ctx = LoadContext(name, src, where, table, src.mode or "overwrite", run_id, run_date, progress,
                      key=pipeline.key if name == "main" else None)
    if table_exists(spark, table):
        schema = spark.table(table).schema
        ctx = replace(ctx, exists=True, table_schema=data_fields(schema, src.row_id))
        ctx = replace(ctx, migrate=old_metadata(schema.fieldNames(), ctx))
    return replace(ctx, explicit=parse_ddl(spark, src.schema_, where) if src.schema_ else None)


def _watermark(spark: SparkSession, ctx: LoadContext) -> object:
    """An incremental JDBC load: the table's largest watermark value (rows above it are new)."""
    wm = ctx.src.jdbc.watermark_column if ctx.src.jdbc else None
    if ctx.src.format == "jdbc" and ctx.mode == "incremental" and ctx.exists and wm:
        return spark.table(ctx.table).agg(F.max(F.col(f"`{wm}`"))).first()[0]
    return None


def _load(spark: SparkSession, ctx: LoadContext, typed: TypedRecords, files: list[str],
          data_cols: list[str]) -> tuple[WriteResult, dict]:
    """The one pass: good rows to bronze, counted by an Observation that also collects the bad
    rows (few, as a rule: then the quarantine needs no second pass). Too many to collect: the
    pass again, counting them only. A failed load leaves no table it created behind."""

    def once(collect_bad: bool) -> tuple[WriteResult, dict]:
        obs = Observation(f"ingest_{ctx.name}_{int(collect_bad)}")
        checked = typed.finish(typed.scan.observe(obs, *load_metrics(typed, collect_bad)))
        good = good_rows(checked, typed.target, ctx.src, ctx.run_id, ctx.run_date)
        with SparkProgress(spark, f"{ctx.name}", ctx.progress):
            wr = _write_bronze(good, ctx, files, stats_columns(ctx, typed.target))
        # (write_table creates a new table first: CTAS would return no metrics)
        return wr, observed_counts(spark, obs, collect_bad)

    try:
        try:
            return once(collect_bad=ctx.src.on_bad_records == "quarantine")
        except Exception as exc:  # noqa: BLE001
            if not any(m in str(exc) for m in ("maxResultSize", "OutOfMemory", "Java heap space")):
                raise
            ctx.say(f"{ctx.name}: too many bad records to collect in one pass; loading again, then a quarantine pass")
            return once(collect_bad=False)  # nothing was committed by the failed attempt
    except Exception as exc:  # noqa: BLE001
        if not ctx.exists:  # the load created the table first: leave nothing behind
            spark.sql(f"DROP TABLE IF EXISTS {ctx.table}")
        error = load_error(spark, typed, str(exc), data_cols, ctx, files)
        if error is not None:
            raise error from None
        raise


def _write_bronze(good: DataFrame, ctx: LoadContext, files: list[str], stats: list[str]) -> WriteResult:
    """One commit: ``overwrite`` replaces the table, ``append`` the run date's partition,
    ``incremental`` the rows of the loaded files (or appends, for a JDBC source)."""
    evolve = ctx.src.schema_evolution
    if ctx.mode == "append":
        return write_table(good, ctx.table, partition_col="_run_date", partition_value=ctx.run_date,
                           merge_schema=evolve, stats_columns=stats)
    if ctx.mode == "incremental" and files:
        return write_table(good, ctx.table, replace_where=in_list("_source", files), merge_schema=evolve,
                           stats_columns=stats)
    if ctx.mode == "incremental":
        return write_table(good, ctx.table, append=True, merge_schema=evolve, stats_columns=stats)
    return write_table(good, ctx.table, merge_schema=evolve and not ctx.migrate, stats_columns=stats,
                       overwrite_schema=ctx.migrate)


def _quarantine(spark: SparkSession, ctx: LoadContext, typed: TypedRecords, res: IngestResult, metrics: dict) -> None:
    """The bad records of the load replace those of the same scope (run date, or files) in
    ``<table>_quarantine``; a load without bad records clears that scope."""
    qtable, run_date = ctx.quarantine, ctx.run_date
    q_scope = (in_list("_source", res.files) if ctx.mode == "incremental" and res.files
               else f"_run_date = DATE'{run_date.isoformat()}'")
    if res.rows_quarantined > 0:
        ctx.say(f"{ctx.name}: {res.rows_quarantined} bad record(s) -> {qtable}")
        qdf = quarantine_columns(quarantine_rows(typed, metrics, res.files),
                                 ctx.run_id, run_date)
        write_table(qdf, qtable, partition_col="_run_date", replace_where=q_scope if table_exists(spark, qtable) else None,
                    partition_value=run_date)
    elif table_exists(spark, qtable):  # a rerun with the source fixed: no stale bad records
        DeltaTable.forName(spark, qtable).delete(q_scope)


def _check(spark: SparkSession, settings: Settings, ctx: LoadContext, res: IngestResult, columns: list[str],
           pipeline: str) -> None:
    """The data-quality checks on the rows this load committed, recorded in ``dq_results``."""
    loaded = spark.table(ctx.table)
    if ctx.mode == "append":
        loaded = loaded.where(F.col("_run_date") == F.lit(ctx.run_date).cast("date"))
    elif ctx.mode == "incremental":
        loaded = loaded.where(F.col("_run_id") == ctx.run_id)
    res.checks = quality.evaluate(loaded, ctx.src.checks, columns, ctx.where)
    quality.record(spark, settings, res.checks, run_id=ctx.run_id, run_date=ctx.run_date, pipeline=pipeline,
                   table=ctx.table)


def _nothing(res: IngestResult, src: SourceConfig, where: str, why: str, t0: float, table: str | None = None) -> IngestResult:
    if not src.allow_empty:
        if why in ("no new files", "no new rows"):
            res.message = f"{why} since the last load: nothing to do"
            res.seconds = time.perf_counter() - t0
            return res
        keep = f"; refusing to replace {table} with nothing" if table else ""
        raise InputDataError(f"{where}: {why}{keep}. Set allow_empty: true to make an empty load a no-op.")
    res.message = f"{why}: nothing loaded (allow_empty)"
    res.seconds = time.perf_counter() - t0
    return res


# ------------------------------------------------------------------------------------------
# State: ingest_runs
# ------------------------------------------------------------------------------------------


def loaded_files(spark: SparkSession, settings: Settings, table: str) -> set[str]:
    """Files already loaded into ``table`` by successful incremental loads (the manifest; the
    files of a load that failed its checks are loaded again)."""
    runs = settings.table(INGEST_RUNS_TABLE)
    if not table_exists(spark, runs):
        return set()
    rows = (spark.table(runs).where((F.col("table_name") == table) & (F.col("status") == "succeeded"))
            .select(F.explode("files").alias("f")).distinct().collect())
    return {readers.norm_path(r["f"]) for r in rows}


def load_history(spark: SparkSession, settings: Settings, table: str) -> list[gate.Load]:
    """The committed loads of ``table`` since it was created (``ingest_runs``), each with whether
    its error checks passed (its status, and ``dq_results`` for loads recorded before the status
    ``failed_checks`` existed)."""
    runs = settings.table(INGEST_RUNS_TABLE)
    if not table_exists(spark, runs):
        return []
    created = spark.sql(f"DESCRIBE DETAIL {table}").first()["createdAt"]
    loads = spark.table(runs).where(
        (F.col("table_name") == table) & F.col("table_version").isNotNull() & (F.col("finished_at") >= F.lit(created))
        & F.col("status").isin("succeeded", "failed_checks"))
    dq = settings.table(quality.DQ_TABLE)
    failed = F.lit(False)
    if table_exists(spark, dq):
        errors = (spark.table(dq).where((F.col("table_name") == table) & (F.col("severity") == "error") & ~F.col("passed"))
                  .select("run_id", F.lit(True).alias("_failed")).distinct())
        loads, failed = loads.join(errors, "run_id", "left"), F.coalesce(F.col("_failed"), F.lit(False))
    rows = loads.select("table_version", "run_id", "run_date", "mode", "files",
                        ((F.col("status") == "succeeded") & ~failed).alias("passed")).collect()
    return [gate.Load(int(r.table_version), r.run_id, r.run_date, r.mode, frozenset(r.files or ()), bool(r.passed))
            for r in rows]


def checked_version(spark: SparkSession, settings: Settings, table: str, stage: str,
                    allow_failed_checks: bool = False) -> gate.Choice:
    """The version of ``table`` that ``stage`` ('training', 'scoring') may read: the latest, unless
    it holds rows of a load that failed its error checks (lakeforge.ingest.gate)."""
    return gate.choose(load_history(spark, settings, table), latest_version(spark, table), table, stage,
                       allow_failed_checks)


def _record_run(spark: SparkSession, settings: Settings, res: IngestResult, *, run_id: str, run_date: dt.date,
                pipeline: str, status: str, started: dt.datetime) -> None:
    row = (run_id, run_date, pipeline, res.name, res.source, res.table, res.mode, status, res.rows_read, res.rows_loaded,
           res.rows_quarantined, res.rows_dropped, res.rows_deduplicated, res.version, res.files,
           json.dumps(res.column_mapping), json.dumps(res.schema_changes), res.message[:2000] or None,
           started, dt.datetime.now())
    local_frame(spark, [row], INGEST_RUNS_SCHEMA).write.format("delta").mode("append").saveAsTable(
        settings.table(INGEST_RUNS_TABLE))


# ------------------------------------------------------------------------------------------
# All sources of a pipeline
# ------------------------------------------------------------------------------------------


def ingest(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, run_id: str, run_date: dt.date,
           only: str | None = None, progress: Callable[[str], None] | None = None,
           allow_failed_checks: bool = False) -> list[IngestResult]:
    """Load every source of the pipeline (or only ``only``), each into its own table. A failed
    ``error`` check raises DataQualityError after its source's load, unless ``allow_failed_checks``
    (then every source loads and the failures are in the results' ``checks``)."""
    plan = pipeline.ingest_plan()
    if only is not None:
        names = [n for n, _, _ in plan]
        if only not in names:
            raise InputDataError(f"{pipeline.file.name}: no source named {only!r}; sources: {', '.join(names)}")
        plan = [p for p in plan if p[0] == only]
    # The loads run in a child session (same context, catalog and cache): an Observation leaves
    # an ObservationManager on its session that is not serializable, and MLlib models trained
    # later in that session (their summaries hold it) would then fail to transform.
    session = spark.newSession()
    try:
        def load(source: tuple[str, str, SourceConfig]) -> IngestResult:
            return ingest_source(session, settings, pipeline, source, run_id, run_date, progress)

        return _ingest_plan(spark, settings, pipeline, plan, run_id, run_date, load, not allow_failed_checks)
    finally:
        # PySpark's createDataFrame (the quarantine rows) makes the child session the thread's
        # active one, which get_spark() would then hand to the next stage (e.g. training):
        # the caller's session is made active again.
        _make_active(spark)


def _make_active(spark: SparkSession) -> None:
    SparkSession._activeSession = spark  # noqa: SLF001 - PySpark has no public setter
    spark._jvm.SparkSession.setActiveSession(spark._jsparkSession)  # noqa: SLF001


def _ingest_plan(spark: SparkSession, settings: Settings, pipeline: PipelineConfig, plan: list, run_id: str,
                 run_date: dt.date, load: Callable[[tuple], IngestResult], stop_on_failed_checks: bool) -> list[IngestResult]:
    results: list[IngestResult] = []
    for name, table, src in plan:
        try:
            res = load((name, table, src))
        except LakeforgeError as exc:
            failed = IngestResult(name, settings.table(table), src.label, src.mode or "overwrite", message=str(exc))
            try:
                _record_run(spark, settings, failed, run_id=run_id, run_date=run_date, pipeline=pipeline.name,
                            status="failed", started=dt.datetime.now())
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
            exc.results = results  # type: ignore[attr-defined] - what did load, for the summary
            raise
        results.append(res)
        if not stop_on_failed_checks:
            continue
        try:
            quality.raise_on_errors(res.checks, res.table)
        except quality.DataQualityError as exc:
            exc.results = results  # type: ignore[attr-defined]
            raise
    return results
