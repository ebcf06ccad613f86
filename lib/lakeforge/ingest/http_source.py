"""Fetch JSON records from an HTTP/REST API, page by page (pure Python, no Spark).

``fetch_pages`` follows one of five pagination styles, retries transient failures (429, 5xx,
connection errors, timeouts) with exponential backoff, and reads an optional bearer token from
an environment variable. Secrets (the token, secret-looking query parameters and headers, a
password in the URL) never appear in log lines, in ``Page.url`` or in error messages.

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

import email.utils
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

from lakeforge.core.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

PAGINATIONS = ("none", "page", "offset", "cursor", "next_link")
MAX_WAIT = 60.0  # seconds: the longest pause between two attempts, whatever Retry-After says
USER_AGENT = "lakeforge-http-source"
# Query parameters and headers whose values are treated as secrets.
SECRET_NAME = re.compile(r"(?i)token|secret|passw|pwd|api[-_.]?key|apikey|access[-_.]?key|signature|^sig$|auth|credential|session")
_REDACTED = "***"


@dataclass(frozen=True)
class Page:
    number: int  # 1-based page counter
    url: str  # the URL requested (no secrets in it)
    records: list[dict]  # the records of this page


def fetch_pages(
    url: str,
    *,
    records_path: str | None = None,
    pagination: str = "none",
    page_param: str = "page",
    size_param: str = "per_page",
    page_size: int = 100,
    first_page: int = 1,
    offset_param: str = "offset",
    limit_param: str = "limit",
    cursor_param: str = "cursor",
    cursor_path: str = "next_cursor",
    next_path: str | None = None,
    params: dict | None = None,
    headers: dict | None = None,
    token_env: str | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    max_pages: int | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> Iterator[Page]:
    """Yield the pages of records of the JSON API at ``url``.

    ``records_path`` is the dotted path of the list of records in each body (``"data.items"``;
    list indexes are numbers), None when the body itself is the list. ``token_env`` names an
    environment variable holding a bearer token. A failed request is tried again ``retries``
    times (so at most ``retries + 1`` attempts) after waiting ``backoff * 2**attempt`` seconds, or
    the server's Retry-After, at most ``MAX_WAIT``. ``max_pages`` stops after that many pages.

    The arguments and the token variable are checked when this function is called; the requests
    are made as the returned iterator is consumed. Raises ``ConfigError`` for invalid arguments
    and ``SourceError`` when the API is unreachable, refuses the request or answers with
    something other than the configured JSON.
    """
    _check_arguments(url, pagination, page_size, retries, backoff, timeout, max_pages)
    secrets: list[str] = []
    all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    for name, value in all_headers.items():
        if SECRET_NAME.search(name) and value:
            secrets.append(str(value))
    if token_env is not None:
        token = os.environ.get(token_env, "").strip()
        if not token:
            raise SourceError(
                f"HTTP source {safe_url(url)}: environment variable {token_env} (token_env, the bearer "
                "token) is not set or empty; export it before running"
            )
        secrets.append(token)
        all_headers["Authorization"] = f"Bearer {token}"
    for name, value in (params or {}).items():
        if SECRET_NAME.search(str(name)) and value not in (None, ""):
            secrets.append(str(value))
    for name, value in parse_qsl(urlsplit(url).query):
        if SECRET_NAME.search(name) and value:
            secrets.append(value)
    password = urlsplit(url).password
    if password:
        secrets.append(password)
    client = _Client(session, all_headers, secrets, token_env, timeout, retries, backoff, sleep)
    pages = _paginate(
        client, url, dict(params or {}), records_path, pagination, page_param, size_param, page_size,
        first_page, offset_param, limit_param, cursor_param, cursor_path, next_path, max_pages,
        has_token=token_env is not None,
    )
    return pages


def _check_arguments(url, pagination, page_size, retries, backoff, timeout, max_pages) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"HTTP source URL {safe_url(url)!r} is not an http:// or https:// URL with a host")
    if pagination not in PAGINATIONS:
        raise ConfigError(f"HTTP source pagination {pagination!r} is not one of {', '.join(PAGINATIONS)}")
    if page_size < 1:
        raise ConfigError(f"HTTP source page_size must be at least 1, not {page_size}")
    if retries < 0 or backoff < 0 or timeout <= 0:
        raise ConfigError(
            f"HTTP source: retries ({retries}) and backoff ({backoff}) must be >= 0 and timeout ({timeout}) > 0"
        )
    if max_pages is not None and max_pages < 1:
        raise ConfigError(f"HTTP source max_pages must be at least 1 (or unset), not {max_pages}")


def safe_url(url: str, params: dict | None = None) -> str:
    """``url`` with ``params`` added to its query, and secrets removed: the password in the
    user-info part and the values of secret-looking query parameters become ``***``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [
        (str(k), "" if v is None else str(v)) for k, v in (params or {}).items()
    ]
    query = [(k, _REDACTED if SECRET_NAME.search(k) and v else v) for k, v in query]
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{_REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))


