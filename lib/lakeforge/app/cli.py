"""The ``lakeforge`` command line: click commands only (``*_cmd``); the work is in app.runner and
each stage's job.

Errors the user can fix are printed as one ``error: ...`` line (exit code 2); unexpected
failures print one line too (exit code 1) and the traceback only with ``--debug``.
"""

from __future__ import annotations

import logging
import sys
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path

import click
from rich.table import Table

from lakeforge import __version__
from lakeforge.app import runner
from lakeforge.app.console import done, err, error, note, out, print_card, print_profile, stage
from lakeforge.app.options import iso_date, run_dates
from lakeforge.app.runner import Context
from lakeforge.app.cli_serve import export_cmd, serve_cmd
from lakeforge.app.cli_dashboard import dashboard_cmd
from lakeforge.app.cli_monitor import monitor_cmd, retrain_cmd
from lakeforge.app.cli_monitor_report import monitor_report_cmd
from lakeforge.app.cli_sql import sql_cmd, sql_server_cmd, tables_cmd
from lakeforge.core.errors import (LakeforgeError, error_text, jvm_gone_hint, metastore_gone_hint, out_of_memory_hint,
                                   server_gone_hint)


def run_date_options(f):
    """--run-date, or a backfill range --from/--to (inclusive, one run per date, in order)."""
    f = click.option("--to", "date_to", callback=iso_date, metavar="YYYY-MM-DD", help="Last date of a backfill range.")(f)
    f = click.option("--from", "date_from", callback=iso_date, metavar="YYYY-MM-DD", help="First date of a backfill range.")(f)
    return click.option(
        "--run-date", callback=iso_date, metavar="YYYY-MM-DD",
        help="Logical date of this run (default: today). Rerunning a date replaces its output.",
    )(f)


def task_options(f):
    """--task clustering|recommendation with --user/--item/--rating, kept in the click context's
    meta (read by _task()): the commands' signatures stay as they are."""
    def keep(ctx, param, value):
        ctx.meta[f"lakeforge.{param.name}"] = value
    for name, help_ in (("rating", "Recommendation: the rating column (none: implicit feedback)."),
                        ("item", "Recommendation: the item id column."), ("user", "Recommendation: the user id column.")):
        f = click.option(f"--{name}", metavar="COLUMN", expose_value=False, callback=keep, help=help_)(f)
    return click.option("--task", type=click.Choice(["clustering", "recommendation"]), expose_value=False,
                        callback=keep, help="A problem without a target (default: predict --target).")(f)


def _task() -> dict | None:
    meta = click.get_current_context().meta
    if not meta.get("lakeforge.task"):
        if meta.get("lakeforge.user") or meta.get("lakeforge.item") or meta.get("lakeforge.rating"):
            raise click.UsageError("--user/--item/--rating go with --task recommendation")
        return None
    return {k: meta.get(f"lakeforge.{k}") for k in ("task", "user", "item", "rating")}


pipeline_argument = click.argument("pipeline_file", metavar="PIPELINE_YAML", type=click.Path(dir_okay=False))
allow_failed_checks_option = click.option(
    "--allow-failed-checks", is_flag=True,
    help="Use the latest table version even when a load's error-severity data-quality checks failed "
         "(default: the last version that passed, said in one line).")


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


@cli.command("ingest")
@pipeline_argument
@click.option("--source", "only", metavar="NAME", help="Load only this source ('main' or a name under sources:).")
@run_date_options
@click.pass_obj
def ingest_cmd(ctx: Context, pipeline_file: str, only: str | None, run_date, date_from, date_to) -> None:
    """Load the pipeline's sources into their bronze Delta tables.

    Bad records go to <table>_quarantine with a reason (or fail / are dropped, per
    on_bad_records); the summary shows read = loaded + quarantined (+ dropped, deduplicated).
    Rerunning a load for the same run date adds nothing.
    """
    runner.run_job(ctx, "ingest", pipeline_file, run_dates(run_date, date_from, date_to), [
        ("ingest", lambda *a: runner.ingest_stage(*a, only=only)),
    ])


