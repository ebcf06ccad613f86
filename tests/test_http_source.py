"""lakeforge.ingest.http_source against a real HTTP server on 127.0.0.1 (tests/api_server.py): every
pagination style, retries with backoff, timeouts, bearer tokens, and errors that name the URL
but never a secret. ``sleep`` is a fake that records the waits, so nothing really sleeps."""

from __future__ import annotations

import logging
import socket

import pytest
import requests

from api_server import RECORDS, TOKEN
from lakeforge.core.errors import ConfigError, InputDataError, SourceError
from lakeforge.ingest.http_client import MAX_WAIT, safe_url
from lakeforge.ingest.http_source import ApiSpec, Page, fetch_pages

ALL_IDS = list(range(1, 24))


class FakeSleep:
    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleep():
    return FakeSleep()


def ids(pages: list[Page]) -> list[int]:
    return [r["id"] for p in pages for r in p.records]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- pagination ---------------------------------------------------------------------------


def test_no_pagination_reads_the_whole_list_with_nested_values_as_is(api_server):
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/items")))
    assert [p.number for p in pages] == [1]
    assert pages[0].url == f"{api_server.url}/items"
    assert pages[0].records == RECORDS
    assert pages[0].records[4] == {
        "id": 5, "name": "item-05", "price": 6.25, "active": False, "tags": ["t2", "g1"],
        "dims": {"w": 5, "h": 10}, "note": None,
    }


def test_records_path_reaches_a_nested_list(api_server):
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/wrapped", records_path="data.items")))
    assert ids(pages) == ALL_IDS


def test_page_pagination_stops_on_a_short_page(api_server):
    api_server.reset()
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/paged", pagination="page", page_size=5, records_path="items")))
    assert ids(pages) == ALL_IDS
    assert [len(p.records) for p in pages] == [5, 5, 5, 5, 3]
    assert [p.number for p in pages] == [1, 2, 3, 4, 5]
    assert pages[1].url == f"{api_server.url}/paged?page=2&per_page=5"
    assert api_server.count("/paged") == 5  # no request after the short page
    assert [s.query for s in api_server.seen][:2] == [{"page": "1", "per_page": "5"}, {"page": "2", "per_page": "5"}]


def test_page_pagination_stops_on_an_empty_page_which_is_not_yielded(api_server):
    api_server.reset()
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/paged", pagination="page", page_size=23, records_path="items",
                                     page_param="page", size_param="per_page")))
    assert ids(pages) == ALL_IDS and len(pages) == 1
    assert api_server.count("/paged") == 2  # page 2 came back empty


def test_page_pagination_from_a_zero_based_first_page_and_extra_params(api_server):
    # the server's pages are 1-based: first_page=2 skips the first 10 records
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/paged", pagination="page", page_size=10, first_page=2,
                                     records_path="items", params={"sort": "id"})))
    assert ids(pages) == list(range(11, 24))
    assert pages[0].url == f"{api_server.url}/paged?sort=id&page=2&per_page=10"


def test_offset_pagination(api_server):
    api_server.reset()
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/offset", pagination="offset", page_size=7, records_path="results")))
    assert ids(pages) == ALL_IDS
    assert [s.query["offset"] for s in api_server.seen] == ["0", "7", "14", "21"]
    assert {s.query["limit"] for s in api_server.seen} == {"7"}


def test_cursor_pagination_stops_on_a_null_cursor(api_server):
    api_server.reset()
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/cursor", pagination="cursor", records_path="items",
                                     cursor_param="cursor", cursor_path="next_cursor")))
    assert ids(pages) == ALL_IDS
    assert [s.query.get("cursor") for s in api_server.seen] == [None, "after-5", "after-10", "after-15", "after-20"]


def test_next_link_in_the_body_relative(api_server):
    api_server.reset()
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/next_body?limit=6", pagination="next_link", records_path="items",
                                     next_path="links.next")))
    assert ids(pages) == ALL_IDS
    assert [p.url for p in pages] == [f"{api_server.url}/next_body?limit=6"] + [
        f"{api_server.url}/next_body?after={k}&limit=6" for k in (6, 12, 18)]


def test_next_link_in_the_link_header(api_server):
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/next_header", pagination="next_link")))
    assert ids(pages) == ALL_IDS
    assert len(pages) == 5


def test_max_pages_stops_early(api_server):
    api_server.reset()
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/cursor", pagination="cursor", records_path="items", max_pages=2)))
    assert ids(pages) == list(range(1, 11))
    assert api_server.count("/cursor") == 2


def test_a_given_session_is_used_and_left_open(api_server):
    with requests.Session() as session:
        session.headers["X-Trace"] = "abc"
        api_server.reset()
        assert ids(list(fetch_pages(ApiSpec(f"{api_server.url}/items"), session=session))) == ALL_IDS
        assert api_server.seen[0].headers["X-Trace"] == "abc"
        assert ids(list(fetch_pages(ApiSpec(f"{api_server.url}/items"), session=session))) == ALL_IDS


