"""``lakeforge serve`` and ``lakeforge export``: the registered model as an HTTP API without a
JVM (lakeforge.serving), and a folder that serves it on a host with Python only."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from lakeforge.app.console import done, err, note, out, stage
from lakeforge.app.runner import Context
from lakeforge.core.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _source(ctx: Context, pipeline_file: str | None, alias: str | None, version: str | None, model_dir: str | None,
            spark_fallback: bool):
    """(settings, pipeline or None, model_store.Source) of the command line."""
    from lakeforge.serving.model_store import Source

    settings = ctx.settings
    fallback = None
    if spark_fallback:
        from lakeforge.serving.spark_scorer import spark_fallback as make

        fallback = make(settings)
    if model_dir:
        return settings, None, Source(model_dir=Path(model_dir), spark_fallback=fallback)
    if not pipeline_file:
        raise click.UsageError("give a PIPELINE_YAML (the registered model) or --model-dir DIR (an exported one)")
    from lakeforge.core import tracking

    settings, pipeline = ctx.load(pipeline_file)
    tracking.configure(settings)
    return settings, pipeline, Source(name=pipeline.model.registered_name, alias=alias or pipeline.scoring.model_alias,
                                      version=version, key=pipeline.key, spark_fallback=fallback)


@click.command("serve")
@click.argument("pipeline_file", metavar="[PIPELINE_YAML]", required=False, type=click.Path(dir_okay=False))
@click.option("--alias", metavar="NAME", help="Serve the version this alias names, and follow it (default: scoring.model_alias).")
@click.option("--version", "model_version", metavar="N", help="Serve this registered version (pinned: not reloaded).")
@click.option("--host", metavar="ADDR", help="Address to bind (default: serving.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: serving.port, 8000; 0: any free port).")
@click.option("--model-dir", type=click.Path(file_okay=False, exists=True), help="Serve a folder written by 'lakeforge export' (Python only: no JVM, no registry).")
@click.option("--spark-fallback", is_flag=True, help="Score with a local Spark session when the numpy scorer cannot compute a stage.")
@click.pass_obj
def serve_cmd(ctx: Context, pipeline_file: str | None, alias: str | None, model_version: str | None, host: str | None,
              port: int | None, model_dir: str | None, spark_fallback: bool) -> None:
    """Serve the registered model over HTTP: POST /predict, GET /model, /metrics, /health, /ready, /docs.

    \b
    Scores are the batch predictions table's, computed in numpy without a JVM. The alias is
    re-checked every serving.reload_interval_s (and on POST /reload); a new version is swapped
    in without a failed request. Example:
      lakeforge serve conf/pipelines/telco_churn.yaml
      curl -s localhost:8000/predict -d '{"tenure": 3, "MonthlyCharges": 70.5, ...}'
    """
    import uvicorn

    from lakeforge.serving.app import Server, create_app
    from lakeforge.serving.model_store import ModelHolder

    settings, pipeline, source = _source(ctx, pipeline_file, alias, model_version, model_dir, spark_fallback)
    cfg = settings.serving
    host, port = host or cfg.host, cfg.port if port is None else port
    t0 = stage(f"load model {source.name or model_dir}" + (f" (alias {source.alias})" if source.follows_alias else ""))
    holder = ModelHolder(source)
    try:
        model = holder.load_initial()
        done(t0, f"{model.name} version {model.version}: {model.task}, {len(model.inputs)} input columns, "
                 f"{model.scorer.kind} scorer, {len(model.scorer.stages)} stages")
        log_name = pipeline.name if pipeline is not None else model.name
        log_folder = settings.path(cfg.log_dir) / log_name if cfg.log_dir else None
        app = create_app(Server(holder, cfg, log_folder, settings if pipeline else None, pipeline))
        if host not in LOOPBACK and not cfg.token_env:
            err.print(f"[yellow]warning:[/yellow] binding {host} without a token (set serving.token_env)")
        note(f"prediction log: {log_folder or 'off'}; dashboard: {app.dashboard}")
        out.print(f"serving {model.name} v{model.version} on http://{host}:{port} (docs: /docs); Ctrl-C stops")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    finally:
        holder.close()


@click.command("export")
@click.argument("pipeline_file", metavar="PIPELINE_YAML", type=click.Path(dir_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False), help="Folder to write (must be empty or new).")
@click.option("--alias", metavar="NAME", help="Export the version this alias names (default: scoring.model_alias).")
@click.option("--version", "model_version", metavar="N", help="Export this registered version.")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.pass_obj
def export_cmd(ctx: Context, pipeline_file: str, output: str, alias: str | None, model_version: str | None,
               force: bool) -> None:
    """Write a registered model version and its manifest to a folder that
    'lakeforge serve --model-dir DIR' serves with Python only (no Java, no pyspark)."""
    from lakeforge.core import tracking
    from lakeforge.serving.export import export_model

    if alias and model_version:
        raise click.UsageError("give --alias or --version, not both")
    settings, pipeline = ctx.load(pipeline_file)
    tracking.configure(settings)
    t0 = stage(f"export {pipeline.model.registered_name} to {output}")
    try:
        m = export_model(pipeline.model.registered_name, pipeline.key, Path(output),
                         alias or pipeline.scoring.model_alias, model_version, force)
    except FileExistsError as exc:
        raise ConfigError(str(exc)) from None
    done(t0, f"version {m['version']} ({m['task']}, {len(m['inputs'])} input columns, {len(m['stages'])} stages)")
    out.print(f"serve it with: lakeforge serve --model-dir {output}")
