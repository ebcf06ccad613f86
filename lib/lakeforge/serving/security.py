"""The server's guard, as one ASGI middleware in front of every route: the optional bearer token
(read from the environment variable named by ``serving.token_env``, compared with
``hmac.compare_digest``), the latency and request counters of /metrics, and a JSON error body
for anything unexpected (the traceback goes to the server log, never to the client)."""

from __future__ import annotations

import hmac
import json
import logging
import os
import time

from lakeforge.core.errors import ConfigError
from lakeforge.serving.metrics import ServerMetrics

log = logging.getLogger("lakeforge.serve")
PROTECTED = ("/predict", "/reload", "/model", "/metrics")  # /health, /ready and the docs stay open
ROUTES = ("/predict", "/reload", "/model", "/metrics", "/health", "/ready")


def read_token(env_name: str | None) -> bytes | None:
    """The bearer token from the environment (``None``: no authentication)."""
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(f"serving.token_env is {env_name!r} but that environment variable is not set or empty; "
                          "export it, or remove serving.token_env to serve without a token")
    return value.encode()


def error_body(kind: str, detail: str) -> bytes:
    return json.dumps({"error": kind, "detail": detail}).encode()


async def send_json(send, status: int, body: bytes, headers: list | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: authentication, metrics, and a last-resort 500 without a traceback."""

    def __init__(self, app, metrics: ServerMetrics, token: bytes | None):
        self.app, self.metrics, self.token = app, metrics, token

    def _authorized(self, scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in ROUTES else "other"
        t0 = time.perf_counter()
        status = [500]

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if self.token is not None and path.startswith(PROTECTED) and not self._authorized(scope):
                self.metrics.errors.labels("unauthorized").inc()
                await send_json(tracking_send, 401, error_body("unauthorized", "a valid 'Authorization: Bearer <token>' header is required"),
                                [(b"www-authenticate", b"Bearer")])
            else:
                await self.app(scope, receive, tracking_send)
        except Exception:  # noqa: BLE001 - never a stack trace in a response
            log.exception("internal error on %s", path)
            self.metrics.errors.labels("internal").inc()
            await send_json(tracking_send, 500, error_body("internal", "internal server error (see the server log)"))
        finally:
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - t0)
