"""Orchestration behind the commands: the invocation's context, run dates, the job loop (lock,
one Spark session, a job_runs record per stage and date) and the stage functions that call each
package's job. No click here: the CLI parses, this runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape

from lakeforge.app.console import done, err, note, out, print_ingest, print_leaderboard, stage
from lakeforge.core.config import PipelineConfig, load_pipeline
from lakeforge.core.settings import Settings, load_settings
from lakeforge.core.errors import ConfigError, LakeforgeError


@dataclass
class Context:
    """One invocation's global options; settings load on first use."""

    env: str | None
    overlays: list[str]
    debug: bool
    _settings: Settings | None = field(default=None)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.env, self.overlays)
            if self._settings.home != self._settings.root:
                err.print(f"[dim]no conf/ in {self._settings.root}: using the settings of {self._settings.home}; "
                          "tables, MLflow runs and reports go here (set LAKEFORGE_HOME to use another project)[/dim]")
        return self._settings

    def load(self, pipeline_file: str) -> tuple[Settings, PipelineConfig]:
        return self.settings, load_pipeline(pipeline_file)


def session(settings: Settings):
    """The project's SparkSession as a context manager (stopped at the end)."""
    from lakeforge.core.spark import spark_session

    return spark_session(settings)


class UsageProblem(ConfigError):
    """Options that do not go together (the CLI shows it as a usage error)."""


def dates(run_date: dt.date | None, date_from: dt.date | None, date_to: dt.date | None) -> list[dt.date]:
    """The run dates of one invocation: --run-date (default today) or the range --from..--to."""
    if date_from is None and date_to is None:
        return refuse_future([run_date or dt.date.today()])
    if run_date is not None:
        raise UsageProblem("give either --run-date or --from/--to, not both")
    if date_from is None or date_to is None:
        raise UsageProblem("a backfill range needs both --from and --to")
    if date_to < date_from:
        raise UsageProblem(f"--to {date_to} is before --from {date_from}")
    return refuse_future([date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)])


def refuse_future(run_dates: list[dt.date]) -> list[dt.date]:
    """``run_dates`` unless the last is after today (by the local clock and by UTC, whichever is
    later: a scheduler in another time zone may already be on the next day): a run date is the
    day whose data a run processes, and that day has not happened yet."""
    today = max(dt.date.today(), dt.datetime.now(dt.timezone.utc).date())
    if run_dates and run_dates[-1] > today:
        raise UsageProblem(f"run date {run_dates[-1]} is in the future (today is {today}); give a run date up to "
                           f"{today} (--run-date, or --to for a backfill), or fix the clock if today is wrong")
    return run_dates


def run_job(ctx: Context, job: str, pipeline_file: str, run_dates: list[dt.date], stages) -> list:
    """Lock (job, pipeline), start Spark once, then run ``stages`` for each date in order.

    Every stage attempt appends a record to the job_runs table (status, rows, model version,
    duration, and the one-line reason when it failed). The first failure stops the range; a
    stage that failed but lets the run go on (ingest whose checks failed, with
    --allow-failed-checks) sets ``record.status = "failed"`` and ``record.message`` instead.
    """
    from lakeforge.core.runs import RunRecord, job_lock, record_run

    settings, pipeline = ctx.load(pipeline_file)
    results = []
    with job_lock(settings, job, pipeline.name), session(settings) as spark:
        for run_date in run_dates:
            run_id = uuid.uuid4().hex
            timings: dict[str, float] = {}
            for name, step in stages:
                record = RunRecord(run_id, name, pipeline.name, run_date)
                try:
                    results.append(step(spark, settings, pipeline, record, timings))
                except Exception as exc:
                    reason = str(exc) if isinstance(exc, LakeforgeError) else f"{type(exc).__name__}: {exc}"
                    with contextlib.suppress(Exception):  # the original error matters more
                        record_run(spark, settings, record.finish("failed", reason.splitlines()[0][:1000] if reason else None))
                    raise
                failed = record.status == "failed"
                record_run(spark, settings, record.finish("failed" if failed else "succeeded",
                                                          record.message if failed else None))
            if len(run_dates) > 1:
                err.print(f"   run date {run_date} done")
    return results


# ------------------------------------------------------------------------------------------
# Stages: (spark, settings, pipeline, record, timings) -> the package job's result
# ------------------------------------------------------------------------------------------


