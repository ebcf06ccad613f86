"""Fetch JSON records from an HTTP/REST API, page by page (pure Python, no Spark).

``fetch_pages`` (given an ``ApiSpec``) follows one of five pagination styles, retries transient
failures (429, 5xx, connection errors, timeouts) with exponential backoff, and reads an optional
bearer token from an environment variable. Secrets (the token, secret-looking query parameters and headers, a
password in the URL) never appear in log lines, in ``Page.url`` or in error messages
(lakeforge.ingest.http_client: the requests and the scrubbing).

Pagination styles:

``none``
    One request; the body (or ``records_path`` in it) is the list of records.
``page``
    ``?page=N&per_page=SIZE`` from ``first_page``; stops on an empty page or one with fewer than
    ``page_size`` records. Set ``page_size`` no larger than the API's own maximum page size: an
    API that silently caps it returns short pages, which end the fetch early.
``offset``
    ``?offset=K&limit=SIZE`` from 0; stops like ``page``.
``cursor``
    The first request has no cursor; each next one sends ``cursor_param`` = the value at
    ``cursor_path`` in the previous body. Stops when that value is missing, null or empty.
``next_link``
    Follows the URL at ``next_path`` in the body, or the ``Link: <...>; rel="next"`` header when
    ``next_path`` is None. Relative links are resolved against the current URL; ``params`` are
    sent with the first request only (the next link carries its own query). Stops when there is
    no next link.

Every fetched page is yielded, except an empty page that merely ends the pagination after
earlier pages. Records are the JSON objects as parsed: nested values are kept as they are.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests

from lakeforge.core.config_source import HttpConfig
from lakeforge.core.errors import ConfigError, SourceError
from lakeforge.ingest.http_client import SECRET_NAME, HttpClient, host_port, safe_url

log = logging.getLogger(__name__)

PAGINATIONS = ("none", "page", "offset", "cursor", "next_link")
USER_AGENT = "lakeforge-http-source"


@dataclass(frozen=True)
class Page:
    number: int  # 1-based page counter
    url: str  # the URL requested (no secrets in it)
    records: list[dict]  # the records of this page


@dataclass(frozen=True)
class ApiSpec:
    """What fetch_pages fetches, and how.

    ``records_path`` is the dotted path of the list of records in each body (``"data.items"``;
    list indexes are numbers), None when the body itself is the list. ``token_env`` names an
    environment variable holding a bearer token. A failed request is tried again ``retries``
    times (so at most ``retries + 1`` attempts) after waiting ``backoff * 2**attempt`` seconds, or
    the server's Retry-After, at most ``http_client.MAX_WAIT``; ``timeout`` is per request, in seconds.
    ``max_pages`` stops after that many pages. The other fields are the pagination's (see the
    module docstring)."""

    url: str
    records_path: str | None = None
    pagination: str = "none"
    page_param: str = "page"
    size_param: str = "per_page"
    page_size: int = 100
    first_page: int = 1
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    cursor_path: str = "next_cursor"
    next_path: str | None = None
    params: dict | None = None
    headers: dict | None = None
    token_env: str | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0
    max_pages: int | None = None

    @classmethod
    def from_config(cls, h: HttpConfig) -> ApiSpec:
        """The spec of a source's ``http`` config."""
        return cls(
            h.url, records_path=h.records_path, pagination=h.pagination, page_param=h.page_param,
            size_param=h.size_param, page_size=h.page_size, first_page=h.first_page,
            offset_param=h.offset_param, limit_param=h.limit_param, cursor_param=h.cursor_param,
            cursor_path=h.cursor_path, next_path=h.next_path, params=dict(h.params), headers=dict(h.headers),
            token_env=h.token_env, timeout=h.timeout_s, retries=h.retries, backoff=h.backoff_s, max_pages=h.max_pages,
        )


