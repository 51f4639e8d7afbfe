"""A fresh PostgreSQL database per test on the server at ``GEOKD_TEST_POSTGRES_URL``.

Default: the local server with trust auth (`.ci/run` starts it). Without a server, or without the
driver, the tests that use these fixtures skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get("GEOKD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """An autocommit connection to the server's maintenance database."""
    psycopg = pytest.importorskip("psycopg", reason="the Postgres driver is in geokd[api]: pip install -e '.[api]'")
    try:
        conn = psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {SERVER_URL} ({str(exc).strip()}); .ci/run starts the local one")
    yield conn
    conn.close()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database, dropped afterwards (its connections closed by force)."""
    name = f"geokd_test_{uuid.uuid4().hex[:12]}"
    postgres_server.execute(f'CREATE DATABASE "{name}"')
    yield make_url(SERVER_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False)
    postgres_server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
