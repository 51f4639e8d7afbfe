"""Worker routes: lease claims, event fan-out, metrics/gram/evals/logs reads, files, reaper."""

from __future__ import annotations

import io
import json
import tarfile
import time
from datetime import timedelta

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col

from api.models import Job, utcnow
from api.reaper import reap_once
from tests.api.conftest import WORKER, RecordingQueue, claim, post_events, submit

W = "/api/v1/worker/jobs"
J = "/api/v1/jobs"


def _metric(step: int, **values: float) -> dict:
    return {"type": "metric", "step": step, "data": {"values": values}, "ts": time.time()}


def test_claim_lease_conflicts(client: TestClient, alice: dict) -> None:
    job = submit(client, alice)
    first = claim(client, job["id"], "a:1")
    assert first["attempt"] == 1 and first["resume"] is False and first["spec"]["kind"] == "synthetic"
    # A duplicate delivery while the lease is live is refused.
    r = client.post(f"{W}/{job['id']}/claim", json={"worker": "b:2"}, headers=WORKER)
    assert r.status_code == 409 and "a:1" in r.json()["detail"]
    got = client.get(f"{J}/{job['id']}", headers=alice).json()
    assert got["status"] == "RUNNING" and got["worker"] == "a:1" and got["started_at"]
    # Only the lease holder may post; a wrong lease is a conflict, an unknown job 404.
    assert post_events(client, job["id"], "not-the-lease", [_metric(1, loss=1.0)]).status_code == 409
    assert client.post(f"{W}/00000000-0000-0000-0000-000000000000/claim", json={"worker": "x"}, headers=WORKER).status_code == 404
    # Worker routes need the worker token (or an admin key), not a user key.
    assert client.post(f"{W}/{job['id']}/heartbeat", json={"lease": first["lease"]}, headers=alice).status_code == 401


def test_stale_lease_can_be_taken_over(client: TestClient, alice: dict, app) -> None:  # type: ignore[no-untyped-def]
    job = submit(client, alice)
    old = claim(client, job["id"], "a:1")["lease"]
    _age_heartbeat(app, job["id"], seconds=120)
    new = claim(client, job["id"], "b:2")
    assert new["attempt"] == 2 and new["resume"] is True and new["lease"] != old
    assert client.post(f"{W}/{job['id']}/heartbeat", json={"lease": old}, headers=WORKER).status_code == 409


def test_events_fan_out_and_metrics_since(client: TestClient, alice: dict) -> None:
    job = submit(client, alice)
    lease = claim(client, job["id"])["lease"]
    batch = [
        _metric(1, **{"train/loss": 2.0, "train/lr": 0.1}),
        _metric(2, **{"train/loss": 1.5, "train/lr": 0.1}),
        {"type": "progress", "step": 2, "data": {"step": 2, "total_steps": 10, "epoch": 0.2}, "ts": time.time()},
        {"type": "log", "step": 2, "data": {"level": "INFO", "message": "hello"}, "ts": time.time()},
        {"type": "eval", "step": 2, "data": {"split": "dev", "task": "cola", "metrics": {"mcc": 0.1}}, "ts": time.time()},
    ]
    r = post_events(client, job["id"], lease, batch)
    assert r.status_code == 200 and r.json() == {"cancel_requested": False}
    # A resumed attempt re-emits step 2 with a new value and adds step 3: overwritten, not duplicated.
    post_events(client, job["id"], lease, [_metric(2, **{"train/loss": 1.4}), _metric(3, **{"train/loss": 1.2})])
    m = client.get(f"{J}/{job['id']}/metrics", headers=alice).json()
    assert m["series"]["train/loss"] == {"steps": [1, 2, 3], "values": [2.0, 1.4, 1.2]}
    assert m["series"]["train/lr"]["steps"] == [1, 2] and m["last_step"] == 3
    since = client.get(f"{J}/{job['id']}/metrics", params={"since": 1, "series": "train/loss"}, headers=alice).json()
    assert since == {"series": {"train/loss": {"steps": [2, 3], "values": [1.4, 1.2]}}, "last_step": 3}
    assert client.get(f"{J}/{job['id']}/metrics", params={"since": 3}, headers=alice).json() == {
        "series": {},
        "last_step": 3,
    }
    got = client.get(f"{J}/{job['id']}", headers=alice).json()
    assert got["progress"] == {"step": 2, "total_steps": 10, "epoch": 0.2} and got["heartbeat_at"]
    assert client.get(f"{J}/{job['id']}/logs", headers=alice).json()["lines"][0]["message"] == "hello"
    assert client.get(f"{J}/{job['id']}/evals", headers=alice).json()["items"] == [
        {"step": 2, "split": "dev", "task": "cola", "metrics": {"mcc": 0.1}}
    ]