@cli.command("train")
@pipeline_argument
@run_date_options
@allow_failed_checks_option
@click.pass_obj
def train_cmd(ctx: Context, pipeline_file: str, run_date, date_from, date_to, allow_failed_checks: bool) -> None:
    """Search the model zoo with cross-validation, log to MLflow, register the winner as challenger
    (champion when it beats the current one)."""
    runner.run_job(ctx, "train", pipeline_file, run_dates(run_date, date_from, date_to), [
        ("train", lambda *a: runner.train_stage(*a, allow_failed_checks=allow_failed_checks)),
    ])


@cli.command("score")
@pipeline_argument
@run_date_options
@click.option("--model-version", metavar="N", help="Score with this registered version instead of the alias.")
@click.option("--full", is_flag=True, help="Rescore every input row even with scoring.mode: incremental.")
@allow_failed_checks_option
@click.pass_obj
def score_cmd(ctx: Context, pipeline_file: str, run_date, date_from, date_to, model_version: str | None, full: bool,
              allow_failed_checks: bool) -> None:
    """Score the input table with the champion into the predictions table.

    The alias is resolved once, before the first date: every date of a backfill range is scored
    by the same model version.
    """
    step = runner.score_with_alias(model_version, full, allow_failed_checks)
    runner.run_job(ctx, "score", pipeline_file, run_dates(run_date, date_from, date_to), [("score", step)])


@cli.command("frame")
@click.option("--input", "input_path", required=True, metavar="PATH|TABLE",
              help="CSV / JSON lines / Parquet / Excel (.xlsx) file or folder, a Delta folder, or a table name.")
