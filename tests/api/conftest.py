"""Fixtures: a real SQLite store in a temp dir, the app with a recording queue, and API keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.main import create_app
from api.queue import PreflightTimeout
from api.security import create_key
from geokd_core.settings import Settings

WORKER_TOKEN = "unit-worker-token"
SYNTHETIC = {"kind": "synthetic", "name": "syn", "synthetic": {"n": 16, "d_teacher": 8, "d_student": 4, "steps": 5}}


class RecordingQueue:
    """Stands in for Celery: records enqueued ids; preflight answers are scripted per test."""

    def __init__(self) -> None:
        self.enqueued: list[str] = []
        self.fail = False
        self.preflight_answer: list[dict[str, Any]] | None = []
        self.preflight_specs: list[dict[str, Any]] = []

    def enqueue(self, job_id: str, spec: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.enqueued.append(job_id)

    def preflight(self, spec: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        self.preflight_specs.append(spec)
        if self.preflight_answer is None:
            raise PreflightTimeout
        return self.preflight_answer

    def ping(self, timeout: float) -> None:
        if self.fail:
            raise ConnectionError("broker down")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        home=tmp_path / "home",
        worker_token=WORKER_TOKEN,
        auth_enabled=True,
        data_roots=[tmp_path / "data"],
        model_roots=[tmp_path / "models"],
        max_body_bytes=200_000,
        stale_after_s=30.0,
        max_attempts=3,
    )


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def app(settings: Settings, queue: RecordingQueue) -> FastAPI:
    return create_app(settings, queue=queue, reaper=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _key(app: FastAPI, name: str, admin: bool) -> dict[str, str]:
    with Session(app.state.engine) as s:
        return {"Authorization": f"Bearer {create_key(s, name, admin=admin)}"}


@pytest.fixture
def admin(app: FastAPI) -> dict[str, str]:
    return _key(app, "root", True)


@pytest.fixture
def alice(app: FastAPI) -> dict[str, str]:
    return _key(app, "alice", False)


@pytest.fixture
def bob(app: FastAPI) -> dict[str, str]:
    return _key(app, "bob", False)


WORKER = {"Authorization": f"Bearer {WORKER_TOKEN}"}


def submit(client: TestClient, headers: dict[str, str], spec: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    r = client.post("/api/v1/jobs", json=spec or SYNTHETIC, headers=headers, **kw)
    assert r.status_code in (200, 201), r.text
    return r.json()


def claim(client: TestClient, job_id: str, worker: str = "host:1") -> dict[str, Any]:
    r = client.post(f"/api/v1/worker/jobs/{job_id}/claim", json={"worker": worker}, headers=WORKER)
    assert r.status_code == 200, r.text
    return r.json()


def post_events(client: TestClient, job_id: str, lease: str, events: list[dict[str, Any]]) -> Any:
    return client.post(f"/api/v1/worker/jobs/{job_id}/events", json={"lease": lease, "events": events}, headers=WORKER)
