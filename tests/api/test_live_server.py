"""Against a real uvicorn process: SSE resume with Last-Event-ID, and concurrent submissions."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from api.client import GeokdClient, parse_sse
from tests.utils.live_api import LiveApi, live_api

SYN = {"kind": "synthetic", "name": "live", "synthetic": {"n": 16, "d_teacher": 8, "d_student": 4, "steps": 5}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(tmp_path_factory.mktemp("live") / "home") as api:
        yield api


def _worker(api: LiveApi) -> httpx.Client:
    return httpx.Client(base_url=f"{api.base_url}/api/v1/worker/jobs", headers={"Authorization": f"Bearer {api.worker_token}"})


def _metrics(start: int, n: int) -> list[dict]:
    return [{"type": "metric", "step": s, "data": {"values": {"train/loss": 1.0 / s}}, "ts": time.time()} for s in range(start, start + n)]


def test_sse_resume_with_last_event_id_loses_nothing(server: LiveApi) -> None:
    http = httpx.Client(base_url=f"{server.base_url}/api/v1", headers=server.headers, timeout=30)
    job = http.post("/jobs", json=SYN).json()
    w = _worker(server)
    lease = w.post(f"/{job['id']}/claim", json={"worker": "t:1"}).json()["lease"]
    assert w.post(f"/{job['id']}/events", json={"lease": lease, "events": _metrics(1, 10)}).status_code == 200

    # First connection (query-param auth, as a browser EventSource would): read 5 events, hang up.
    url = f"{server.base_url}/api/v1/jobs/{job['id']}/events"
    seen = []
    with httpx.stream("GET", url, params={"api_key": server.admin_key}, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for ev in itertools.islice(parse_sse(r.iter_lines()), 5):
            seen.append(ev)
    assert [e.type for e in seen[:2]] == ["status", "status"]  # QUEUED, RUNNING
    # While disconnected, more events arrive and the job finishes.
    w.post(f"/{job['id']}/events", json={"lease": lease, "events": _metrics(11, 5)})
    w.post(f"/{job['id']}/finish", json={"lease": lease, "status": "SUCCEEDED"})
    with httpx.stream("GET", url, headers={**server.headers, "Last-Event-ID": str(seen[-1].id)}, timeout=30) as r:
        rest = list(parse_sse(r.iter_lines()))  # ends by itself: the job finished
    events = seen + rest
    ids = [e.id for e in events]
    assert ids == sorted(set(ids)), "duplicated or out-of-order events"
    steps = [e.data["step"] for e in events if e.type == "metric"]
    assert steps == list(range(1, 16))
    assert events[-1].type == "status" and events[-1].data["data"]["status"] == "SUCCEEDED"
    # The same stream through the CLI's client, from the start, also has everything exactly once.
    replay = list(GeokdClient(server.base_url, server.admin_key).events(job["id"]))
    assert [e.id for e in replay] == ids


def test_sse_needs_auth(server: LiveApi) -> None:
    job = httpx.post(f"{server.base_url}/api/v1/jobs", json=SYN, headers=server.headers).json()
    r = httpx.get(f"{server.base_url}/api/v1/jobs/{job['id']}/events", params={"api_key": "gk_wrong"})
    assert r.status_code == 401


def test_200_concurrent_submissions(server: LiveApi, tmp_path: Path) -> None:
    http = httpx.Client(base_url=f"{server.base_url}/api/v1", headers=server.headers, timeout=60,
                        limits=httpx.Limits(max_connections=20))
    before = http.get("/jobs", params={"limit": 1}).json()["total"]
    tag = str(time.time())

    def submit(i: int) -> tuple[int, str]:
        spec = {**SYN, "name": f"c-{tag}-{i}"}
        r = http.post("/jobs", json=spec, headers={"Idempotency-Key": f"{tag}-{i}"})
        assert r.status_code in (200, 201), r.text
        return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(20) as pool:
        first = list(pool.map(submit, range(200)))
        # Every key again (client retries): same jobs back, nothing new created.
        again = list(pool.map(submit, range(200)))
    assert len({jid for _, jid in first}) == 200 and all(code == 201 for code, _ in first)
    assert [jid for _, jid in again] == [jid for _, jid in first] and all(code == 200 for code, _ in again)
    page = http.get("/jobs", params={"name": f"c-{tag}-", "limit": 500}).json()
    assert page["total"] == 200 and http.get("/jobs", params={"limit": 1}).json()["total"] == before + 200
    assert json.dumps(sorted(j["name"] for j in page["items"])) == json.dumps(sorted(f"c-{tag}-{i}" for i in range(200)))


def test_background_reaper_requeues_a_silent_worker(tmp_path: Path) -> None:
    env = {"GEOKD_STALE_AFTER_S": "1", "GEOKD_REAPER_INTERVAL_S": "0.2", "GEOKD_MAX_ATTEMPTS": "2"}
    with live_api(tmp_path / "home", env=env) as api:
        http = httpx.Client(base_url=f"{api.base_url}/api/v1", headers=api.headers, timeout=30)
        job = http.post("/jobs", json=SYN).json()
        w = _worker(api)
        assert w.post(f"/{job['id']}/claim", json={"worker": "doomed:1"}).status_code == 200
        # The worker "dies": no heartbeat. The API's own reaper must notice, twice.
        seen: list[tuple[str, int]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = http.get(f"/jobs/{job['id']}").json()
            if (got["status"], got["attempt"]) not in seen:
                seen.append((got["status"], got["attempt"]))
                if got["status"] == "QUEUED":
                    assert w.post(f"/{job['id']}/claim", json={"worker": "doomed:2"}).status_code == 200
            if got["status"] == "FAILED":
                break
            time.sleep(0.1)
        assert seen == [("RUNNING", 1), ("QUEUED", 2), ("RUNNING", 2), ("FAILED", 2)], seen
        assert "heartbeat" in got["error"]


def test_racing_idempotent_submissions_create_one_job_per_key(server: LiveApi) -> None:
    http = httpx.Client(base_url=f"{server.base_url}/api/v1", headers=server.headers, timeout=60,
                        limits=httpx.Limits(max_connections=20))
    tag = f"race-{time.time()}"

    def submit(i: int) -> tuple[str, str]:
        key = f"{tag}-{i % 10}"  # 10 keys, each sent 10 times at once
        r = http.post("/jobs", json={**SYN, "name": tag}, headers={"Idempotency-Key": key})
        assert r.status_code in (200, 201), r.text
        return key, r.json()["id"]

    with ThreadPoolExecutor(20) as pool:
        pairs = list(pool.map(submit, range(100)))
    by_key: dict[str, set[str]] = {}
    for key, jid in pairs:
        by_key.setdefault(key, set()).add(jid)
    assert len(by_key) == 10 and all(len(ids) == 1 for ids in by_key.values())
    assert http.get("/jobs", params={"name": tag}).json()["total"] == 10
