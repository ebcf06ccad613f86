"""``lakeforge dashboard``: the pipeline's dashboard alone (lakeforge.serving.dashboard) on a local
HTTP server, without the model API and without a JVM. ``lakeforge serve`` shows the same page at /."""

from __future__ import annotations

import click

from lakeforge.app.console import done, err, out, stage
from lakeforge.app.runner import Context

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def dashboard_app(settings, pipeline):
    """A FastAPI app serving only the dashboard (GET / and GET /dashboard.json)."""
    from fastapi import FastAPI

    from lakeforge.serving.dashboard import mount_dashboard

    app = FastAPI(title=f"lakeforge dashboard: {pipeline.name}", docs_url=None, redoc_url=None, openapi_url=None)
    mount_dashboard(app, settings, pipeline)
    return app


@click.command("dashboard")
@click.argument("pipeline_file", metavar="PIPELINE_YAML", type=click.Path(dir_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDR", help="Address to bind.")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port).")
@click.pass_obj
def dashboard_cmd(ctx: Context, pipeline_file: str, host: str, port: int) -> None:
    """Serve the pipeline's dashboard: leaderboard, champion/challenger history, predictions per
    run date, job runs, data quality, and drift / performance once 'lakeforge monitor' has run.

    \b
    The page reads the Delta tables with the deltalake package and the registry with the MLflow
    client (no Spark, no JVM), again on each load. Example:
      lakeforge dashboard conf/pipelines/telco_churn.yaml      # then open http://127.0.0.1:8050/
    """
    import uvicorn

    settings, pipeline = ctx.load(pipeline_file)
    t0 = stage(f"dashboard of {pipeline.name}: tables in {settings.warehouse}, registry {settings.tracking_uri}")
    app = dashboard_app(settings, pipeline)
    if host not in LOOPBACK:
        err.print(f"[yellow]warning:[/yellow] binding {host}: the dashboard has no authentication "
                  "(use 'lakeforge serve' with serving.token_env to protect it)")
    done(t0, f"serving on http://{host}:{port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
    out.print("dashboard stopped")