def ingest_stage(spark, settings, pipeline, record, timings, only: str | None = None,
                 allow_failed_checks: bool = False) -> list:
    """With ``allow_failed_checks`` a failed error check does not stop the run: the stage is
    recorded as failed (as its loads are in ingest_runs: failed_checks) and the next stages run."""
    from lakeforge.ingest.job import ingest

    targets = [(n, settings.table(t)) for n, t, _ in pipeline.ingest_plan() if only in (None, n)]
    t0 = stage(f"ingest {', '.join(f'{n} -> {t}' for n, t in targets) or only} (run date {record.run_date})")
    results = []
    try:
        results = ingest(spark, settings, pipeline, record.run_id, record.run_date, only=only,
                         progress=lambda msg: err.print(f"  [dim]{msg}[/dim]", highlight=False),
                         allow_failed_checks=allow_failed_checks)
    except LakeforgeError as exc:
        results = getattr(exc, "results", [])
        raise
    finally:
        if results:
            print_ingest(results)
    record.rows_in = sum(r.rows_read for r in results)
    record.rows_out = sum(r.rows_loaded for r in results)
    summary = "; ".join(f"{r.name}: {r.message}" + (f", table version {r.version}" if r.version is not None else "")
                        for r in results)
    timings["ingest"] = done(t0, summary)
    if allow_failed_checks:
        _allow_failed_checks(results, record)
    return results


def _allow_failed_checks(results: list, record) -> None:
    """Failed error checks let through: one warning line, and the stage's record says failed."""
    from lakeforge.ingest.quality import DataQualityError, raise_on_errors

    for r in results:
        try:
            raise_on_errors(r.checks, r.table)
        except DataQualityError as exc:
            reason = str(exc).splitlines()[0]
            record.status, record.message = "failed", record.message or reason[:1000]
            err.print(f"   [yellow]warning:[/yellow] {escape(reason)} Going on (--allow-failed-checks).", highlight=False)


def train_stage(spark, settings, pipeline, record, timings, allow_failed_checks: bool = False):
    from lakeforge.training.job import train

    t0 = stage(f"train: model search ({pipeline.model.search_label}) on {settings.table(pipeline.tables.bronze)}")
    res = train(spark, settings, pipeline, record.run_id, record.run_date,
                progress=note, allow_failed_checks=allow_failed_checks)
    record.rows_in = res.rows_train + res.rows_test
    record.input_table, record.input_version = res.table, res.table_version
    record.model_name, record.model_version = res.model.name, res.model.version
    steps = ", ".join(f"{k.replace('_', ' ')} {v:.1f}s" for k, v in res.timings.items())
    timings["train"] = done(
        t0,
        f"model {res.model.name} version {res.model.version} (alias challenger; champion: "
        f"v{res.champion_version}); test {res.metric} {res.test_metrics[res.metric]:.4f} ({steps})",
    )
    for line in res.notes:
        err.print(f"   [yellow]{escape(line)}[/yellow]", highlight=False)
    print_leaderboard(res, pipeline)
    return res


def score_stage(spark, settings, pipeline, record, timings, model=None, full=False, allow_failed_checks=False):
    from lakeforge.scoring.job import score

    t0 = stage(
        f"score {settings.table(pipeline.scoring_input)} with "
        f"{pipeline.model.registered_name}@{pipeline.scoring.model_alias if model is None else 'v' + str(model.version)} "
        f"(run date {record.run_date})"
    )
    res = score(spark, settings, pipeline, record.run_date, model=model, full=full,
                allow_failed_checks=allow_failed_checks)
    for line in res.notes:
        err.print(f"   [yellow]{escape(line)}[/yellow]", highlight=False)
    record.rows_in = record.rows_out = res.write.rows_written
    record.model_name, record.model_version = res.model.name, res.model.version
    record.input_table, record.input_version = res.input_table, res.input_version
    what = (f"rows new or changed since {res.input_table} version {res.incremental_base}"
            if res.incremental_base is not None else f"rows of {res.input_table} version {res.input_version}")
    timings["score"] = done(
        t0,
        f"{res.write.rows_written} predictions ({what}) by {res.model.name} v{res.model.version} -> "
        f"{res.write.table} (run_date {record.run_date}, table version {res.write.version})",
    )
    return res



