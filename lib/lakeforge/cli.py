"""The ``lakeforge`` command line. Every stage is a command; ``run`` chains them.

Errors the user can fix are printed as one ``error: ...`` line (exit code 2); unexpected
failures print one line too (exit code 1) and the traceback only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lakeforge import __version__
from lakeforge.config import PipelineConfig, Settings, load_pipeline, load_settings
from lakeforge.errors import LakeforgeError

# Tables keep their full width when written to a pipe or a file (rich's default there is 80).
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class Context:
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


def _run_date(_ctx, _param, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date as YYYY-MM-DD, got {value!r}") from None


def run_date_options(f):
    """--run-date, or a backfill range --from/--to (inclusive, one run per date, in order)."""
    f = click.option("--to", "date_to", callback=_run_date, metavar="YYYY-MM-DD", help="Last date of a backfill range.")(f)
    f = click.option("--from", "date_from", callback=_run_date, metavar="YYYY-MM-DD", help="First date of a backfill range.")(f)
    return click.option(
        "--run-date", callback=_run_date, metavar="YYYY-MM-DD",
        help="Logical date of this run (default: today). Rerunning a date replaces its output.",
    )(f)


pipeline_argument = click.argument("pipeline_file", metavar="PIPELINE_YAML", type=click.Path(dir_okay=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lakeforge")
@click.option("--env", "-e", metavar="NAME", help="Settings overlay conf/NAME.yaml on top of conf/base.yaml (or $LAKEFORGE_ENV).")
@click.option("--conf", "-c", "overlays", multiple=True, metavar="FILE", help="Extra settings overlay file; repeatable, last wins.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, env: str | None, overlays: tuple[str, ...], debug: bool) -> None:
    """lakeforge: ingest -> train -> register -> score, natively on Spark, Delta Lake and MLflow.

    \b
    Quick start (from the project folder):
      lakeforge run conf/pipelines/telco_churn.yaml
      lakeforge sql "SELECT * FROM lakeforge.predictions_telco LIMIT 5"
    """
    ctx.obj = Context(env, list(overlays), debug)


def _stage(msg: str) -> float:
    err.print(Text.assemble((">> ", "bold cyan"), msg), highlight=False)
    return time.perf_counter()


def _done(t0: float, msg: str) -> float:
    secs = time.perf_counter() - t0
    err.print(Text.assemble(("   done", "green"), f" in {secs:.1f}s: {msg}"), highlight=False)
    return secs


def _load(ctx: Context, pipeline_file: str) -> tuple[Settings, PipelineConfig]:
    pipeline = load_pipeline(pipeline_file)
    return ctx.settings, pipeline


def _session(settings: Settings):
    from lakeforge.spark import spark_session

    return spark_session(settings)


def do_ingest(spark, settings, pipeline, record, timings, only: str | None = None) -> list:
    from lakeforge.ingest import ingest

    targets = [(n, settings.table(t)) for n, t, _ in pipeline.ingest_plan() if only in (None, n)]
    t0 = _stage(f"ingest {', '.join(f'{n} -> {t}' for n, t in targets) or only} (run date {record.run_date})")
    results = []
    try:
        results = ingest(spark, settings, pipeline, record.run_id, record.run_date, only=only,
                         progress=lambda msg: err.print(f"  [dim]{msg}[/dim]", highlight=False))
    except LakeforgeError as exc:
        results = getattr(exc, "results", [])
        raise
    finally:
        if results:
            _print_ingest(results)
    record.rows_in = sum(r.rows_read for r in results)
    record.rows_out = sum(r.rows_loaded for r in results)
    summary = "; ".join(f"{r.name}: {r.message}" + (f", table version {r.version}" if r.version is not None else "")
                        for r in results)
    timings["ingest"] = _done(t0, summary)
    return results


def _print_ingest(results) -> None:
    table = Table(title="ingest", title_justify="left")
    for col in ("source", "table", "read", "loaded", "quarantined", "dropped", "deduplicated", "version", "seconds"):
        table.add_column(col, justify="right" if col not in ("source", "table") else "left")
    for r in results:
        table.add_row(r.name, r.table, str(r.rows_read), str(r.rows_loaded), str(r.rows_quarantined),
                      str(r.rows_dropped), str(r.rows_deduplicated), "-" if r.version is None else str(r.version),
                      f"{r.seconds:.1f}")
    out.print(table)
    for r in results:
        if r.column_mapping:
            out.print(f"  {r.name}: column names normalised: " + _renames(r.column_mapping, "all in ingest_runs"))
        for change in r.schema_changes:
            out.print(f"  {r.name}: schema change accepted (schema_evolution): {change}")
        if r.rows_quarantined:
            out.print(f"  {r.name}: {r.rows_quarantined} bad record(s) with their reasons in {r.table}_quarantine")
    checks = [(r, c) for r in results for c in r.checks]
    if checks:
        t = Table(title="data-quality checks", title_justify="left")
        for col in ("table", "check", "severity", "result", "failing rows", "detail"):
            t.add_column(col)
        for r, c in checks:
            t.add_row(r.table, c.check.label, c.check.severity, "pass" if c.passed else "FAIL",
                      str(c.failing_rows), c.detail)
        out.print(t)


def do_train(spark, settings, pipeline, record, timings):
    from lakeforge.train import train

    m = pipeline.model
    search = f"{m.folds}-fold cross-validation" if m.search == "cross_validation" else "train/validation split"
    t0 = _stage(f"train: model search ({search}) on {settings.table(pipeline.tables.bronze)}")
    res = train(spark, settings, pipeline, record.run_id, record.run_date,
                progress=lambda msg: out.print(f"  [dim]{msg}[/dim]", highlight=False))
    record.rows_in = res.rows_train + res.rows_test
    record.model_name, record.model_version = res.model.name, res.model.version
    steps = ", ".join(f"{k.replace('_', ' ')} {v:.1f}s" for k, v in res.timings.items())
    timings["train"] = _done(
        t0,
        f"model {res.model.name} version {res.model.version} (alias challenger; champion: "
        f"v{res.champion_version}); test {res.metric} {res.test_metrics[res.metric]:.4f} ({steps})",
    )
    _print_leaderboard(res, pipeline)
    return res


def do_score(spark, settings, pipeline, record, timings, model_version=None, model=None, full=False):
    from lakeforge.score import score

    which = model.version if model else model_version
    t0 = _stage(
        f"score {settings.table(pipeline.scoring.input_table or pipeline.tables.bronze)} with "
        f"{pipeline.model.registered_name}@{pipeline.scoring.model_alias if which is None else 'v' + str(which)} "
        f"(run date {record.run_date})"
    )
    res = score(spark, settings, pipeline, record.run_date, model_version, model=model, full=full)
    record.rows_in = record.rows_out = res.write.rows_written
    record.model_name, record.model_version = res.model.name, res.model.version
    record.input_table, record.input_version = res.input_table, res.input_version
    what = (f"rows new or changed since {res.input_table} version {res.incremental_base}"
            if res.incremental_base is not None else f"rows of {res.input_table} version {res.input_version}")
    timings["score"] = _done(
        t0,
        f"{res.write.rows_written} predictions ({what}) by {res.model.name} v{res.model.version} -> "
        f"{res.write.table} (run_date {record.run_date}, table version {res.write.version})",
    )
    return res


def _print_leaderboard(res, pipeline: PipelineConfig) -> None:
    metric = res.metric
    m = pipeline.model
    how = f"{m.folds}-fold cross-validated" if m.search == "cross_validation" else "validation-split"
    table = Table(title=f"Leaderboard: {how} {metric} ({res.task})")
    for col in ("#", "algorithm", "params", "mean", "std", "fit s", "status"):
        table.add_column(col, no_wrap=col not in ("params", "status"))
    for row in res.leaderboard:
        params = " ".join(f"{k}={v}" for k, v in json.loads(row["params"]).items())
        mean, std = row["cv_mean"], row["cv_std"]
        table.add_row(
            str(row["rank"] or "-"), row["algorithm"], params,
            "" if mean is None else f"{mean:.4f}", "" if std is None else f"{std:.4f}",
            f"{row['fit_seconds']:.1f}", row["status"],
            style="bold" if row["is_best"] else None,
        )
    out.print(table)
    shown = {"binary": ("roc_auc", "pr_auc", "accuracy", "f1", "log_loss"), "multiclass": ("f1_macro", "accuracy", "log_loss"),
             "regression": ("rmse", "mae", "r2", "mape")}[res.task]
    names = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "f1": "F1", "f1_macro": "macro F1", "rmse": "RMSE", "mae": "MAE",
             "r2": "R2", "mape": "MAPE", "log_loss": "log loss"}
    vals = "  ".join(f"{names.get(k, k)} {res.test_metrics[k]:.4f}" for k in shown if k in res.test_metrics)
    out.print(
        f"Held-out test ({res.rows_test} rows): {vals}  (trained on {res.rows_train} rows of "
        f"{res.table} version {res.table_version})"
    )
    if res.threshold is not None:
        out.print(f"Decision threshold on P(positive): {res.threshold:.4f} ({pipeline.model.threshold.strategy}, from the validation folds)")
    out.print(f"Registry: {res.decision}")
    if res.report:
        out.print(f"Training report: {res.report}")


def _dates(run_date: dt.date | None, date_from: dt.date | None, date_to: dt.date | None) -> list[dt.date]:
    if date_from is None and date_to is None:
        return [run_date or dt.date.today()]
    if run_date is not None:
        raise click.UsageError("give either --run-date or --from/--to, not both")
    if date_from is None or date_to is None:
        raise click.UsageError("a backfill range needs both --from and --to")
    if date_to < date_from:
        raise click.UsageError(f"--to {date_to} is before --from {date_from}")
    return [date_from + dt.timedelta(days=i) for i in range((date_to - date_from).days + 1)]


def _run_job(ctx: Context, job: str, pipeline_file: str, dates: list[dt.date], stages) -> list:
    """Lock (job, pipeline), start Spark once, then run ``stages`` for each date in order.

    Every stage attempt appends a record to the job_runs table (status, rows, model version,
    duration, and the one-line reason when it failed). The first failure stops the range.
    """
    from lakeforge.runs import RunRecord, job_lock, record_run

    settings, pipeline = _load(ctx, pipeline_file)
    results = []
    with job_lock(settings, job, pipeline.name), _session(settings) as spark:
        for run_date in dates:
            run_id = uuid.uuid4().hex
            timings: dict[str, float] = {}
            for name, stage in stages:
                record = RunRecord(run_id, name, pipeline.name, run_date)
                try:
                    results.append(stage(spark, settings, pipeline, record, timings))
                except Exception as exc:
                    reason = str(exc) if isinstance(exc, LakeforgeError) else f"{type(exc).__name__}: {exc}"
                    with contextlib.suppress(Exception):  # the original error matters more
                        record_run(spark, settings, record.finish("failed", reason.splitlines()[0][:1000] if reason else None))
                    raise
                record_run(spark, settings, record.finish("succeeded"))
            if len(dates) > 1:
                err.print(f"   run date {run_date} done")
    return results


@cli.command()
@pipeline_argument
@click.option("--source", "only", metavar="NAME", help="Load only this source ('main' or a name under sources:).")
@run_date_options
@click.pass_obj
def ingest(ctx: Context, pipeline_file: str, only: str | None, run_date, date_from, date_to) -> None:
    """Load the pipeline's sources into their bronze Delta tables.

    Bad records go to <table>_quarantine with a reason (or fail / are dropped, per
    on_bad_records); the summary shows read = loaded + quarantined (+ dropped, deduplicated).
    Rerunning a load for the same run date adds nothing.
    """
    _run_job(ctx, "ingest", pipeline_file, _dates(run_date, date_from, date_to), [
        ("ingest", lambda *a: do_ingest(*a, only=only)),
    ])


@cli.command()
@pipeline_argument
@run_date_options
@click.pass_obj
def train(ctx: Context, pipeline_file: str, run_date, date_from, date_to) -> None:
    """Search the model zoo with cross-validation, log to MLflow, register the winner as challenger
    (champion when it beats the current one)."""
    _run_job(ctx, "train", pipeline_file, _dates(run_date, date_from, date_to), [
        ("train", do_train),
    ])


@cli.command()
@pipeline_argument
@run_date_options
@click.option("--model-version", metavar="N", help="Score with this registered version instead of the alias.")
@click.option("--full", is_flag=True, help="Rescore every input row even with scoring.mode: incremental.")
@click.pass_obj
def score(ctx: Context, pipeline_file: str, run_date, date_from, date_to, model_version: str | None, full: bool) -> None:
    """Score the input table with the champion into the predictions table.

    The alias is resolved once, before the first date: every date of a backfill range is scored
    by the same model version.
    """
    from lakeforge import tracking

    resolved: list[tracking.ModelRef] = []

    def stage(spark, settings, pipeline, record, timings):
        if not resolved:  # once, inside the lock, before the first date is scored
            tracking.configure(settings)
            resolved.append(tracking.resolve_model(pipeline.model.registered_name, pipeline.scoring.model_alias, model_version))
        return do_score(spark, settings, pipeline, record, timings, model=resolved[0], full=full)

    _run_job(ctx, "score", pipeline_file, _dates(run_date, date_from, date_to), [("score", stage)])


def _frame_input(ctx: Context, spark, input_path: str, target: str, key: str | None, name: str | None):
    """Frame ``input_path`` (a file, folder or table name): (card, source config)."""
    from lakeforge.config import SourceConfig
    from lakeforge.frame import default_name, frame, source_for
    from lakeforge.io import read_source

    if Path(input_path).exists():  # a local path is taken relative to the current folder
        input_path = str(Path(input_path).resolve())
    source = source_for(input_path)
    df = read_source(spark, SourceConfig(**source), ctx.settings, "--input")
    shown = source | {"path": input_path}
    return frame(df, target, shown, name or default_name(input_path), key)


@cli.command("frame")
@click.option("--input", "input_path", required=True, metavar="PATH|TABLE",
              help="CSV / JSON lines / Parquet / Excel (.xlsx) file or folder, a Delta folder, or a table name.")
@click.option("--target", required=True, metavar="COLUMN", help="The column to predict.")
@click.option("--key", metavar="COLUMN", help="The entity id column (default: the first ID-like column).")
@click.option("--name", metavar="NAME", help="Pipeline name (default: from the input's file name).")
@click.option("--output", "-o", metavar="FILE", help="Where to write the YAML (default: conf/pipelines/NAME.yaml).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.pass_obj
def frame_cmd(ctx: Context, input_path: str, target: str, key: str | None, name: str | None, output: str | None,
              force: bool) -> None:
    """Inspect a dataset and its target; write the pipeline YAML (the problem card).

    Infers the task (binary / multiclass / regression, with the reason), the positive class, the
    primary metric, each column's role (numeric, categorical, datetime, text, ID-like -> excluded),
    class imbalance and leakage suspects, and a default model search. Edit it, then
    'lakeforge run FILE'.
    """
    from lakeforge.frame import to_yaml

    settings = ctx.settings
    with _session(settings) as spark:
        card = _frame_input(ctx, spark, input_path, target, key, name)
    path = settings.path(output or f"conf/pipelines/{card.name}.yaml")
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; choose --output or add --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(card))
    _print_card(card)
    out.print(f"Wrote {path}. Next: lakeforge run {path}")


def _print_card(card) -> None:
    table = Table(title=f"Problem card: {card.name} ({card.rows:,} rows)")
    for col in ("column", "type", "role", "why", "nulls"):
        table.add_column(col, no_wrap=col != "why")
    for c in card.columns:
        table.add_row(c.name, c.dtype, c.role, c.reason, f"{c.nulls:,}")
    out.print(table)
    shares = ", ".join(f"{k} {v:.1%}" for k, v in list(card.class_shares.items())[:8])
    out.print(f"Task: {card.task} ({card.task_reason}); target {card.target!r}"
              + (f", positive class {card.positive_class!r}" if card.positive_class is not None else "")
              + (f"; classes: {shares}" if shares else ""))
    out.print(f"Metric: {card.metric} ({card.metric_reason}); key: {card.key}")
    if card.row_id:
        out.print(f"Key: no ID-like column, so ingest adds {card.row_id}: a hash of each row's content (source.row_id)")
    out.print("Leakage suspects: " + ("; ".join(card.leakage) if card.leakage else "none"))
    if card.renamed:
        out.print("Column names in bronze: " + _renames(card.renamed, "all in the card"))


def _renames(mapping: dict[str, str], where: str, shown: int = 8) -> str:
    text = ", ".join(f"{a!r} -> {b}" for a, b in list(mapping.items())[:shown])
    return text + (f" ... ({len(mapping) - shown} more; {where})" if len(mapping) > shown else "")


@cli.command()
@click.argument("pipeline_file", metavar="[PIPELINE_YAML]", required=False, type=click.Path(dir_okay=False))
@run_date_options
@click.option("--input", "input_path", metavar="PATH|TABLE", help="Zero-config: frame this dataset instead of a YAML.")
@click.option("--target", metavar="COLUMN", help="Zero-config: the column to predict (with --input).")
@click.option("--key", metavar="COLUMN", help="Zero-config: the entity id column (default: the first ID-like column).")
@click.pass_obj
def run(ctx: Context, pipeline_file: str | None, run_date, date_from, date_to, input_path: str | None,
        target: str | None, key: str | None) -> None:
    """Run the whole pipeline: ingest -> train -> register -> score.

    \b
    With a YAML:     lakeforge run conf/pipelines/telco_churn.yaml
    Zero-config:     lakeforge run --input data.csv --target Churn
    (frames the data with defaults, saves the card to reports/NAME/pipeline.yaml, then runs it)
    """
    if input_path or target:
        if pipeline_file:
            raise click.UsageError("give either PIPELINE_YAML or --input/--target, not both")
        if not (input_path and target):
            raise click.UsageError("zero-config needs both --input and --target")
        from lakeforge.frame import to_yaml

        settings = ctx.settings
        with _session(settings) as spark:
            card = _frame_input(ctx, spark, input_path, target, key, None)
            folder = settings.path(settings.reports_dir or "reports") / card.name
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "pipeline.yaml"
            path.write_text(to_yaml(card))
            _print_card(card)
            err.print(f"   problem card saved to {path}")
            return _run_pipeline(ctx, str(path), run_date, date_from, date_to)
    if not pipeline_file:
        raise click.UsageError("give a PIPELINE_YAML, or --input and --target for the zero-config run")
    return _run_pipeline(ctx, pipeline_file, run_date, date_from, date_to)


def _run_pipeline(ctx: Context, pipeline_file: str, run_date, date_from, date_to):
    t0 = time.perf_counter()
    timings_all: dict[str, float] = {}

    def timed(stage):
        def call(spark, settings, pipeline, record, timings):
            result = stage(spark, settings, pipeline, record, timings)
            timings_all.update(timings)
            return result
        return call

    results = _run_job(ctx, "run", pipeline_file, _dates(run_date, date_from, date_to), [
        ("ingest", timed(do_ingest)), ("train", timed(do_train)), ("score", timed(do_score)),
    ])
    settings, pipeline = _load(ctx, pipeline_file)
    predictions = settings.table(pipeline.tables.predictions)
    total = time.perf_counter() - t0
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in timings_all.items())
    out.print(f"Pipeline {pipeline.name} finished in {total:.1f}s (last date: {stages}).")
    out.print(f"Predictions: {predictions} (Delta, partitioned by run_date) under {settings.warehouse}")
    out.print(
        f'Try: lakeforge sql "SELECT run_date, model_version, count(*) AS n, avg(score) AS mean_score '
        f'FROM {predictions} GROUP BY run_date, model_version ORDER BY run_date"'
    )
    return results


@cli.command()
@pipeline_argument
@click.option("--no-vacuum", is_flag=True, help="Only compact (OPTIMIZE); delete nothing.")
@click.pass_obj
def maintain(ctx: Context, pipeline_file: str, no_vacuum: bool) -> None:
    """Compact small files (OPTIMIZE) and delete unreferenced old files (VACUUM) in the
    pipeline's tables (bronze and its quarantine, the named sources' tables and quarantines,
    predictions, leaderboard, the feature table and ranking) and in ingest_runs, dq_results and
    job_runs.

    VACUUM keeps every file younger than the table's delta.deletedFileRetentionDuration
    (Delta's default: 7 days), so running readers and time travel within that window are safe.
    """
    from lakeforge.ingest import INGEST_RUNS_TABLE
    from lakeforge.quality import DQ_TABLE
    from lakeforge.runs import JOB_RUNS_TABLE, job_lock

    settings, pipeline = _load(ctx, pipeline_file)
    t = pipeline.tables
    loaded = [t.bronze, *[src.table for src in pipeline.sources.values()]]
    names = [*[x for name in loaded for x in (name, f"{name}_quarantine")], t.predictions, t.leaderboard, t.features,
             pipeline.feature_ranking_table, INGEST_RUNS_TABLE, DQ_TABLE, JOB_RUNS_TABLE]
    with job_lock(settings, "maintain", pipeline.name), _session(settings) as spark:
        report = Table(title="Table maintenance")
        for col in ("table", "files compacted", "files written", "vacuum retention"):
            report.add_column(col)
        for name in filter(None, names):
            table = settings.table(name)
            if not spark.catalog.tableExists(table):
                continue
            t0 = _stage(f"maintain {table}")
            m = spark.sql(f"OPTIMIZE {table}").select("metrics.numFilesRemoved", "metrics.numFilesAdded").first()
            retention = "skipped"
            if not no_vacuum:
                props = dict(spark.sql(f"SHOW TBLPROPERTIES {table}").collect())
                retention = props.get("delta.deletedFileRetentionDuration", "interval 7 days (default)")
                spark.sql(f"VACUUM {table}")
            report.add_row(table, str(m[0]), str(m[1]), retention)
            _done(t0, table)
        out.print(report)


@cli.command()
@click.argument("query", required=False)
@click.option("--limit", default=100, show_default=True, help="Print at most this many rows.")
@click.pass_obj
def sql(ctx: Context, query: str | None, limit: int) -> None:
    """Run a SQL QUERY against the project's catalog and print the result as a table; without
    QUERY, open an interactive prompt (statements end with ';', quit with Ctrl-D or 'exit').

    Tables are addressed by name, e.g. lakeforge.predictions_telco.
    """
    settings = ctx.settings
    with _session(settings) as spark:
        spark.catalog.setCurrentDatabase(settings.catalog.database)
        if query is not None:
            _run_sql(spark, query, limit)
            return
        err.print(f"lakeforge SQL on database {settings.catalog.database}; end statements with ';', Ctrl-D quits")
        buffer: list[str] = []
        while True:
            try:
                line = input("lakeforge> " if not buffer else "       ...> ")
            except EOFError:
                break
            if not buffer and line.strip().lower() in {"exit", "quit", "exit;", "quit;"}:
                break
            buffer.append(line)
            if line.rstrip().endswith(";"):
                statement = "\n".join(buffer).rstrip().rstrip(";")
                buffer = []
                try:
                    _run_sql(spark, statement, limit)
                except LakeforgeError as exc:  # a typo must not end the session
                    _error(str(exc))


def _run_sql(spark, query: str, limit: int) -> None:
    from pyspark.errors import AnalysisException, ParseException

    try:
        df = spark.sql(query)
        rows = df.limit(limit + 1).collect()
    except (AnalysisException, ParseException) as exc:
        from lakeforge.readers import error_text

        raise LakeforgeError(f"SQL error: {error_text(exc)}") from None
    table = Table(show_lines=False)
    for name in df.columns:
        table.add_column(name)
    for row in rows[:limit]:
        table.add_row(*(_sql_text(v) for v in row))
    out.print(table)
    more = " (more rows not shown; raise --limit)" if len(rows) > limit else ""
    err.print(f"{min(len(rows), limit)} row(s){more}")


def _sql_text(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@cli.command("sql-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless you mean otherwise).")
@click.option("--port", default=10000, show_default=True, type=click.IntRange(1, 65535), help="HiveServer2 (Thrift/JDBC) port.")
@click.pass_obj
def sql_server(ctx: Context, host: str, port: int) -> None:
    """Serve the project's tables over JDBC/ODBC (Spark Thrift Server, HiveServer2 protocol).

    BI tools and beeline connect with jdbc:hive2://HOST:PORT. Needs a shared metastore
    (scripts/metastore.sh start, then --env shared) so jobs can keep writing meanwhile.
    Runs in the foreground until interrupted.
    """
    import os

    from lakeforge.spark import launched_by_spark_submit, session_conf, spark_home

    settings = ctx.settings
    if settings.catalog.metastore == "derby":
        raise LakeforgeError(
            "sql-server needs a shared metastore: the embedded one (catalog.metastore: derby) would lock "
            "every other lakeforge process out. Run scripts/metastore.sh start, then "
            "lakeforge --env shared sql-server"
        )
    if launched_by_spark_submit():
        raise LakeforgeError("run sql-server with the lakeforge command, not under spark-submit")
    home = spark_home()
    cmd = [
        os.path.join(home, "bin", "spark-submit"), "--master", settings.spark.master,
        "--class", "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2", "--name", "lakeforge-sql-server",
    ]
    conf = session_conf(settings)
    # The Thrift server builds its session before spark.jars are loaded: put them on the
    # driver's own class path too.
    extra = [*conf.get("spark.jars", "").split(","), conf.get("spark.driver.extraClassPath", "")]
    conf["spark.driver.extraClassPath"] = ":".join(p for p in extra if p)
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += [
        "--hiveconf", f"hive.server2.thrift.bind.host={host}",
        "--hiveconf", f"hive.server2.thrift.port={port}",
        "spark-internal",
    ]
    err.print(f"Spark Thrift Server on jdbc:hive2://{host}:{port} (database {settings.catalog.database}); Ctrl-C stops it")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["SPARK_HOME"] = home
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)


@cli.command()
@click.pass_obj
def tables(ctx: Context) -> None:
    """List the tables registered in the project's database."""
    settings = ctx.settings
    with _session(settings) as spark:
        listing = spark.catalog.listTables(settings.catalog.database)
        table = Table(title=f"Tables in {settings.catalog.database}")
        table.add_column("table")
        table.add_column("type")
        for t in listing:
            table.add_row(f"{settings.catalog.database}.{t.name}", t.tableType)
        out.print(table)


from lakeforge.cli_profile import register as _register_profile; _register_profile(cli)  # noqa: E402,E702 - `lakeforge profile`


def _error(message: str) -> None:
    err.print(Text.assemble(("error: ", "bold red"), message), highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of jobs/*.py; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="lakeforge", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        err.print("aborted")
        return 130
    except LakeforgeError as exc:
        if debug:
            traceback.print_exc()
        _error(str(exc))
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - last resort: one clear line, traceback on request
        if debug:
            traceback.print_exc()
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _error(f"unexpected {type(exc).__name__}: {msg} (rerun with --debug for the traceback)")
        return 1


def job_main(command: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of jobs/<command>.py: ``job.py [--env X] [--conf F] [--debug] ARGS`` runs
    ``lakeforge [--env X] [--conf F] [--debug] <command> ARGS``."""
    args = list(sys.argv[1:] if argv is None else argv)
    global_args, rest = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--env", "-e", "--conf", "-c") and i + 1 < len(args):
            global_args += [a, args[i + 1]]
            i += 2
            continue
        if a.startswith(("--env=", "--conf=")) or a == "--debug":
            global_args.append(a)
        else:
            rest.append(a)
        i += 1
    return main([*global_args, command, *rest])


if __name__ == "__main__":
    sys.exit(main())