def test_resent_batch_is_stored_once(client: TestClient, alice: dict, app) -> None:  # type: ignore[no-untyped-def]
    from api import reads

    job = submit(client, alice)
    lease = claim(client, job["id"])["lease"]
    batch = [_metric(1, loss=1.0), {"type": "log", "step": 1, "data": {"message": "x"}, "ts": time.time()}]
    post_events(client, job["id"], lease, batch)
    post_events(client, job["id"], lease, batch)
    with Session(app.state.engine) as s:
        types = [e.type for e in reads.events_after(s, job["id"], 0)]
    assert types == ["status", "status", "metric", "log"]  # QUEUED, RUNNING, then the batch once


def test_non_finite_metrics_become_null(client: TestClient, alice: dict) -> None:
    job = submit(client, alice)
    lease = claim(client, job["id"])["lease"]
    # json.dumps writes the NaN literal that Python clients (and json.loads on our side) accept.
    body = json.dumps({"lease": lease, "events": [{"type": "metric", "step": 1, "data": {"values": {"loss": float("nan")}}}]})
    assert "NaN" in body
    r = client.post(f"{W}/{job['id']}/events", content=body, headers={**WORKER, "Content-Type": "application/json"})
    assert r.status_code == 200
    assert client.get(f"{J}/{job['id']}/metrics", headers=alice).json()["series"]["loss"]["values"] == [None]


def test_gram_teacher_student_difference(client: TestClient, alice: dict) -> None:
    job = submit(client, alice)
    lease = claim(client, job["id"])["lease"]
    rng = np.random.default_rng(0)
    grams = {}
    for step in (10, 20):
        t, s = rng.normal(size=(4, 4)).round(3), rng.normal(size=(4, 4)).round(3)
        grams[step] = (t, s)
        ev = {"type": "gram", "step": step, "data": {"layer": "s1-t2", "teacher": t.tolist(), "student": s.tolist()}}
        post_events(client, job["id"], lease, [ev])
    post_events(client, job["id"], lease, [{"type": "gram", "step": 20, "data": {"layer": "s2-t4", "teacher": [[1.0]], "student": [[0.5]]}}])
    latest = client.get(f"{J}/{job['id']}/gram", params={"layer": "s1-t2"}, headers=alice).json()
    assert latest["layers"] == ["s1-t2", "s2-t4"] and latest["steps"] == [10, 20] and latest["step"] == 20
    np.testing.assert_allclose(latest["difference"], grams[20][0] - grams[20][1], atol=1e-12)
    early = client.get(f"{J}/{job['id']}/gram", params={"layer": "s1-t2", "step": 10}, headers=alice).json()
    np.testing.assert_allclose(early["teacher"], grams[10][0])
    np.testing.assert_allclose(early["difference"], grams[10][0] - grams[10][1], atol=1e-12)
    assert client.get(f"{J}/{job['id']}/gram", params={"step": 15}, headers=alice).status_code == 404
    sim = {"metric": "cka", "teacher_layers": [1, 2], "student_layers": [1], "matrix": [[0.5], [0.7]]}
    assert client.get(f"{J}/{job['id']}/layer-similarity", headers=alice).status_code == 404
    post_events(client, job["id"], lease, [{"type": "layer_similarity", "step": 20, "data": sim}])
    assert client.get(f"{J}/{job['id']}/layer-similarity", headers=alice).json() == sim


