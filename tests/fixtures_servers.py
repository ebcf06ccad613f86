"""Session-scoped fixtures for the servers tests talk to (a pytest plugin, registered in
conftest.py with ``pytest_plugins``):

``api_server``
    tests/api_server.py's JSON API on 127.0.0.1 (an ``ApiServer``: ``.url``, ``.port``,
    ``.count(path)``, ``.seen``, ``.reset()``; the data is ``api_server.RECORDS``, the bearer
    token ``api_server.TOKEN``).
``postgres``
    a real PostgreSQL server from tests/postgres_server.py (a ``PostgresServer``: ``.host``,
    ``.port``, ``.database``, ``.user``, ``.password``, ``.jdbc_url``, ``.jdbc_properties()``,
    ``.sql(text)``, ``.query(text)``). Started on first use, stopped at the end of the run. Tests
    sharing it use their own table names.
"""

from __future__ import annotations

import pytest

from api_server import ApiServer
from postgres_server import PostgresServer, PostgresSetupError


@pytest.fixture(scope="session")
def api_server():
    """The JSON API of tests/api_server.py on 127.0.0.1 (an ApiServer)."""
    with ApiServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on 127.0.0.1 (a PostgresServer: jdbc_url, user, password, sql())."""
    try:
        server = PostgresServer().start()
    except PostgresSetupError as exc:
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
