"""A small JSON API on 127.0.0.1 for the HTTP source tests: a fixed dataset of 23 records served
through each pagination style, plus endpoints that fail, rate-limit, hang or want a token.

    with ApiServer() as api:
        requests.get(f"{api.url}/paged?page=1&per_page=5")
        api.count("/paged")  # requests the server received on that path

Endpoints (GET; ``<key>`` is any name, so each test gets its own counter):

==============================  ==========================================================
``/items``                      all records, the body is the list
``/wrapped``                    ``{"data": {"items": [...], "count": 23}}``
``/paged?page=N&per_page=S``    ``{"items": [...], "page": N, "total": 23}`` (S default 10)
``/offset?offset=K&limit=S``    ``{"results": [...]}`` (S default 10)
``/cursor?cursor=C&limit=S``    ``{"items": [...], "next_cursor": "after-K" | null}`` (S default 5)
``/next_body?after=K&limit=S``  ``{"items": [...], "links": {"next": "/next_body?..." | null}}``
``/next_header?after=K&limit=S``  the list, and ``Link: <absolute url>; rel="next"`` while more
``/flaky/<key>?fail=N``         503 for the first N requests on that path, then ``/items``
``/ratelimited/<key>?fail=N&retry_after=S``  429 with ``Retry-After: S`` N times, then ``/items``
``/error500``                   always 500
``/slow?delay=S``               waits S seconds, then ``/items``
``/secure``                     ``/items`` with ``Authorization: Bearer <TOKEN>``, else 401
``/notjson``                    an HTML page (200)
``/status/<code>``              that status with a small JSON error body
==============================  ==========================================================
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

TOKEN = "tok-3f9a61c2d7e845b0"  # the bearer token /secure accepts


def make_records(n: int = 23) -> list[dict]:
    """Records with a few types and nested values: ``id`` 1..n in order."""
    return [
        {
            "id": i,
            "name": f"item-{i:02d}",
            "price": round(i * 1.25, 2),
            "active": i % 2 == 0,
            "tags": [f"t{i % 3}", f"g{i % 2}"],
            "dims": {"w": i, "h": i * 2},
            "note": None if i % 5 == 0 else f"note {i}",
        }
        for i in range(1, n + 1)
    ]


RECORDS = make_records()


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


class ApiServer:
    """The API in a background thread; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, records: list[dict] | None = None, token: str = TOKEN):
        self.records = RECORDS if records is None else records
        self.token = token
        self.seen: list[Seen] = []
        self._hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the API server is not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def count(self, path: str) -> int:
        """How many requests arrived on ``path`` (without its query)."""
        with self._lock:
            return self._hits[path]

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self.seen.clear()

    def start(self) -> ApiServer:
        server = self

        class Handler(_Handler):
            api = server

        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # releases /slow requests
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _hit(self, seen: Seen) -> int:
        with self._lock:
            self.seen.append(seen)
            self._hits[seen.path] += 1
            return self._hits[seen.path]


class _Handler(BaseHTTPRequestHandler):
    api: ApiServer

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def _send(self, status: int, body, headers: dict | None = None, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        path = parts.path
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        n = self.api._hit(Seen(path, q, dict(self.headers.items())))  # noqa: SLF001
        records = self.api.records
        segments = path.strip("/").split("/")

        def integer(name: str, default: int) -> int:
            return int(q.get(name, default))

        if path == "/items":
            return self._send(200, records)
        if path == "/wrapped":
            return self._send(200, {"data": {"items": records, "count": len(records)}})
        if path == "/paged":
            page, size = integer("page", 1), min(integer("per_page", 10), 100)
            start = (page - 1) * size
            return self._send(200, {"items": records[start:start + size], "page": page, "total": len(records)})
        if path == "/offset":
            offset, size = integer("offset", 0), min(integer("limit", 10), 100)
            return self._send(200, {"results": records[offset:offset + size]})
        if path == "/cursor":
            cursor = q.get("cursor", "after-0")
            start, size = int(cursor.removeprefix("after-")), integer("limit", 5)
            end = start + size
            return self._send(200, {"items": records[start:end], "next_cursor": f"after-{end}" if end < len(records) else None})
        if path in ("/next_body", "/next_header"):
            start, size = integer("after", 0), integer("limit", 5)
            end = start + size
            more = end < len(records)
            link = f"{path}?{urlencode({'after': end, 'limit': size})}" if more else None
            if path == "/next_body":
                return self._send(200, {"items": records[start:end], "links": {"next": link}})
            headers = {"Link": f'<{self.api.url}{link}>; rel="next"'} if more else {}
            return self._send(200, records[start:end], headers)
        if segments[0] == "flaky" and len(segments) == 2:
            if n <= integer("fail", 1):
                return self._send(503, {"error": "unavailable"})
            return self._send(200, records)
        if segments[0] == "ratelimited" and len(segments) == 2:
            if n <= integer("fail", 1):
                return self._send(429, {"error": "slow down"}, {"Retry-After": q.get("retry_after", "1")})
            return self._send(200, records)
        if path == "/error500":
            return self._send(500, {"error": "boom"})
        if path == "/slow":
            self.api._stopping.wait(float(q.get("delay", "5")))  # noqa: SLF001
            return self._send(200, records)
        if path == "/secure":
            if self.headers.get("Authorization") != f"Bearer {self.api.token}":
                return self._send(401, {"error": "missing or wrong bearer token"})
            return self._send(200, records)
        if path == "/notjson":
            return self._send(200, "<html><body>Maintenance</body></html>", content_type="text/html")
        if segments[0] == "status" and len(segments) == 2:
            return self._send(int(segments[1]), {"error": f"status {segments[1]}"})
        return self._send(404, {"error": f"no endpoint {path}"})
