"""Job routes: submit, read, list, scoping by owner, idempotency, cancel, retry, delete."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import SYNTHETIC, WORKER, RecordingQueue, claim, submit

JOBS = "/api/v1/jobs"


def test_submit_get_and_enqueue(client: TestClient, alice: dict, queue: RecordingQueue) -> None:
    r = client.post(JOBS, json=SYNTHETIC, headers=alice)
    assert r.status_code == 201
    job = r.json()
    assert job["status"] == "QUEUED" and job["owner"] == "alice" and job["kind"] == "synthetic"
    assert job["spec"]["synthetic"]["steps"] == 5 and job["attempt"] == 1
    assert job["created_at"].endswith(("Z", "+00:00"))
    assert queue.enqueued == [job["id"]]
    got = client.get(f"{JOBS}/{job['id']}", headers=alice).json()
    assert got["id"] == job["id"] and got["progress"] == {"step": 0, "total_steps": None, "epoch": None}


def test_requires_a_valid_key(client: TestClient) -> None:
    assert client.get(JOBS).status_code == 401
    assert client.get(JOBS, headers={"Authorization": "Bearer gk_nope"}).status_code == 401
    assert client.post(JOBS, json=SYNTHETIC).status_code == 401


def test_owner_scoping(client: TestClient, alice: dict, bob: dict, admin: dict) -> None:
    a = submit(client, alice)
    b = submit(client, bob)
    # Bob can neither see nor cancel Alice's job, and his list holds only his own.
    assert client.get(f"{JOBS}/{a['id']}", headers=bob).status_code == 404
    assert client.post(f"{JOBS}/{a['id']}/cancel", headers=bob).status_code == 404
    assert client.get(f"{JOBS}/{a['id']}/metrics", headers=bob).status_code == 404
    assert [j["id"] for j in client.get(JOBS, headers=bob).json()["items"]] == [b["id"]]
    assert client.get(JOBS, params={"owner": "alice"}, headers=bob).json()["total"] == 0
    # The admin sees both and may cancel either.
    page = client.get(JOBS, headers=admin).json()
    assert page["total"] == 2 and {j["id"] for j in page["items"]} == {a["id"], b["id"]}
    assert client.get(JOBS, params={"owner": "alice"}, headers=admin).json()["items"][0]["id"] == a["id"]
    assert client.post(f"{JOBS}/{a['id']}/cancel", headers=admin).json()["status"] == "CANCELLED"


def test_list_filters_and_pagination(client: TestClient, alice: dict) -> None:
    ids = [submit(client, alice, {**SYNTHETIC, "name": f"run-{i}"})["id"] for i in range(5)]
    client.post(f"{JOBS}/{ids[0]}/cancel", headers=alice)
    page = client.get(JOBS, params={"limit": 2, "offset": 1}, headers=alice).json()
    assert page["total"] == 5 and [j["id"] for j in page["items"]] == ids[::-1][1:3]  # newest first
    assert [j["id"] for j in client.get(JOBS, params={"status": "CANCELLED"}, headers=alice).json()["items"]] == [ids[0]]
    assert client.get(JOBS, params={"name": "run-3"}, headers=alice).json()["total"] == 1
    assert client.get(JOBS, params={"name": "%"}, headers=alice).json()["total"] == 0  # LIKE wildcards escaped
    assert client.get(JOBS, params={"status": "BOGUS"}, headers=alice).status_code == 422


def test_idempotency_key(client: TestClient, alice: dict, bob: dict, queue: RecordingQueue) -> None:
    first = client.post(JOBS, json=SYNTHETIC, headers={**alice, "Idempotency-Key": "k1"})
    again = client.post(JOBS, json=SYNTHETIC, headers={**alice, "Idempotency-Key": "k1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    # Keys are per owner: Bob's "k1" is a different job; a new key is a new job.
    other = client.post(JOBS, json=SYNTHETIC, headers={**bob, "Idempotency-Key": "k1"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert client.post(JOBS, json=SYNTHETIC, headers={**alice, "Idempotency-Key": "k2"}).status_code == 201
    changed = client.post(JOBS, json={**SYNTHETIC, "name": "other"}, headers={**alice, "Idempotency-Key": "k1"})
    assert changed.status_code == 409 and first.json()["id"] in changed.json()["detail"]
    assert len(queue.enqueued) == 3  # the idempotent retry was not enqueued twice


def test_cancel_queued_job_never_starts(client: TestClient, alice: dict) -> None:
    job = submit(client, alice)
    r = client.post(f"{JOBS}/{job['id']}/cancel", headers=alice)
    assert r.status_code == 200 and r.json()["status"] == "CANCELLED" and r.json()["finished_at"]
    # The message may still be delivered: the worker's claim is refused.
    assert client.post(f"/api/v1/worker/jobs/{job['id']}/claim", json={"worker": "w:1"}, headers=WORKER).status_code == 409
    assert client.post(f"{JOBS}/{job['id']}/cancel", headers=alice).status_code == 409


def test_cancel_running_sets_flag(client: TestClient, alice: dict) -> None:
    job = submit(client, alice)
    lease = claim(client, job["id"])["lease"]
    r = client.post(f"{JOBS}/{job['id']}/cancel", headers=alice).json()
    assert r["status"] == "RUNNING" and r["cancel_requested"] is True
    hb = client.post(f"/api/v1/worker/jobs/{job['id']}/heartbeat", json={"lease": lease}, headers=WORKER)
    assert hb.json() == {"cancel_requested": True}
    fin = client.post(
        f"/api/v1/worker/jobs/{job['id']}/finish", json={"lease": lease, "status": "CANCELLED"}, headers=WORKER
    )
    assert fin.json() == {"status": "CANCELLED"}


def test_retry_failed_job(client: TestClient, alice: dict, queue: RecordingQueue) -> None:
    job = submit(client, alice)
    assert client.post(f"{JOBS}/{job['id']}/retry", headers=alice).status_code == 409  # still queued
    lease = claim(client, job["id"])["lease"]
    client.post(
        f"/api/v1/worker/jobs/{job['id']}/finish",
        json={"lease": lease, "status": "FAILED", "error": "DataError: column 'label' missing"},
        headers=WORKER,
    )
    failed = client.get(f"{JOBS}/{job['id']}", headers=alice).json()
    assert failed["status"] == "FAILED" and "label" in failed["error"]
    r = client.post(f"{JOBS}/{job['id']}/retry", headers=alice).json()
    assert r["status"] == "QUEUED" and r["attempt"] == 2 and r["error"] is None
    assert queue.enqueued == [job["id"], job["id"]]
    again = claim(client, job["id"])
    assert again["attempt"] == 2 and again["resume"] is True


def test_delete_only_finished_with_artifacts(client: TestClient, alice: dict, settings) -> None:  # type: ignore[no-untyped-def]
    job = submit(client, alice)
    lease = claim(client, job["id"])["lease"]
    assert client.delete(f"{JOBS}/{job['id']}", headers=alice).status_code == 409
    up = client.put(
        f"/api/v1/worker/jobs/{job['id']}/artifacts/model_card.md", params={"lease": lease}, content=b"# card", headers=WORKER
    )
    assert up.status_code == 204
    folder = settings.resolved_artifact_dir() / job["id"]
    assert (folder / "model_card.md").read_bytes() == b"# card"
    client.post(f"/api/v1/worker/jobs/{job['id']}/finish", json={"lease": lease, "status": "SUCCEEDED"}, headers=WORKER)
    assert client.delete(f"{JOBS}/{job['id']}", headers=alice).status_code == 204
    assert not folder.exists()
    assert client.get(f"{JOBS}/{job['id']}", headers=alice).status_code == 404


def test_auth_off_mode_is_local_admin(settings, caplog) -> None:  # type: ignore[no-untyped-def]
    settings.auth_enabled = False
    with caplog.at_level("WARNING", logger="geokd.api"):
        app = create_app(settings, queue=RecordingQueue(), reaper=False)
    assert "AUTHENTICATION IS OFF" in caplog.text
    with TestClient(app) as c:
        job = c.post(JOBS, json=SYNTHETIC).json()
        assert job["owner"] == "local"
        assert c.post(f"/api/v1/worker/jobs/{job['id']}/claim", json={"worker": "w:1"}).status_code == 200


def test_broker_down_job_kept_and_sent_later(client: TestClient, alice: dict, queue: RecordingQueue, app, settings) -> None:  # type: ignore[no-untyped-def]
    from api.reaper import reap_once

    queue.fail = True
    job = submit(client, alice)
    assert job["status"] == "QUEUED" and queue.enqueued == []
    assert client.get("/readyz").status_code == 503
    queue.fail = False
    settings.reaper_interval_s = 0.0  # no minimum age for the re-send in this test
    assert reap_once(app.state.engine, settings, queue) == [job["id"]]
    assert queue.enqueued == [job["id"]]
    assert reap_once(app.state.engine, settings, queue) == []  # sent once, not every pass
    assert client.get("/readyz").json() == {"status": "ok", "db": "ok", "broker": "ok"}