def fetch_pages(spec: ApiSpec, *, session: requests.Session | None = None,
                sleep: Callable[[float], Any] = time.sleep) -> Iterator[Page]:
    """Yield the pages of records of the JSON API at ``spec.url`` (``session``: the requests
    session to use, else one of its own; ``sleep``: how to wait between attempts).

    The spec and the token variable are checked when this function is called; the requests
    are made as the returned iterator is consumed. Raises ``ConfigError`` for an invalid spec
    and ``SourceError`` when the API is unreachable, refuses the request or answers with
    something other than the configured JSON.
    """
    _check_arguments(spec)
    url = spec.url
    secrets: list[str] = []
    all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(spec.headers or {})}
    for name, value in all_headers.items():
        if SECRET_NAME.search(name) and value:
            secrets.append(str(value))
    if spec.token_env is not None:
        token = os.environ.get(spec.token_env, "").strip()
        if not token:
            raise SourceError(
                f"HTTP source {safe_url(url)}: environment variable {spec.token_env} (token_env, the bearer "
                "token) is not set or empty; export it before running"
            )
        secrets.append(token)
        all_headers["Authorization"] = f"Bearer {token}"
    for name, value in (spec.params or {}).items():
        if SECRET_NAME.search(str(name)) and value not in (None, ""):
            secrets.append(str(value))
    for name, value in parse_qsl(urlsplit(url).query):
        if SECRET_NAME.search(name) and value:
            secrets.append(value)
    password = urlsplit(url).password
    if password:
        secrets.append(password)
    client = HttpClient(all_headers, secrets, spec.token_env, spec.timeout, spec.retries, spec.backoff, sleep)
    return _paginate(client, spec, session)


def _check_arguments(spec: ApiSpec) -> None:
    parts = urlsplit(spec.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"HTTP source URL {safe_url(spec.url)!r} is not an http:// or https:// URL with a host")
    if spec.pagination not in PAGINATIONS:
        raise ConfigError(f"HTTP source pagination {spec.pagination!r} is not one of {', '.join(PAGINATIONS)}")
    if spec.page_size < 1:
        raise ConfigError(f"HTTP source page_size must be at least 1, not {spec.page_size}")
    retries, backoff, timeout = spec.retries, spec.backoff, spec.timeout
    if retries < 0 or backoff < 0 or timeout <= 0:
        raise ConfigError(
            f"HTTP source: retries ({retries}) and backoff ({backoff}) must be >= 0 and timeout ({timeout}) > 0"
        )
    if spec.max_pages is not None and spec.max_pages < 1:
        raise ConfigError(f"HTTP source max_pages must be at least 1 (or unset), not {spec.max_pages}")


