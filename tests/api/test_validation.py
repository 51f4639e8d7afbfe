"""Bad input never reaches the store and never answers 500: 413, 422 naming the field, 504."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient

from tests.api.conftest import SYNTHETIC, RecordingQueue

JOBS = "/api/v1/jobs"


def _distill(tmp: Path, data_path: str, model: str = "org/teacher") -> dict:
    return {
        "kind": "distill",
        "teacher": {"model": model},
        "student": {"config": {"num_layers": 1, "hidden_size": 16, "num_heads": 2}},
        "data": {"source": "file", "path": data_path, "text_columns": ["s"], "label_column": "y"},
    }


def test_oversize_body_413(client: TestClient, alice: dict, settings) -> None:  # type: ignore[no-untyped-def]
    big = {**SYNTHETIC, "tags": {"pad": "x" * (settings.max_body_bytes + 10)}}
    r = client.post(JOBS, json=big, headers=alice)
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the streamed size is counted
        yield b'{"kind": "synthetic", "tags": {"pad": "'
        for _ in range(settings.max_body_bytes // 1000 + 2):
            yield b"x" * 1000
        yield b'"}}'

    r = client.post(JOBS, content=chunks(), headers={**alice, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert client.get(JOBS, headers=alice).json()["total"] == 0


def test_malformed_json_422(client: TestClient, alice: dict) -> None:
    r = client.post(JOBS, content=b'{"kind": "synthetic",', headers={**alice, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = client.post(JOBS, json=["not", "a", "mapping"], headers=alice)
    assert r.status_code == 422


def test_unknown_loss_lists_choices(client: TestClient, alice: dict) -> None:
    r = client.post(JOBS, json={**SYNTHETIC, "synthetic": {"losses": ["procrustez"]}}, headers=alice)
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["loc"][:3] == ["body", "synthetic", "losses"] and "procrustes" in err["msg"] and "gram" in err["msg"]
    r = client.post(JOBS, json={**SYNTHETIC, "aplha": 1}, headers=alice)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "aplha"]


def test_numeric_limits_name_the_field(client: TestClient, alice: dict, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "data" / "t.tsv").write_text("s\ty\n")
    spec = _distill(tmp_path, str(tmp_path / "data" / "t.tsv"))
    spec["train"] = {"batch_size": settings.max_batch_size + 1, "max_steps": settings.max_steps + 1}
    spec["data"]["max_seq_len"] = settings.max_seq_len + 8
    r = client.post(JOBS, json=spec, headers=alice)
    assert r.status_code == 422
    locs = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert locs == {("body", "train", "batch_size"), ("body", "train", "max_steps"), ("body", "data", "max_seq_len")}
    assert "GEOKD_MAX_BATCH_SIZE" in r.text
    spec["train"] = {"batch_size": settings.max_batch_size}
    spec["data"]["max_seq_len"] = settings.max_seq_len
    assert client.post(JOBS, json=spec, headers=alice).status_code == 201


def test_paths_outside_roots_refused(client: TestClient, alice: dict, tmp_path: Path) -> None:
    (tmp_path / "secret.tsv").write_text("s\ty\n")
    (tmp_path / "data" / "ok.tsv").write_text("s\ty\n")
    os.symlink(tmp_path / "secret.tsv", tmp_path / "data" / "link.tsv")
    escapes = [
        str(tmp_path / "data" / ".." / "secret.tsv"),  # `..` out of the root
        str(tmp_path / "data" / "link.tsv"),  # symlink out of the root
        "/etc/passwd",
    ]
    for path in escapes:
        r = client.post(JOBS, json=_distill(tmp_path, path), headers=alice)
        assert r.status_code == 422, path
        assert r.json()["detail"][0]["loc"] == ["body", "data", "path"], r.text
    model_escape = _distill(tmp_path, str(tmp_path / "data" / "ok.tsv"), model=str(tmp_path / "data"))
    r = client.post(JOBS, json=model_escape, headers=alice)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "teacher"]
    assert client.post(JOBS, json=_distill(tmp_path, str(tmp_path / "data" / "ok.tsv")), headers=alice).status_code == 201
    assert client.get(JOBS, headers=alice).json()["total"] == 1


def test_validate_and_preflight(client: TestClient, alice: dict, queue: RecordingQueue) -> None:
    ok = client.post(f"{JOBS}/validate", json=SYNTHETIC, headers=alice)
    assert ok.status_code == 200 and ok.json() == {"valid": True, "problems": []} and queue.preflight_specs == []
    queue.preflight_answer = [{"loc": ["loss", "pairs"], "msg": "student layer 9 out of range (1..4)"}]
    bad = client.post(f"{JOBS}/validate", params={"preflight": "true"}, json=SYNTHETIC, headers=alice)
    assert bad.status_code == 422
    assert bad.json()["detail"] == [
        {"loc": ["body", "loss", "pairs"], "msg": "student layer 9 out of range (1..4)", "type": "preflight"}
    ]
    assert queue.preflight_specs[0]["synthetic"]["steps"] == 5
    queue.preflight_answer = None  # no worker answers
    slow = client.post(f"{JOBS}/validate", params={"preflight": "true"}, json=SYNTHETIC, headers=alice)
    assert slow.status_code == 504 and "worker" in slow.json()["detail"]
    assert client.get(JOBS, headers=alice).json()["total"] == 0  # validate never stores a job


def test_bad_path_params_and_queries(client: TestClient, alice: dict) -> None:
    assert client.get(f"{JOBS}/not-a-uuid", headers=alice).status_code == 422
    assert client.get(f"{JOBS}/00000000-0000-0000-0000-000000000000", headers=alice).status_code == 404
    assert client.get(JOBS, params={"limit": 10**30}, headers=alice).status_code == 422
    job = client.post(JOBS, json=SYNTHETIC, headers=alice).json()
    assert client.get(f"{JOBS}/{job['id']}/metrics", params={"since": 2**70}, headers=alice).status_code == 422


def test_non_finite_numbers_refused_not_500(app, alice: dict) -> None:  # type: ignore[no-untyped-def]
    from tests.api.conftest import WORKER, claim

    c = TestClient(app, raise_server_exceptions=False)
    ct = {**alice, "Content-Type": "application/json"}
    r = c.post(JOBS, content=b'{"kind": "synthetic", "loss": {"gamma": Infinity}}', headers=ct)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "loss", "gamma"]
    r = c.post(JOBS, content=b'{"kind": "synthetic", "loss": {"alpha": NaN}}', headers=ct)
    assert r.status_code == 422 and r.json()["detail"][0]["input"] is None  # echoed as null, not a crash
    job = c.post(JOBS, json=SYNTHETIC, headers=alice).json()
    lease = claim(c, job["id"])["lease"]
    url, wct = f"/api/v1/worker/jobs/{job['id']}/events", {**WORKER, "Content-Type": "application/json"}
    huge = '{"lease": "%s", "events": [{"type": "metric", "step": %d}]}' % (lease, 2**70)  # noqa: UP031
    assert c.post(url, content=huge, headers=wct).status_code == 422
    nan_ts = '{"lease": "%s", "events": [{"type": "log", "ts": NaN}]}' % lease  # noqa: UP031
    assert c.post(url, content=nan_ts, headers=wct).status_code == 422