def host_port(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


class _Client:
    """One GET with retries; every message it produces is scrubbed of the secrets."""

    def __init__(self, session, headers, secrets, token_env, timeout, retries, backoff, sleep):
        self.session = session
        self.headers = headers
        self.secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
        self.token_env = token_env
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, _REDACTED)
        return text

    def get(self, url: str, params: dict) -> requests.Response:
        shown = safe_url(url, params)
        attempts = self.retries + 1
        last = ""
        for attempt in range(attempts):
            retry_after = None
            try:
                response = self.session.get(url, params=params or None, headers=self.headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                last = self._describe(exc)
            except requests.RequestException as exc:  # an invalid URL, too many redirects...
                raise SourceError(f"HTTP source: GET {shown} failed: {self._describe(exc)}") from None
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status != 429 and status < 500:
                    raise SourceError(self._refused(shown, response)) from None
                last = f"HTTP {status} {response.reason or ''}".rstrip()
                retry_after = _retry_after(response.headers.get("Retry-After"))
                response.close()
            if attempt == attempts - 1:
                break
            wait = min(retry_after if retry_after is not None else self.backoff * 2**attempt, MAX_WAIT)
            log.warning("GET %s: %s; retry %d of %d in %.1f s", shown, last, attempt + 1, self.retries, wait)
            self.sleep(wait)
        raise SourceError(
            f"HTTP source: GET {shown} failed after {attempts} attempt(s) (host {host_port(url)}): "
            f"last error: {last}"
        )

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, requests.Timeout):
            return f"no answer within {self.timeout:g} s (timeout, {type(exc).__name__})"
        text = str(exc)
        if isinstance(exc, requests.ConnectionError):
            errno = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
            if errno:  # refused, reset, name not known...
                return "connection failed: " + errno.group(0).strip()
            cause = _root_cause(exc)
            detail = re.sub(r"<[^>]*>:?\s*", "", str(cause))  # object reprs say nothing useful
            detail = self.scrub(_strip_queries(detail))[:200]
            return f"connection failed: {type(cause).__name__}" + (f": {detail}" if detail else "")
        # Not a connection problem: the text is short and useful, but may quote the URL.
        return f"{type(exc).__name__}: {self.scrub(_strip_queries(text))[:300]}"

    def _refused(self, shown: str, response: requests.Response) -> str:
        status = response.status_code
        body = " ".join(response.text[:300].split())
        message = f"HTTP source: GET {shown} answered HTTP {status} {response.reason or ''}".rstrip()
        if body:
            message += f": {self.scrub(body)[:200]}"
        if status in (401, 403):
            if self.token_env:
                message += f". Check the bearer token in environment variable {self.token_env} (token_env)"
            else:
                message += ". The API wants credentials: set token_env to an environment variable holding a bearer token"
        return message


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception wrapped by requests/urllib3 (``reason``, an exception argument,
    ``__cause__``)."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
        if inner is None:
            inner = exc.__cause__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def _strip_queries(text: str) -> str:
    """Drop query strings from any URL-ish text (``/path?a=1`` -> ``/path?...``)."""
    return re.sub(r"\?[^\s'\")]*", "?...", text)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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


