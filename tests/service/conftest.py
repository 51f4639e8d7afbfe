"""Fixtures for the service tests: a private Redis DB, a live API and real worker subprocesses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.harness import FAST_RELIABILITY_ENV, JobsClient, WorkerFactory
from tests.utils.live_api import LiveApi, live_api
from tests.utils.redis_server import SHARED, delete_celery_keys, pick_empty_db, shared_redis_available


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:6379/<n>``: an empty DB 1–15 of the shared server, for this session."""
    if not shared_redis_available():
        pytest.skip("no Redis at 127.0.0.1:6379")
    url = f"{SHARED}/{pick_empty_db()}"
    yield url
    delete_celery_keys(url)


@dataclass
class Service:
    api: LiveApi
    client: JobsClient
    workers: WorkerFactory
    broker_url: str | None


@contextmanager
def running_service(home: Path, broker_url: str | None, extra_env: dict[str, str] | None = None,
                    database_url: str | None = None) -> Iterator[Service]:
    """A live API on ``home`` (fast reaper) plus a factory for workers bound to it.

    ``broker_url=None`` is the embedded SQLite broker in ``home`` (workers get its URL explicitly).
    ``database_url`` puts the store there (e.g. Postgres) instead of SQLite in ``home``.
    """
    env = {**FAST_RELIABILITY_ENV, **(extra_env or {})}
    if broker_url:
        env["GEOKD_BROKER_URL"] = broker_url
    if database_url:
        env["GEOKD_DATABASE_URL"] = database_url
    with live_api(home, env=env) as api:
        # The store is the one asked for: SQLite writes its file in home, another database does not.
        assert (home / "geokd.db").exists() == (database_url is None)
        worker_broker = broker_url or f"sqla+sqlite:///{home / 'broker.db'}"
        factory = WorkerFactory(api.base_url, api.worker_token, home / "workers", worker_broker, [])
        client = JobsClient(api.base_url, api.admin_key)
        try:
            yield Service(api, client, factory, broker_url)
        finally:
            factory.stop_all()
            client.http.close()