# --- retries and backoff ------------------------------------------------------------------


def test_503_is_retried_with_exponential_backoff(api_server, sleep):
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/flaky/a?fail=3", retries=3, backoff=0.5), sleep=sleep))
    assert ids(pages) == ALL_IDS
    assert api_server.count("/flaky/a") == 4
    assert sleep.waits == [0.5, 1.0, 2.0]


def test_429_waits_what_retry_after_says_capped(api_server, sleep):
    assert ids(list(fetch_pages(ApiSpec(f"{api_server.url}/ratelimited/a?fail=1&retry_after=7"), sleep=sleep))) == ALL_IDS
    assert sleep.waits == [7.0]
    assert api_server.count("/ratelimited/a") == 2
    assert ids(list(fetch_pages(ApiSpec(f"{api_server.url}/ratelimited/b?fail=2&retry_after=600"), sleep=sleep))) == ALL_IDS
    assert sleep.waits == [7.0, MAX_WAIT, MAX_WAIT]


def test_backoff_is_capped(api_server, sleep):
    with pytest.raises(SourceError):
        list(fetch_pages(ApiSpec(f"{api_server.url}/error500", retries=4, backoff=20), sleep=sleep))
    assert sleep.waits == [20, 40, MAX_WAIT, MAX_WAIT]


def test_500_forever_fails_after_the_retries_naming_url_status_and_attempts(api_server, sleep, caplog):
    api_server.reset()
    caplog.set_level(logging.INFO, logger="lakeforge.ingest.http_source")
    with pytest.raises(SourceError) as err:
        list(fetch_pages(ApiSpec(f"{api_server.url}/error500", retries=3, backoff=1), sleep=sleep))
    assert isinstance(err.value, InputDataError) and err.value.exit_code != 0
    message = str(err.value)
    assert f"{api_server.url}/error500" in message
    assert "HTTP 500" in message and "4 attempt(s)" in message and f"127.0.0.1:{api_server.port}" in message
    assert api_server.count("/error500") == 4
    assert sleep.waits == [1, 2, 4]
    assert [r.levelname for r in caplog.records] == ["WARNING"] * 3
    assert "retry 3 of 3 in 4.0 s" in caplog.records[-1].getMessage()


def test_zero_retries_means_one_attempt(api_server, sleep):
    api_server.reset()
    with pytest.raises(SourceError, match=r"1 attempt\(s\)"):
        list(fetch_pages(ApiSpec(f"{api_server.url}/error500", retries=0), sleep=sleep))
    assert api_server.count("/error500") == 1 and sleep.waits == []


def test_a_timeout_is_retried_then_fails(api_server, sleep):
    api_server.reset()
    with pytest.raises(SourceError) as err:
        list(fetch_pages(ApiSpec(f"{api_server.url}/slow?delay=3", timeout=0.2, retries=1, backoff=0.1), sleep=sleep))
    message = str(err.value)
    assert "timeout" in message and "0.2 s" in message and "2 attempt(s)" in message
    assert f"{api_server.url}/slow?delay=3" in message
    assert api_server.count("/slow") == 2 and sleep.waits == [0.1]


def test_an_unreachable_port_fails_after_the_retries_naming_host_and_port(sleep):
    port = closed_port()
    with pytest.raises(SourceError) as err:
        list(fetch_pages(ApiSpec(f"http://127.0.0.1:{port}/items", retries=2, backoff=0.25), sleep=sleep))
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message and "3 attempt(s)" in message and "Connection refused" in message
    assert sleep.waits == [0.25, 0.5]


# --- 4xx, bad bodies ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_fail_at_once(api_server, sleep, status):
    api_server.reset()
    with pytest.raises(SourceError) as err:
        list(fetch_pages(ApiSpec(f"{api_server.url}/status/{status}"), sleep=sleep))
    assert f"HTTP {status}" in str(err.value) and f"{api_server.url}/status/{status}" in str(err.value)
    assert api_server.count(f"/status/{status}") == 1 and sleep.waits == []


def test_403_without_a_token_hints_at_token_env(api_server):
    with pytest.raises(SourceError, match="set token_env"):
        list(fetch_pages(ApiSpec(f"{api_server.url}/status/403")))


def test_a_non_json_body_is_named(api_server):
    with pytest.raises(SourceError) as err:
        list(fetch_pages(ApiSpec(f"{api_server.url}/notjson")))
    message = str(err.value)
    assert f"{api_server.url}/notjson did not return JSON (text/html)" in message and "Maintenance" in message


def test_a_missing_records_path_is_named(api_server):
    with pytest.raises(SourceError) as err:
        list(fetch_pages(ApiSpec(f"{api_server.url}/wrapped", records_path="data.rows")))
    message = str(err.value)
    assert "records_path 'data.rows'" in message and "no 'rows'" in message and f"{api_server.url}/wrapped" in message