@click.option("--target", metavar="COLUMN", help="The column to predict (none with --task).")
@task_options
@click.option("--key", metavar="COLUMN", help="The entity id column (default: the first ID-like column).")
@click.option("--name", metavar="NAME", help="Pipeline name (default: from the input's file name).")
@click.option("--output", "-o", metavar="FILE", help="Where to write the YAML (default: conf/pipelines/NAME.yaml).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.pass_obj
def frame_cmd(ctx: Context, input_path: str, target: str | None, key: str | None, name: str | None, output: str | None,
              force: bool) -> None:
    """Inspect a dataset and its target; write the pipeline YAML (the problem card).

    Infers the task (binary / multiclass / regression, with the reason), the positive class, the
    primary metric, each column's role (numeric, categorical, datetime, text, ID-like -> excluded),
    class imbalance and leakage suspects, and a default model search. Edit it, then
    'lakeforge run FILE'. Without a target: --task clustering, or --task recommendation
    --user COL --item COL [--rating COL].
    """
    settings = ctx.settings

    def refuse_existing(path):
        if path.exists() and not force:
            raise click.UsageError(f"{path} exists; choose --output or add --force")

    if output:  # said before the data is read, not a profiling pass later
        refuse_existing(settings.path(output))
    with runner.session(settings) as spark:
        card = runner.frame_input(ctx, spark, input_path, target, key, name, _task())
    path = settings.path(output or f"conf/pipelines/{card.name}.yaml")
    refuse_existing(path)
    runner.write_card(card, path)
    print_card(card)
    out.print(f"Wrote {path}. Next: lakeforge run {path}")


@cli.command("run")
@click.argument("pipeline_file", metavar="[PIPELINE_YAML]", required=False, type=click.Path(dir_okay=False))
@run_date_options
@click.option("--input", "input_path", metavar="PATH|TABLE", help="Zero-config: frame this dataset instead of a YAML.")
@click.option("--target", metavar="COLUMN", help="Zero-config: the column to predict (with --input).")
@task_options
@click.option("--key", metavar="COLUMN", help="Zero-config: the entity id column (default: the first ID-like column).")
@click.option("--allow-failed-checks", is_flag=True,
              help="Go on to train and score when a load's error-severity data-quality checks fail (default: stop).")
@click.pass_obj
# (one parameter per option, as click passes them)
def run_cmd(ctx: Context, pipeline_file: str | None, run_date, date_from, date_to, input_path: str | None,
        target: str | None, key: str | None, allow_failed_checks: bool) -> None:
    """Run the whole pipeline: ingest -> train -> register -> score.

    \b
    With a YAML:     lakeforge run conf/pipelines/telco_churn.yaml
    Zero-config:     lakeforge run --input data.csv --target Churn
    (frames the data with defaults, saves the card to reports/NAME/pipeline.yaml, then runs it)
    """
    task = _task()
    if input_path or target or task:
        if pipeline_file:
            raise click.UsageError("give either PIPELINE_YAML or --input/--target, not both")
        if not (input_path and (target or task)):
            raise click.UsageError("zero-config needs both --input and --target (or --task)")
        settings = ctx.settings
        with runner.session(settings) as spark:
            card = runner.frame_input(ctx, spark, input_path, target, key, None, task)
            path = runner.write_card(card, settings.path(settings.reports_dir or "reports") / card.name / "pipeline.yaml")
            print_card(card)
            err.print(f"   problem card saved to {path}")
            return runner.run_pipeline(ctx, str(path), run_dates(run_date, date_from, date_to), allow_failed_checks)
    if not pipeline_file:
        raise click.UsageError("give a PIPELINE_YAML, or --input and --target for the zero-config run")
    return runner.run_pipeline(ctx, pipeline_file, run_dates(run_date, date_from, date_to), allow_failed_checks)


@cli.command("maintain")
@pipeline_argument
@click.option("--no-vacuum", is_flag=True, help="Only compact (OPTIMIZE); delete nothing.")
@click.pass_obj
def maintain_cmd(ctx: Context, pipeline_file: str, no_vacuum: bool) -> None:
    """Compact small files (OPTIMIZE) and delete unreferenced old files (VACUUM) in the
    pipeline's tables (bronze and its quarantine, the named sources' tables and quarantines,
    predictions, leaderboard, the feature table and ranking) and in ingest_runs, dq_results and
    job_runs.

    VACUUM keeps every file younger than the table's delta.deletedFileRetentionDuration
    (Delta's default: 7 days), so running readers and time travel within that window are safe.
    """
    from lakeforge.core.runs import job_lock

    settings, pipeline = ctx.load(pipeline_file)
    with job_lock(settings, "maintain", pipeline.name), runner.session(settings) as spark:
        report = Table(title="Table maintenance")
        for col in ("table", "files compacted", "files written", "vacuum retention"):
            report.add_column(col)
        for name in runner.maintained_tables(pipeline):
            table = settings.table(name)
            if not spark.catalog.tableExists(table):
                continue
            t0 = stage(f"maintain {table}")
            compacted, written, retention = runner.maintain_table(spark, table, vacuum=not no_vacuum)
            report.add_row(table, str(compacted), str(written), retention)
            done(t0, table)
        out.print(report)


@cli.command("profile")
@click.argument("pipeline_file", metavar="PIPELINE_YAML", type=click.Path(dir_okay=False))
@click.option("--threshold", default=0.8, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Flag pairs of columns whose |correlation| or Cramér's V reaches this.")
@click.pass_obj
def profile_cmd(ctx: Context, pipeline_file: str, threshold: float) -> None:
    """Profile the pipeline's data (its bronze table, else its source): an EDA report.

    \b
    Per column: type, count, missing, approximate distinct count, mean, std, min, quartiles,
    max, skew, top values, IQR outliers, a histogram or bar chart. The target: its class
    balance or distribution, and its rate (binary), mean (numeric) or class shares per level
    of each categorical and per decile bin of each numeric column. Pearson and Spearman
    correlation heatmaps, Cramér's V between categoricals, flagged pairs, leakage suspects.

    \b
    Three passes over the data (Spark aggregations; nothing row-level reaches the driver).
    Writes <reports_dir>/<pipeline>/profile.html (self-contained, opens offline), the Delta
    tables profile_columns and profile_correlations (this pipeline's rows replaced), and an
    MLflow run with the report and the numbers as JSON.
    """
    from lakeforge.profiling.job import run_profile

    settings, pipeline = ctx.load(pipeline_file)
    with runner.session(settings) as spark:
        t0 = stage(f"profile {pipeline.name}: {settings.table(pipeline.tables.bronze)} (or its source)")
        res = run_profile(spark, settings, pipeline, uuid.uuid4().hex, threshold=threshold, progress=note)
        r = res.result
        done(t0, f"{r.rows:,} rows, {len(r.columns)} columns, {r.passes} passes over the data")
    print_profile(res, threshold)


cli.add_command(sql_cmd, "sql")
cli.add_command(sql_server_cmd, "sql-server")
cli.add_command(tables_cmd, "tables")
cli.add_command(serve_cmd, "serve")
cli.add_command(export_cmd, "export")
cli.add_command(dashboard_cmd, "dashboard")
cli.add_command(monitor_cmd, "monitor")
cli.add_command(retrain_cmd, "retrain")
cli.add_command(monitor_report_cmd, "monitor-report")


class _Py4JRootLogCopies(logging.Filter):
    """Drops what py4j logs on the root logger (``logging.exception("Exception while sending
    command.")`` with the traceback) when a call meets a JVM that died mid-answer: the same error
    is raised to the caller and ends as main's one line. With --debug it is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "py4j" not in Path(record.pathname).parts


_PY4J_ROOT_LOG_COPIES = _Py4JRootLogCopies()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of jobs/*.py; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    root = logging.getLogger()  # addFilter keeps one copy however often main runs
    (root.removeFilter if debug else root.addFilter)(_PY4J_ROOT_LOG_COPIES)
    try:
        # without standalone mode click returns ctx.exit(n)'s code instead of exiting with it
        code = cli.main(args=args, prog_name="lakeforge", standalone_mode=False)
        return code if isinstance(code, int) else 0
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
        error(str(exc))
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - last resort: one clear line, traceback on request
        if debug:
            traceback.print_exc()
        jvm_code = jvm_exit_code(exc)
        if jvm_code is not None:  # the JVM is gone: py4j's own logging of the calls that still try it is noise
            logging.getLogger("py4j").setLevel(logging.CRITICAL)
        if hint := (out_of_memory_hint(exc, jvm_code) or server_gone_hint(exc) or metastore_gone_hint(exc)
                    or jvm_gone_hint(jvm_code)):
            error(hint)
            return 1
        text = error_text(exc).strip()
        msg = text.splitlines()[0] if text else ""
        error(f"unexpected {type(exc).__name__}: {msg} (rerun with --debug for the traceback)")
        return 1


def jvm_exit_code(exc: BaseException, wait: float = 30.0) -> int | None:
    """After a Py4J error (or the refused connection a later call to a JVM that is gone meets): the
    exit code of the JVM this process launched, when it is exiting (waited for up to ``wait``
    seconds), else None. A JVM that still answers, and could render the error, is not waited for."""
    try:
        from py4j.protocol import Py4JError
        from pyspark import SparkContext
    except ImportError:
        return None
    proc = getattr(SparkContext._gateway, "proc", None)  # noqa: SLF001 - set by pyspark's launch_gateway
    if proc is None or (proc.poll() is None and not isinstance(exc, (Py4JError, ConnectionError))):
        return None
    if proc.poll() is None and _renders(exc) and not _context_stopped(exc):
        try:
            SparkContext._jvm.java.lang.System.currentTimeMillis()  # noqa: SLF001 - does it answer?
            return None
        except Exception:  # noqa: BLE001 - it is going
            pass
    try:
        return proc.wait(timeout=wait)
    except Exception:  # noqa: BLE001 - still there: not an exit
        return None


# Spark's text for the jobs its shutdown hook cancels: in local mode an OutOfMemoryError in a task
# makes the JVM exit (52), and the job the command waited on may fail with this while the JVM still
# answers, its shutdown hooks running (seen in a suite run).
_CONTEXT_STOPPED = ("because SparkContext was shut down", "Cannot call methods on a stopped SparkContext")


def _context_stopped(exc: BaseException) -> bool:
    """Whether the error says the SparkContext stopped under the command: its JVM may be exiting."""
    text = error_text(exc)
    return any(s in text for s in _CONTEXT_STOPPED)


def _renders(exc: BaseException) -> bool:
    """Whether the JVM could render the error's text. A JVM out of heap may still answer a call that
    allocates nothing while it cannot build the Java stack trace: it is exiting (Spark's handler of
    the OutOfMemoryError), and answering meanwhile is no sign that it stays."""
    try:
        str(exc)
        return True
    except Exception:  # noqa: BLE001 - py4j asks the JVM for the text
        return False


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
