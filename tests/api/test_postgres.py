"""The store on PostgreSQL, the database of a scaled-out deployment (docs/DESIGN.md).

The job-route and worker-protocol tests (``test_jobs.py``, ``test_worker_protocol.py``) are
collected here a second time with ``settings`` pointing at a new Postgres database per test, so
claims, leases, event fan-out, upserts of resent batches, the reaper and paging run on Postgres
too; plus the migrations against the models. The server: ``tests/utils/postgres.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from api.db import make_engine
from geokd_core.settings import Settings
from tests.api import test_jobs, test_worker_protocol
from tests.api.test_store import migrate_twice

# The same test functions, run with this module's `settings` fixture.
for _module in (test_jobs, test_worker_protocol):
    globals().update({name: fn for name, fn in vars(_module).items() if name.startswith("test_")})


@pytest.fixture
def settings(settings: Settings, postgres_url: str) -> Settings:
    """conftest's settings with the store on Postgres."""
    settings.database_url = postgres_url
    return settings


def test_migrations_create_exactly_the_models_on_postgres(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        diff, version, dialect = migrate_twice(engine)
    finally:
        engine.dispose()
    assert dialect == "postgresql" and diff == [] and version == "0001"


def test_the_collected_tests_run_on_postgres(client: Any, alice: dict, app: Any) -> None:
    job = test_jobs.submit(client, alice)
    assert app.state.engine.dialect.name == "postgresql"
    with app.state.engine.connect() as conn:  # the row is in the Postgres database itself
        assert conn.execute(text("SELECT status FROM job WHERE id = :id"), {"id": job["id"]}).scalar() == "QUEUED"
