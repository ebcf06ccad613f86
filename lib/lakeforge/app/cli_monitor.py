"""``lakeforge monitor`` and ``lakeforge retrain`` (registered in lakeforge.app.cli)."""

from __future__ import annotations

import datetime as dt

import click
from rich.markup import escape

from lakeforge.app import runner
from lakeforge.app.console import done, err, note, out, stage
from lakeforge.app.options import iso_date, run_dates
from lakeforge.app.runner import Context


@click.command("monitor")
@click.argument("pipeline_file", metavar="PIPELINE_YAML", type=click.Path(dir_okay=False))
@click.option("--run-date", callback=iso_date, metavar="YYYY-MM-DD", help="The run date (window) to monitor (default: today).")
@click.option("--from", "date_from", callback=iso_date, metavar="YYYY-MM-DD", help="First run date of a range.")
@click.option("--to", "date_to", callback=iso_date, metavar="YYYY-MM-DD", help="Last run date of a range.")
@click.option("--follow", is_flag=True,
              help="Near real time: monitor the online prediction log as it grows, in windows of "
                   "monitoring.follow_minutes minutes (Spark Structured Streaming; runs until Ctrl-C).")
@click.option("--available-now", is_flag=True,
              help="With --follow: read what is logged so far, write every window that is complete, then exit "
                   "(for cron; the next run goes on from the checkpoint).")
@click.pass_obj
def monitor_cmd(ctx: Context, pipeline_file: str, run_date, date_from, date_to, follow: bool,
                available_now: bool) -> None:
    """Profile and drift metrics of the scored rows per window, against the training reference
    (BASELINE) and the previous window (CONSECUTIVE); performance when monitoring.actuals is set.

    \b
    Writes <pipeline>_profile_metrics, <pipeline>_drift_metrics, <pipeline>_performance_metrics
    and <pipeline>_alerts (a rerun replaces its windows). Exit code 3 when an alert is confirmed
    (M of the last N windows breach, the latest too).

    \b
    --follow: the same metrics and alert rule over the prediction log of 'lakeforge serve'
    (Delta table monitoring.prediction_log, default prediction_log_<pipeline>; unless a source
    of the pipeline loads it, --follow streams the finished <serving.log_dir>/<pipeline>/*.jsonl
    files into it itself), in windows of monitoring.follow_minutes (5) minutes by the records'
    logged_at. A window is written once, when it is complete: when the latest record read is
    monitoring.follow_late_minutes (2) past its end (a record arriving after that is dropped).
    One line per window; tables <pipeline>_live_profile_metrics, <pipeline>_live_drift_metrics
    and <pipeline>_live_alerts. Checkpoints under <warehouse>/_checkpoints/monitor_follow/: a
    restart (even after kill -9) repeats and skips no window.
    """
    from lakeforge.monitoring.alerts import ALERT_EXIT_CODE

    if follow or available_now:
        if not follow:
            raise click.UsageError("--available-now goes with --follow")
        if run_date or date_from or date_to:
            raise click.UsageError("--follow monitors the prediction log as it grows: no --run-date/--from/--to")
        if _follow(ctx, pipeline_file, available_now):
            raise SystemExit(ALERT_EXIT_CODE)
        return
    dates = run_dates(run_date, date_from, date_to)
    results = runner.run_job(ctx, "monitor", pipeline_file, [dates[-1]], [("monitor", _monitor_stage(dates))])
    if any(r.alerts for r in results):  # SystemExit: cli.main (standalone_mode=False) drops click's Exit code
        raise SystemExit(ALERT_EXIT_CODE)


def _monitor_stage(dates: list[dt.date]):
    def step(spark, settings, pipeline, record, timings):
        from lakeforge.monitoring.job import monitor, table_names

        t0 = stage(f"monitor {pipeline.name}: {len(dates)} run date(s) {dates[0]}..{dates[-1]}")
        res = monitor(spark, settings, pipeline, dates, progress=note)
        record.rows_in = sum(w.rows for w in res.windows)
        record.model_version = ",".join(sorted({w.key.model_version for w in res.windows}))
        for line in res.notes:
            err.print(f"   [yellow]{escape(line)}[/yellow]", highlight=False)
        for w in res.windows:
            drifting = [r.column for r in w.baseline if r.drifted]
            verdict = {None: "too few rows", True: "DATASET DRIFT", False: "no dataset drift"}[w.dataset[0]]
            out.print(f"  window {w.key.start}: {w.rows:,} rows, {verdict}"
                      + (f" ({len(drifting)} of {len(w.baseline)} columns: {', '.join(drifting[:6])})" if drifting else ""),
                      highlight=False)
        for a in res.alerts:
            out.print(escape(a.line()), highlight=False)
        names = table_names(pipeline)
        timings["monitor"] = done(t0, f"{len(res.windows)} window(s), {res.passes} Spark passes over the data -> "
                                      f"{', '.join(settings.table(t) for t in names.values())}")
        if res.alerts:
            record.message = "; ".join(a.line() for a in res.alerts)[:1000]
        return res

    return step


def _follow(ctx: Context, pipeline_file: str, available_now: bool) -> bool:
    """``monitor --follow``; True when --available-now confirmed an alert."""
    from lakeforge.core.runs import job_lock
    from lakeforge.monitoring.follow import follow

    settings, pipeline = ctx.load(pipeline_file)

    def say(line: str) -> None:
        if line.startswith("ALERT"):
            out.print(escape(line), highlight=False)
        elif line.startswith("window"):
            out.print(f"  {escape(line)}", highlight=False)
        else:
            note(escape(line))

    with job_lock(settings, "monitor-follow", pipeline.name), runner.session(settings) as spark:
        t0 = stage(f"monitor {pipeline.name} --follow" + (" --available-now" if available_now else ""))
        res = follow(spark, settings, pipeline, available_now=available_now, progress=say)
        done(t0, f"{len(res.windows)} window(s) closed, {len(res.alerts)} alert(s)")
    return available_now and bool(res.alerts)


@click.command("retrain")
@click.argument("pipeline_file", metavar="PIPELINE_YAML", type=click.Path(dir_okay=False))
@click.option("--run-date", callback=iso_date, metavar="YYYY-MM-DD", help="Logical date of this run (default: today).")
@click.option("--force", is_flag=True, help="Retrain even when no confirmed alert is open.")
@click.pass_obj
def retrain_cmd(ctx: Context, pipeline_file: str, run_date, force: bool) -> None:
    """Train a challenger on recent labelled rows when a confirmed alert is open; compare it with
    the champion on the most recent labelled window; promote only when better by
    monitoring.retrain.margin. The decision is recorded (alerts table, MLflow, job_runs)."""

    def step(spark, settings, pipeline, record, timings):
        from lakeforge.monitoring.retrain import retrain

        t0 = stage(f"retrain {pipeline.name} (run date {record.run_date})")
        res = retrain(spark, settings, pipeline, record.run_id, record.run_date, force=force, progress=note)
        record.message = f"{res.decision}: {res.message}"[:1000]
        if res.challenger is not None:
            record.model_name, record.model_version = res.challenger.name, res.challenger.version
        record.rows_in = res.rows_train
        timings["retrain"] = done(t0, f"{res.decision}: {res.message}")
        return res

    runner.run_job(ctx, "retrain", pipeline_file, run_dates(run_date), [("retrain", step)])
