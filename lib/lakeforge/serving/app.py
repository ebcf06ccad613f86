"""The HTTP API of a served model (FastAPI): POST /predict, GET /health, /ready, /model,
/metrics, POST /reload, the OpenAPI docs at /docs, and the dashboard at / when it is installed.

``create_app(Server(...))`` builds it around a ``ModelHolder`` whose first model is already
loaded. The alias is re-checked every ``serving.reload_interval_s`` by a background thread (and
on POST /reload); a new version is loaded beside the old one and swapped in one assignment.
Scoring runs on the event loop: numpy on one record is microseconds, a thread hop would cost more.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from lakeforge.core.settings import ServingConfig
from lakeforge.serving.metrics import ServerMetrics
from lakeforge.serving.model_store import ModelHolder, ServedModel
from lakeforge.serving.predict import Limits, RequestError, parse_body, predict
from lakeforge.serving.prediction_log import PredictionLog
from lakeforge.serving.security import Guard, error_body, read_token

log = logging.getLogger("lakeforge.serve")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
DRAIN_BYTES = 64 * 1024 * 1024  # an oversized body is read (and dropped) up to this much more


@dataclass
class Server:
    """What the app is built from (the holder's first model already loaded)."""

    holder: ModelHolder
    config: ServingConfig
    log_folder: Path | None = None  # the prediction log's folder (None: off)
    settings: Any = None  # lakeforge Settings and PipelineConfig, for the dashboard (registry mode only)
    pipeline: Any = None
    extra: dict = field(default_factory=dict)


def _json(data: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(data, allow_nan=False).encode(), status_code=status, media_type="application/json",
                    headers=headers)


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body, or a 413 once it passes ``max_bytes``. The rest of an oversized body is read and
    dropped (up to DRAIN_BYTES) so that the client, still sending, gets the 413 and not a reset."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            if size > max_bytes + DRAIN_BYTES:
                break
            chunks = None
        elif chunks is not None:
            chunks.append(chunk)
    if chunks is None or size > max_bytes:
        raise RequestError(413, "body_too_large", f"request body over {max_bytes:,} bytes (serving.max_body_bytes)")
    return b"".join(chunks)


def _record_schema(model: ServedModel) -> dict:
    types = {"string": "string", "double": "number", "float": "number", "integer": "integer", "long": "integer",
             "boolean": "boolean", "datetime": "string"}
    props = {c.name: {"type": types.get(c.type, "object"), "nullable": True} for c in model.inputs}
    if model.key:
        props[model.key] = {"description": "the record's key, echoed in the answer"}
    return {"type": "object", "properties": props, "required": model.input_names}


def _mount_dashboard(app: FastAPI, server: Server) -> str:
    if server.settings is None or server.pipeline is None:
        return "off (--model-dir: no pipeline settings)"
    try:
        from lakeforge.serving.dashboard import mount_dashboard
    except ImportError:
        return "not installed (lakeforge.serving.dashboard missing)"
    mount_dashboard(app, server.settings, server.pipeline)
    return "at /"


def _reload_loop(holder: ModelHolder, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        holder.check()


@dataclass
class _Parts:
    """What the routes share."""

    server: Server
    metrics: ServerMetrics
    plog: PredictionLog | None
    limits: Limits
    state: dict = field(default_factory=lambda: {"dashboard": "off"})


def _add_predict(app: FastAPI, p: _Parts) -> None:
    holder, cfg, metrics, first = p.server.holder, p.server.config, p.metrics, p.server.holder.current
    schema = _record_schema(first)

    @app.post("/predict", openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [schema, {"type": "array", "items": schema}]}}}}})
    async def predict_route(request: Request) -> Response:
        """Score one record (a JSON object) or a list of them: key, score, predicted_label, model name and version."""
        model = holder.current  # read once: a swap during this request does not change its model
        given = request.headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        try:
            records, single = parse_body(await _read_body(request, cfg.max_body_bytes), p.limits)
            rows = predict(model, records, p.limits)
        except RequestError as exc:
            metrics.errors.labels(exc.kind).inc()
            return Response(error_body(exc.kind, exc.detail), status_code=exc.status, media_type="application/json",
                            headers={"x-request-id": request_id})
        metrics.rows.inc(len(rows))
        if p.plog is not None:
            p.plog.put(request_id, model.name, model.version, records, rows)
        return _json(rows[0] if single else rows, headers={"x-request-id": request_id})


def _add_info(app: FastAPI, p: _Parts) -> None:
    holder, cfg = p.server.holder, p.server.config

    @app.get("/health")
    async def health() -> Response:
        """The process is alive."""
        return _json({"status": "ok"})

    @app.get("/ready")
    async def ready() -> Response:
        """A model is loaded and answering."""
        m = holder.current
        return _json({"ready": m is not None, "model_version": m and m.version}, 200 if m is not None else 503)

    @app.get("/model")
    async def model_info() -> Response:
        """The model being served: name, version, alias, signature, threshold, scorer and stages."""
        m = holder.current
        return _json({**m.describe(), "reloads": holder.reloads, "last_reload_error": holder.last_error,
                      "reload_interval_s": cfg.reload_interval_s if holder.source.follows_alias else None,
                      "dashboard": p.state["dashboard"],
                      "prediction_log": str(p.server.log_folder) if p.plog else None,
                      "process": {"pid": os.getpid(), "pyspark_imported": "pyspark" in sys.modules}})

    @app.get("/metrics")
    async def metrics_route() -> Response:
        """Prometheus text format: requests, latency, errors by kind, rows scored, model version, log health."""
        return Response(p.metrics.text(), media_type=p.metrics.content_type)

    @app.post("/reload")
    def reload() -> Response:
        """Re-check the alias now; a new version is loaded and swapped in (runs in a worker thread)."""
        return _json(holder.check())


def create_app(server: Server) -> Guard:
    """The ASGI app: the FastAPI routes behind the guard (token, metrics, no tracebacks)."""
    holder, cfg = server.holder, server.config
    metrics = ServerMetrics()
    holder.on_swap.append(metrics.set_model)
    metrics.set_model(None, holder.current)
    plog = (PredictionLog(server.log_folder, cfg.log_max_bytes, cfg.log_queue, metrics, cfg.log_max_age_s)
            if server.log_folder is not None else None)
    parts = _Parts(server, metrics, plog, Limits(cfg.max_records, cfg.ignore_unknown_fields, cfg.allow_non_finite))
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_app):
        if holder.source.follows_alias and cfg.reload_interval_s > 0:
            threading.Thread(target=_reload_loop, args=(holder, cfg.reload_interval_s, stop), name="alias-reload",
                             daemon=True).start()
        yield
        stop.set()
        if plog is not None:
            plog.close()

    first = holder.current
    app = FastAPI(title=f"lakeforge serve: {first.name}", version=first.version, lifespan=lifespan,
                  description="Scores records with a registered lakeforge model, without a JVM. "
                              "The answers are the fields of the batch predictions table.")
    _add_predict(app, parts)
    _add_info(app, parts)
    parts.state["dashboard"] = _mount_dashboard(app, server)
    guarded = Guard(app, metrics, read_token(cfg.token_env))
    guarded.fastapi = app  # the routes behind the guard
    guarded.dashboard = parts.state["dashboard"]
    return guarded
