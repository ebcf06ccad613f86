"""``lakeforge monitor-report``: the monitoring report (lakeforge.monitoring.report) as one HTML
file, from the tables ``lakeforge monitor`` wrote; no Spark, no JVM (registered in lakeforge.app.cli)."""

from __future__ import annotations

import click

from lakeforge.app.console import done, out, stage
from lakeforge.app.runner import Context


@click.command("monitor-report")
@click.argument("pipeline_file", metavar="PIPELINE_YAML", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), metavar="PATH",
              help="Where to write the page (default: <reports_dir>/<pipeline>/monitor.html).")
@click.pass_obj
def monitor_report_cmd(ctx: Context, pipeline_file: str, out_path: str | None) -> None:
    """Write the pipeline's monitoring report: drift per column and window (heat map), the score
    distribution against the training reference, realised and estimated performance, alerts.

    \b
    One self-contained HTML page (plotly.js inline), read from <pipeline>_drift_metrics,
    _profile_metrics, _performance_metrics, _alerts and _monitor_reference (aggregates only).
    Example:
      lakeforge monitor conf/pipelines/telco_churn.yaml --from 2026-05-01 --to 2026-05-07
      lakeforge monitor-report conf/pipelines/telco_churn.yaml
    """
    from lakeforge.monitoring.report import write_report

    settings, pipeline = ctx.load(pipeline_file)
    t0 = stage(f"monitoring report of {pipeline.name}: tables in {settings.warehouse}")
    path = write_report(settings, pipeline, out_path)
    done(t0, f"{path.stat().st_size / 1e6:.1f} MB")
    out.print(str(path), highlight=False)