def _read_body(client: _Client, response: requests.Response, shown: str) -> Any:
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


def _paginate(client: _Client, url, params, records_path, pagination, page_param, size_param, page_size,
              first_page, offset_param, limit_param, cursor_param, cursor_path, next_path, max_pages,
              has_token) -> Iterator[Page]:
    own_session = client.session is None
    if own_session:
        client.session = requests.Session()
    # urllib3 logs each request line, query string included, at DEBUG level.
    scrubber = _ScrubFilter(client)
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.addFilter(scrubber)
    try:
        number = 0
        page_no, offset, cursor = first_page, 0, None
        next_url: str | None = url
        seen: set = set()
        while True:
            number += 1
            request_url, request_params = url, dict(params)
            if pagination == "page":
                request_params.update({page_param: page_no, size_param: page_size})
            elif pagination == "offset":
                request_params.update({offset_param: offset, limit_param: page_size})
            elif pagination == "cursor" and cursor is not None:
                request_params[cursor_param] = cursor
            elif pagination == "next_link" and number > 1:
                request_url, request_params = next_url, {}
            shown = safe_url(request_url, request_params)
            response = client.get(request_url, request_params)
            with response:
                body = _read_body(client, response, shown)
                records = _records(body, records_path, shown, number)
                # What comes next, and whether this page is the last.
                if pagination == "none":
                    last = True
                elif pagination in ("page", "offset"):
                    last = len(records) < page_size
                    page_no, offset = page_no + 1, offset + len(records)
                elif pagination == "cursor":
                    try:
                        cursor = _dig(body, cursor_path) if body is not None else None
                    except KeyError:
                        cursor = None
                    last = cursor is None or cursor == ""
                    if not last:
                        cursor = str(cursor)
                        if cursor in seen:
                            raise SourceError(f"HTTP source: {shown} returned cursor {client.scrub(cursor)!r} twice; stopping a pagination loop")
                        seen.add(cursor)
                else:
                    next_url = _next_link(body, response, next_path)
                    last = not next_url
                    if not last:
                        next_url = urljoin(response.url or request_url, next_url)
                        if next_url in seen or next_url == request_url:
                            raise SourceError(f"HTTP source: {shown} links to a page already read ({safe_url(next_url)}); stopping a pagination loop")
                        seen.add(request_url)
                        if has_token and _origin(next_url) != _origin(url):
                            raise SourceError(
                                f"HTTP source: the next link of {shown} points to another host "
                                f"({host_port(next_url)}); refusing to send the bearer token there"
                            )
            if records or number == 1 or not last:
                log.info("GET %s: page %d, %d record(s)", shown, number, len(records))
                yield Page(number=number, url=shown, records=records)
            if last:
                return
            if max_pages is not None and number >= max_pages:
                log.info("HTTP source %s: stopped after max_pages=%d pages", safe_url(url), max_pages)
                return
    finally:
        urllib3_log.removeFilter(scrubber)
        if own_session:
            client.session.close()


class _ScrubFilter(logging.Filter):
    """Replaces the secrets in another library's log records with ``***``."""

    def __init__(self, client: _Client):
        super().__init__()
        self.client = client

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.client.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def _next_link(body: Any, response: requests.Response, next_path: str | None) -> str | None:
    if next_path is None:
        return response.links.get("next", {}).get("url") or None
    try:
        value = _dig(body, next_path) if body is not None else None
    except KeyError:
        return None
    return str(value) if value else None
