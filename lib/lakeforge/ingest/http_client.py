"""HTTP for lakeforge.ingest.http_source: one GET with retries and backoff, and URLs and messages
without secrets (the token, secret-looking query parameters and headers, a password in the URL
become ``***``). Pure Python, no Spark.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from lakeforge.core.errors import SourceError

log = logging.getLogger("lakeforge.ingest.http_source")  # retries are logged as part of the fetch

MAX_WAIT = 60.0  # seconds: the longest pause between two attempts, whatever Retry-After says
# Query parameters and headers whose values are treated as secrets.
SECRET_NAME = re.compile(r"(?i)token|secret|passw|pwd|api[-_.]?key|apikey|access[-_.]?key|signature|^sig$|auth|credential|session")
REDACTED = "***"


def safe_url(url: str, params: dict | None = None) -> str:
    """``url`` with ``params`` added to its query, and secrets removed: the password in the
    user-info part and the values of secret-looking query parameters become ``***``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [
        (str(k), "" if v is None else str(v)) for k, v in (params or {}).items()
    ]
    query = [(k, REDACTED if SECRET_NAME.search(k) and v else v) for k, v in query]
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), ""))


def host_port(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


class HttpClient:
    """One GET with retries; every message it produces is scrubbed of the secrets. ``timeout``
    per request, in seconds; a failed request is tried again ``retries`` times after waiting
    ``backoff * 2**attempt`` seconds (or the server's Retry-After, at most ``MAX_WAIT``) with
    ``sleep``; ``token_env`` names the variable of the bearer token, for hints."""

    def __init__(self, headers: dict, secrets: list[str], token_env: str | None, timeout: float, retries: int,
                 backoff: float, sleep: Callable[[float], Any]):
        self.session: requests.Session | None = None
        self.headers = headers
        self.secrets = sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True)
        self.token_env = token_env
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    @contextmanager
    def connected(self, session: requests.Session | None) -> Iterator[HttpClient]:
        """The client with ``session`` (else one of its own, closed at the end) and urllib3's log
        lines scrubbed of the secrets (urllib3 logs each request line, query string included,
        at DEBUG level)."""
        own_session = session is None
        self.session = requests.Session() if own_session else session
        scrubber = _ScrubFilter(self)
        urllib3_log = logging.getLogger("urllib3.connectionpool")
        urllib3_log.addFilter(scrubber)
        try:
            yield self
        finally:
            urllib3_log.removeFilter(scrubber)
            if own_session:
                self.session.close()

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
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


class _ScrubFilter(logging.Filter):
    """Replaces the secrets in another library's log records with ``***``."""

    def __init__(self, client: HttpClient):
        super().__init__()
        self.client = client

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.client.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True
