"""A fresh PostgreSQL database per test (or bench run) on the server at ``GEOKD_TEST_POSTGRES_URL``.

Default: the local server with trust auth (`.ci/run` starts it). Without a server, or without the
driver, the tests that use these fixtures skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get("GEOKD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def connect_server(url: str = SERVER_URL) -> Any:
    """An autocommit psycopg connection to the server's maintenance database (raises if none answers)."""
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=5)


@contextmanager
def fresh_database(server: Any, url: str = SERVER_URL) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database, dropped afterwards (its connections closed by force)."""
    name = f"geokd_test_{uuid.uuid4().hex[:12]}"
    server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    psycopg = pytest.importorskip("psycopg", reason="the Postgres driver is in geokd[api]: pip install -e '.[api]'")
    try:
        conn = connect_server()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {SERVER_URL} ({str(exc).strip()}); .ci/run starts the local one")
    yield conn
    conn.close()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    with fresh_database(postgres_server) as url:
        yield url