def frame_input(ctx: Context, spark, input_path: str, target: str | None, key: str | None, name: str | None,
                task: dict | None = None):
    """Frame ``input_path`` (a file, folder or table name): (card, source config). ``task``:
    {task, user, item, rating} for a clustering or recommendation (lakeforge.profiling.frame_tasks)."""
    from lakeforge.core.config_source import SourceConfig
    from lakeforge.profiling.frame import frame
    from lakeforge.profiling.sources import default_name, quoted_columns, source_for
    from lakeforge.core.io import read_source
    from lakeforge.ingest.types import null_markers, typed_like_a_first_load

    if Path(input_path).exists():  # a local path is taken relative to the current folder
        input_path = str(Path(input_path).resolve())
    source = source_for(input_path)
    src = SourceConfig(**source)
    # typed as the first load will type bronze (markers such as NA as null; numbers in text as numbers)
    df = typed_like_a_first_load(read_source(spark, src, ctx.settings, "--input"), src)
    quoted = set()
    if src.format == "csv":  # numbers in quotes are a factor's levels (R's write.csv)
        quoted = {df.columns[i] for i in quoted_columns(input_path, source["options"], null_markers(src)) if i < len(df.columns)}
    shown = source | {"path": input_path}
    spec = None
    if task:
        from lakeforge.profiling.frame_tasks import TaskFraming

        roles = {r: task.get(r) for r in ("user", "item", "rating")}
        spec = TaskFraming(task["task"], name or default_name(input_path), shown, key, {}, roles)
    return frame(df, target, shown, name or default_name(input_path), key, spec, quoted=quoted)



def run_pipeline(ctx: Context, pipeline_file: str, run_dates: list[dt.date], allow_failed_checks: bool = False):
    """ingest -> train -> score for each date, then where to find the predictions. A failed
    error check stops the run after ingest, unless ``allow_failed_checks``. An unreachable MLflow
    server stops it before anything is written (train would fail after ingest loaded)."""
    from lakeforge.core.tracking import check_reachable

    check_reachable(ctx.settings)
    t0 = time.perf_counter()
    timings_all: dict[str, float] = {}

    def timed(step):
        def call(spark, settings, pipeline, record, timings):
            result = step(spark, settings, pipeline, record, timings)
            timings_all.update(timings)
            return result
        return call

    flag = {"allow_failed_checks": allow_failed_checks}
    results = run_job(ctx, "run", pipeline_file, run_dates, [
        ("ingest", timed(functools.partial(ingest_stage, **flag))),
        ("train", timed(functools.partial(train_stage, **flag))),
        ("score", timed(functools.partial(score_stage, **flag))),
    ])
    settings, pipeline = ctx.load(pipeline_file)
    predictions = settings.table(pipeline.tables.predictions)
    total = time.perf_counter() - t0
    took = ", ".join(f"{k} {v:.1f}s" for k, v in timings_all.items())
    out.print(f"Pipeline {pipeline.name} finished in {total:.1f}s (last date: {took}).")
    out.print(f"Predictions: {predictions} (Delta, partitioned by run_date) under {settings.warehouse}")
    out.print(
        f'Try: lakeforge sql "SELECT run_date, model_version, count(*) AS n, avg(score) AS mean_score '
        f'FROM {predictions} GROUP BY run_date, model_version ORDER BY run_date"'
    )
    return results




def score_with_alias(model_version: str | None, full: bool, allow_failed_checks: bool = False):
    """A score stage that resolves the alias once, inside the lock, before the first date: every
    date of a backfill range is scored by the same model version."""
    from lakeforge.core import tracking

    resolved: list[tracking.ModelRef] = []

    def step(spark, settings, pipeline, record, timings):
        if not resolved:
            tracking.configure(settings)
            resolved.append(tracking.resolve_model(pipeline.model.registered_name, pipeline.scoring.model_alias, model_version))
        return score_stage(spark, settings, pipeline, record, timings, model=resolved[0], full=full,
                           allow_failed_checks=allow_failed_checks)

    return step


def write_card(card, path: Path) -> Path:
    """Write the problem card's YAML to ``path`` (folders made)."""
    from lakeforge.profiling.card import to_yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(card))
    return path