def test_an_object_body_without_records_path_suggests_the_key(api_server):
    with pytest.raises(SourceError, match=r"not a list of records; set records_path to the key of the list \(items\)"):
        list(fetch_pages(ApiSpec(f"{api_server.url}/paged")))


def test_records_that_are_not_objects(api_server):
    with pytest.raises(SourceError, match=r"record 0 of page 1 .*'data.items.0.tags'.* is a JSON str, not an object"):
        list(fetch_pages(ApiSpec(f"{api_server.url}/wrapped", records_path="data.items.0.tags")))
    with pytest.raises(SourceError, match=r"records_path 'data' of .* is a JSON dict, not a list of records; set records_path to the key of the list \(items\)"):
        list(fetch_pages(ApiSpec(f"{api_server.url}/wrapped", records_path="data")))


def test_invalid_arguments_fail_when_called():
    with pytest.raises(ConfigError, match="pagination 'pages'"):
        fetch_pages(ApiSpec("http://127.0.0.1:1/x", pagination="pages"))
    with pytest.raises(ConfigError, match="not an http"):
        fetch_pages(ApiSpec("127.0.0.1:8000/x"))
    with pytest.raises(ConfigError, match="page_size"):
        fetch_pages(ApiSpec("http://127.0.0.1:1/x", page_size=0))


# --- tokens and secrets -------------------------------------------------------------------


def test_bearer_token_from_an_environment_variable(api_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LF_TEST_API_TOKEN", TOKEN)
    api_server.reset()
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/secure", token_env="LF_TEST_API_TOKEN")))
    assert ids(pages) == ALL_IDS
    assert api_server.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in pages[0].url and TOKEN not in caplog.text
    assert "page 1, 23 record(s)" in caplog.text


@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_missing_or_empty_token_variable_is_named_before_any_request(api_server, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("LF_TEST_API_TOKEN", raising=False)
    else:
        monkeypatch.setenv("LF_TEST_API_TOKEN", value)
    api_server.reset()
    with pytest.raises(SourceError, match="environment variable LF_TEST_API_TOKEN .* not set or empty"):
        fetch_pages(ApiSpec(f"{api_server.url}/secure", token_env="LF_TEST_API_TOKEN"))
    assert api_server.count("/secure") == 0


def test_a_wrong_token_fails_at_once_with_a_hint_and_without_the_token(api_server, monkeypatch, sleep):
    wrong = "wrong-token-5d1c0b7e"
    monkeypatch.setenv("LF_TEST_API_TOKEN", wrong)
    api_server.reset()
    with pytest.raises(SourceError) as err:
        list(fetch_pages(ApiSpec(f"{api_server.url}/secure", token_env="LF_TEST_API_TOKEN"), sleep=sleep))
    message = str(err.value)
    assert "HTTP 401" in message and "environment variable LF_TEST_API_TOKEN" in message
    assert wrong not in message and api_server.count("/secure") == 1


def test_secrets_never_reach_messages_logs_or_page_urls(api_server, monkeypatch, sleep, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LF_TEST_API_TOKEN", TOKEN)
    key, header_key = "qs-secret-8e2f", "hdr-secret-71aa"
    secret_args = dict(token_env="LF_TEST_API_TOKEN", params={"api_key": key}, headers={"X-Api-Key": header_key})
    pages = list(fetch_pages(ApiSpec(f"{api_server.url}/paged", pagination="page", page_size=10, records_path="items",
                                     **secret_args), sleep=sleep))
    assert ids(pages) == ALL_IDS
    assert api_server.seen[-1].query["api_key"] == key and api_server.seen[-1].headers["X-Api-Key"] == header_key
    assert pages[0].url == f"{api_server.url}/paged?api_key=***&page=1&per_page=10"
    failures = []
    for path in ("/error500?access_token=url-secret-3c3c", "/status/403", "/notjson", f"/slow?delay=2&token={TOKEN}"):
        with pytest.raises(SourceError) as err:
            list(fetch_pages(ApiSpec(f"{api_server.url}{path}", retries=1, timeout=0.2, **secret_args), sleep=sleep))
        failures.append(str(err.value))
    port = closed_port()
    with pytest.raises(SourceError) as err:
        list(fetch_pages(ApiSpec(f"http://user:pw-secret-99@127.0.0.1:{port}/x?access_token={TOKEN}", retries=1,
                                 **secret_args), sleep=sleep))
    failures.append(str(err.value))
    assert f"http://user:***@127.0.0.1:{port}/x?access_token=***&api_key=***" in failures[-1]
    text = "\n".join(failures) + caplog.text + "".join(p.url for p in pages)
    assert "GET /error500?access_token=***&api_key=***" in caplog.text  # urllib3's own debug line, scrubbed
    for secret in (TOKEN, key, header_key, "pw-secret-99", "url-secret-3c3c"):
        assert secret not in text


def test_safe_url_keeps_ordinary_parameters():
    assert safe_url("https://h/x?a=1&password=p", {"page": 2, "client_secret": "s"}) == (
        "https://h/x?a=1&password=***&page=2&client_secret=***")