def _dig(body: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``body``; KeyError naming the missing part."""
    node = body
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and re.fullmatch(r"\d+", part) and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(part)
    return node


def _read_body(client: HttpClient, response: requests.Response, shown: str) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        start = client.scrub(" ".join(response.text[:80].split()))
        raise SourceError(f"HTTP source: GET {shown} did not return JSON ({kind}); the body starts with: {start!r}") from None


def _records(body: Any, records_path: str | None, shown: str, number: int) -> list[dict]:
    if body is None:
        return []
    if records_path:
        try:
            found = _dig(body, records_path)
        except KeyError as missing:
            keys = ", ".join(map(str, body)) if isinstance(body, dict) else type(body).__name__
            raise SourceError(
                f"HTTP source: records_path {records_path!r} not found in the JSON of {shown} "
                f"(no {missing.args[0]!r}; the body's top level: {keys[:300]})"
            ) from None
        where = f"records_path {records_path!r}"
    else:
        found, where = body, "the body"
    if found is None:
        return []
    if not isinstance(found, list):
        hint = ""
        if isinstance(found, dict):
            lists = [k for k, v in found.items() if isinstance(v, list)]
            hint = f"; set records_path to the key of the list ({', '.join(lists)})" if lists else ""
        raise SourceError(f"HTTP source: {where} of {shown} is a JSON {type(found).__name__}, not a list of records{hint}")
    for i, record in enumerate(found):
        if not isinstance(record, dict):
            raise SourceError(
                f"HTTP source: record {i} of page {number} ({shown}, {where}) is a JSON "
                f"{type(record).__name__}, not an object"
            )
    return found


def _origin(url: str) -> tuple:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _paginate(client: HttpClient, spec: ApiSpec, session: requests.Session | None) -> Iterator[Page]:
    with client.connected(session):
        yield from _pages(client, spec)


def _pages(client: HttpClient, spec: ApiSpec) -> Iterator[Page]:
    pager = _Pager(client, spec)
    number = 0
    while True:
        number += 1
        request_url, request_params = pager.request(number)
        shown = safe_url(request_url, request_params)
        response = client.get(request_url, request_params)
        with response:
            body = _read_body(client, response, shown)
            records = _records(body, spec.records_path, shown, number)
            last = pager.advance(body, response, len(records), request_url, shown)
        if records or number == 1 or not last:
            log.info("GET %s: page %d, %d record(s)", shown, number, len(records))
            yield Page(number=number, url=shown, records=records)
        if last:
            return
        if spec.max_pages is not None and number >= spec.max_pages:
            log.info("HTTP source %s: stopped after max_pages=%d pages", safe_url(spec.url), spec.max_pages)
            return


class _Pager:
    """Where a pagination is: the next request, and whether the page just read is the last."""

    def __init__(self, client: HttpClient, spec: ApiSpec):
        self.client, self.spec = client, spec
        self.params = dict(spec.params or {})
        self.page_no, self.offset, self.cursor = spec.first_page, 0, None
        self.next_url: str | None = spec.url
        self.seen: set = set()

    def request(self, number: int) -> tuple[str, dict]:
        """The URL and query parameters of page ``number``."""
        spec = self.spec
        request_url, request_params = spec.url, dict(self.params)
        if spec.pagination == "page":
            request_params.update({spec.page_param: self.page_no, spec.size_param: spec.page_size})
        elif spec.pagination == "offset":
            request_params.update({spec.offset_param: self.offset, spec.limit_param: spec.page_size})
        elif spec.pagination == "cursor" and self.cursor is not None:
            request_params[spec.cursor_param] = self.cursor
        elif spec.pagination == "next_link" and number > 1:
            request_url, request_params = self.next_url, {}
        return request_url, request_params

    def advance(self, body: Any, response: requests.Response, count: int, request_url: str, shown: str) -> bool:
        """Take in the page just read (``count`` records): what comes next, and whether it was the last."""
        spec = self.spec
        if spec.pagination == "none":
            return True
        if spec.pagination in ("page", "offset"):
            self.page_no, self.offset = self.page_no + 1, self.offset + count
            return count < spec.page_size
        if spec.pagination == "cursor":
            return self._next_cursor(body, shown)
        return self._next_link(body, response, request_url, shown)

    def _next_cursor(self, body: Any, shown: str) -> bool:
        try:
            cursor = _dig(body, self.spec.cursor_path) if body is not None else None
        except KeyError:
            cursor = None
        self.cursor = cursor
        if cursor is None or cursor == "":
            return True
        self.cursor = cursor = str(cursor)
        if cursor in self.seen:
            raise SourceError(f"HTTP source: {shown} returned cursor {self.client.scrub(cursor)!r} twice; stopping a pagination loop")
        self.seen.add(cursor)
        return False

    def _next_link(self, body: Any, response: requests.Response, request_url: str, shown: str) -> bool:
        next_url = _next_link(body, response, self.spec.next_path)
        self.next_url = next_url
        if not next_url:
            return True
        self.next_url = next_url = urljoin(response.url or request_url, next_url)
        if next_url in self.seen or next_url == request_url:
            raise SourceError(f"HTTP source: {shown} links to a page already read ({safe_url(next_url)}); stopping a pagination loop")
        self.seen.add(request_url)
        if self.spec.token_env is not None and _origin(next_url) != _origin(self.spec.url):
            raise SourceError(
                f"HTTP source: the next link of {shown} points to another host "
                f"({host_port(next_url)}); refusing to send the bearer token there"
            )
        return False


def _next_link(body: Any, response: requests.Response, next_path: str | None) -> str | None:
    if next_path is None:
        return response.links.get("next", {}).get("url") or None
    try:
        value = _dig(body, next_path) if body is not None else None
    except KeyError:
        return None
    return str(value) if value else None