def maintained_tables(pipeline: PipelineConfig) -> list[str]:
    """The tables ``lakeforge maintain`` compacts and vacuums for ``pipeline`` (short names)."""
    from lakeforge.core.runs import JOB_RUNS_TABLE
    from lakeforge.ingest.job import INGEST_RUNS_TABLE
    from lakeforge.ingest.quality import DQ_TABLE

    t = pipeline.tables
    loaded = [t.bronze, *[src.table for src in pipeline.sources.values()]]
    names = [*[x for name in loaded for x in (name, f"{name}_quarantine")], t.predictions, t.leaderboard, t.features,
             pipeline.feature_ranking_table, INGEST_RUNS_TABLE, DQ_TABLE, JOB_RUNS_TABLE]
    return [n for n in names if n]


def maintain_table(spark, table: str, vacuum: bool) -> tuple[int, int, str]:
    """OPTIMIZE (and VACUUM) one table: (files compacted, files written, vacuum retention)."""
    m = spark.sql(f"OPTIMIZE {table}").select("metrics.numFilesRemoved", "metrics.numFilesAdded").first()
    retention = "skipped"
    if vacuum:
        props = dict(spark.sql(f"SHOW TBLPROPERTIES {table}").collect())
        retention = props.get("delta.deletedFileRetentionDuration", "interval 7 days (default)")
        spark.sql(f"VACUUM {table}")
    return m[0], m[1], retention


# Statements that read or only change the session (an allowlist: anything else may change tables).
READ_ONLY_SQL = ("select", "with", "show", "describe", "desc", "explain", "values", "table", "from", "set", "reset",
                 "use", "cache", "uncache", "clear", "list", "refresh")
_TEMP_VIEW = re.compile(r"^create\s+(or\s+replace\s+)?(global\s+)?temp(orary)?\s+view\b")
_LEADING = re.compile(r"^(\s+|--[^\n]*(\n|$)|/\*.*?\*/|\()+", re.S)


def changes_tables(statement: str) -> str | None:
    """The first word of ``statement`` when it may change tables (DROP, DELETE, INSERT, MERGE,
    ALTER, CREATE TABLE, OPTIMIZE, VACUUM...), else None (queries, SHOW, DESCRIBE, SET, temp views)."""
    text = _LEADING.sub("", statement).lower()
    word = re.match(r"[a-z]*", text).group(0)
    if not word or word in READ_ONLY_SQL or _TEMP_VIEW.match(text):
        return None
    return word.upper()


def refuse_unless_write(statement: str, write: bool) -> None:
    """A statement that may change tables needs ``--write``: one LakeforgeError line otherwise."""
    word = changes_tables(statement)
    if word and not write:
        raise LakeforgeError(f"{word} statements can change lakeforge's tables; rerun with --write to allow them "
                             "(lakeforge sql --write ...)")


def sql_rows(spark, query: str, limit: int):
    """Run ``query``: (column names, at most limit + 1 rows); SQL errors as one LakeforgeError line."""
    from pyspark.errors import AnalysisException, ParseException

    try:
        df = spark.sql(query)
        return df.columns, df.limit(limit + 1).collect()
    except (AnalysisException, ParseException) as exc:
        from lakeforge.ingest.readers import error_text

        raise LakeforgeError(f"SQL error: {error_text(exc)}") from None


def sql_server_command(settings: Settings, host: str, port: int) -> list[str]:
    """The spark-submit command line of the Spark Thrift Server on ``host:port``."""
    import os

    from lakeforge.core.spark import launched_by_spark_submit, session_conf, spark_home

    if settings.catalog.metastore == "derby":
        raise LakeforgeError(
            "sql-server needs a shared metastore: the embedded one (catalog.metastore: derby) would lock "
            "every other lakeforge process out. Run scripts/metastore.sh start, then "
            "lakeforge --env shared sql-server"
        )
    if launched_by_spark_submit():
        raise LakeforgeError("run sql-server with the lakeforge command, not under spark-submit")
    cmd = [
        os.path.join(spark_home(), "bin", "spark-submit"), "--master", settings.spark.master,
        "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2", "--name", "lakeforge-sql-server",
    ]
    conf = session_conf(settings)
    # The Thrift server builds its session before spark.jars are loaded: put them on the
    # driver's own class path too.
    extra = [*conf.get("spark.jars", "").split(","), conf.get("spark.driver.extraClassPath", "")]
    conf["spark.driver.extraClassPath"] = ":".join(p for p in extra if p)
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    return cmd + [
        "--hiveconf", f"hive.server2.thrift.bind.host={host}",
        "--hiveconf", f"hive.server2.thrift.port={port}",
        "spark-internal",
    ]