def test_checkpoint_and_artifact_files(client: TestClient, alice: dict) -> None:
    job = submit(client, alice)
    lease = claim(client, job["id"])["lease"]
    assert client.get(f"{W}/{job['id']}/checkpoint", params={"lease": lease}, headers=WORKER).status_code == 404
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"weights" * 1000
        info = tarfile.TarInfo("checkpoints/last/state.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    r = client.put(f"{W}/{job['id']}/checkpoint", params={"lease": lease}, content=buf.getvalue(), headers=WORKER)
    assert r.status_code == 204
    down = client.get(f"{W}/{job['id']}/checkpoint", params={"lease": lease}, headers=WORKER)
    assert down.status_code == 200 and down.content == buf.getvalue()
    assert client.put(f"{W}/{job['id']}/checkpoint", params={"lease": "stale"}, content=b"x", headers=WORKER).status_code == 409
    payload = b"PK" + bytes(range(256)) * 10
    client.put(f"{W}/{job['id']}/artifacts/student.zip", params={"lease": lease}, content=payload, headers=WORKER)
    client.put(f"{W}/{job['id']}/artifacts/student.zip", params={"lease": lease}, content=payload, headers=WORKER)
    items = client.get(f"{J}/{job['id']}/artifacts", headers=alice).json()["items"]
    assert items == [{"name": "student.zip", "size": len(payload), "url": f"/api/v1/jobs/{job['id']}/artifacts/student.zip"}]
    assert client.get(items[0]["url"], headers=alice).content == payload
    key = alice["Authorization"].split()[1]
    assert client.get(items[0]["url"], params={"api_key": key}).content == payload  # link-friendly auth
    for bad in ("..", ".hidden", "a%2Fb"):
        r = client.put(f"{W}/{job['id']}/artifacts/{bad}", params={"lease": lease}, content=b"x", headers=WORKER)
        assert r.status_code in (404, 422), bad


def _age_heartbeat(app, job_id: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    with Session(app.state.engine) as s:
        s.execute(update(Job).where(col(Job.id) == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds)))
        s.commit()


def test_reaper_requeues_then_fails(client: TestClient, alice: dict, app, settings, queue: RecordingQueue) -> None:  # type: ignore[no-untyped-def]
    job = submit(client, alice)
    fresh = submit(client, alice)
    claim(client, fresh["id"], "alive:1")
    for attempt in (1, 2, 3):
        got = claim(client, job["id"], f"w:{attempt}")
        assert got["attempt"] == attempt
        _age_heartbeat(app, job["id"], settings.stale_after_s + 5)
        reap_once(app.state.engine, settings, queue)
        state = client.get(f"{J}/{job['id']}", headers=alice).json()
        if attempt < settings.max_attempts:
            assert state["status"] == "QUEUED" and state["attempt"] == attempt + 1 and state["worker"] is None
            assert queue.enqueued.count(job["id"]) == attempt + 1
    assert state["status"] == "FAILED" and "heartbeat" in state["error"] and "3 attempts" in state["error"]
    # A job with a live heartbeat is left alone.
    assert client.get(f"{J}/{fresh['id']}", headers=alice).json()["status"] == "RUNNING"


def test_reaper_finishes_a_cancelled_orphan(client: TestClient, alice: dict, app, settings, queue) -> None:  # type: ignore[no-untyped-def]
    job = submit(client, alice)
    claim(client, job["id"])
    client.post(f"{J}/{job['id']}/cancel", headers=alice)
    _age_heartbeat(app, job["id"], settings.stale_after_s + 5)
    reap_once(app.state.engine, settings, queue)
    assert client.get(f"{J}/{job['id']}", headers=alice).json()["status"] == "CANCELLED"


def test_finish_records_summary_and_drops_lease(client: TestClient, alice: dict) -> None:
    job = submit(client, alice)
    lease = claim(client, job["id"])["lease"]
    r = client.post(
        f"{W}/{job['id']}/finish", json={"lease": lease, "status": "SUCCEEDED", "summary": {"dev/mcc": 0.4}}, headers=WORKER
    )
    assert r.json() == {"status": "SUCCEEDED"}
    got = client.get(f"{J}/{job['id']}", headers=alice).json()
    assert got["summary"] == {"dev/mcc": 0.4} and got["finished_at"]
    assert post_events(client, job["id"], lease, [_metric(9, loss=0.0)]).status_code == 409
    assert client.post(f"{W}/{job['id']}/claim", json={"worker": "late"}, headers=WORKER).status_code == 409


def test_malformed_payloads_never_break_reads(client: TestClient, alice: dict) -> None:
    job = submit(client, alice)
    lease = claim(client, job["id"])["lease"]
    junk = [
        {"type": "progress", "step": 3, "data": {"step": "three", "total_steps": [1]}},
        {"type": "gram", "step": 3, "data": {"layer": "s1-t1", "teacher": "nope", "student": [[1, 2]]}},
        {"type": "gram", "step": 4, "data": {"layer": "s1-t1", "teacher": [[1.0, float("inf")]], "student": [[0.5, 1.0]]}},
        {"type": "eval", "step": 3, "data": {"metrics": "not-a-dict"}},
        {"type": "metric", "step": 3, "data": {"values": {"a": "str", "b": 2}}},
    ]
    body = json.dumps({"lease": lease, "events": junk})  # allow_nan: the Infinity literal goes over the wire
    r = client.post(f"{W}/{job['id']}/events", content=body, headers={**WORKER, "Content-Type": "application/json"})
    assert r.status_code == 200
    assert client.get(f"{J}/{job['id']}", headers=alice).json()["progress"]["step"] == 3
    gram = client.get(f"{J}/{job['id']}/gram", headers=alice).json()
    assert gram["steps"] == [4] and gram["teacher"] == [[1.0, None]] and gram["difference"] == [[0.5, None]]
    assert client.get(f"{J}/{job['id']}/evals", headers=alice).json()["items"][0]["metrics"] == {}
    assert client.get(f"{J}/{job['id']}/metrics", headers=alice).json()["series"]["a"]["values"] == [None]


def test_reaper_grace_period_skips_stale_jobs(client: TestClient, alice: dict, app, settings, queue) -> None:  # type: ignore[no-untyped-def]
    job = submit(client, alice)
    claim(client, job["id"])
    _age_heartbeat(app, job["id"], settings.stale_after_s + 5)
    reap_once(app.state.engine, settings, queue, reap_stale=False)  # just restarted: workers may be retrying
    assert client.get(f"{J}/{job['id']}", headers=alice).json()["status"] == "RUNNING"
    reap_once(app.state.engine, settings, queue)
    assert client.get(f"{J}/{job['id']}", headers=alice).json()["status"] == "QUEUED"
