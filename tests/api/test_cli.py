"""The service CLI commands against a live API (keys work on the store directly)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
import yaml
from typer.testing import CliRunner

from api.cli import register
from api.reproduce import register as register_reproduce
from tests.utils.live_api import LiveApi, live_api

SPEC = {"kind": "synthetic", "name": "cli-job", "synthetic": {"n": 16, "d_teacher": 8, "d_student": 4, "steps": 5}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(tmp_path_factory.mktemp("cli") / "home") as api:
        yield api


@pytest.fixture
def cli(server: LiveApi):  # type: ignore[no-untyped-def]
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    env = {"GEOKD_HOME": str(server.home), "GEOKD_API_URL": server.base_url, "GEOKD_API_KEY": server.admin_key}
    return lambda *args: runner.invoke(app, list(args), env=env)


def test_keys_create_and_list(cli, server: LiveApi) -> None:  # type: ignore[no-untyped-def]
    out = cli("keys", "create", "--name", "carol")
    assert out.exit_code == 0, out.output
    key = out.stdout.strip().splitlines()[0]
    assert key.startswith("gk_") and len(key) > 40
    # The printed key works against the running API and is scoped to carol.
    r = httpx.get(f"{server.base_url}/api/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["total"] == 0
    listing = cli("keys", "list").output
    assert "carol" in listing and key not in listing and key[:8] in listing


def test_submit_jobs_cancel_logs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    out = cli("submit", str(spec_file))
    assert out.exit_code == 0, out.output
    job_id = out.stdout.strip()
    assert job_id in cli("jobs").output
    cancelled = cli("cancel", job_id)
    assert cancelled.exit_code == 0 and "CANCELLED" in cancelled.output
    again = cli("cancel", job_id)
    assert again.exit_code == 1 and "409" in again.output
    assert cli("logs", job_id).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SPEC, "synthetic": {"losses": ["nope"]}}))
    refused = cli("submit", str(bad))
    assert refused.exit_code == 1 and "procrustes" in refused.output


def _fake_worker(server: LiveApi, name: str, steps: int) -> None:
    """Claim the job called ``name`` once it appears, report progress and a log line, succeed."""
    api = httpx.Client(base_url=f"{server.base_url}/api/v1", headers=server.headers)
    w = httpx.Client(base_url=f"{server.base_url}/api/v1/worker/jobs", headers={"Authorization": f"Bearer {server.worker_token}"})
    for _ in range(200):
        items = api.get("/jobs", params={"name": name}).json()["items"]
        if items:
            break
        time.sleep(0.05)
    jid = items[0]["id"]
    lease = w.post(f"/{jid}/claim", json={"worker": "fake:1"}).json()["lease"]
    for s in range(1, steps + 1):
        evs = [
            {"type": "progress", "step": s, "data": {"step": s, "total_steps": steps}},
            {"type": "metric", "step": s, "data": {"values": {"train/loss": 1.0 / s}}},
            {"type": "log", "step": s, "data": {"level": "INFO", "message": f"step {s} done"}},
        ]
        w.post(f"/{jid}/events", json={"lease": lease, "events": evs})
    w.post(f"/{jid}/finish", json={"lease": lease, "status": "SUCCEEDED", "summary": {"loss": 0.25}})


def test_submit_watch_and_follow_logs(cli, server: LiveApi, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec_file = tmp_path / "watch.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "name": "watched"}))
    t = threading.Thread(target=_fake_worker, args=(server, "watched", 4))
    t.start()
    out = cli("submit", str(spec_file), "--watch")
    t.join(30)
    assert out.exit_code == 0, out.output
    job_id = out.stdout.splitlines()[0].strip()
    assert f"{job_id}: SUCCEEDED" in out.output
    logs = cli("logs", job_id, "--follow")
    assert logs.exit_code == 0
    assert [ln for ln in logs.output.splitlines() if "step" in ln] == [f"INFO    step {s} done" for s in range(1, 5)]
    assert "-- SUCCEEDED" in logs.output


def test_reproduce_glue_alphas_from_and_teacher_seed(tmp_path: Path) -> None:
    """--alphas-from drops the α phase from the plan; a file without α is a readable usage error."""
    app = typer.Typer()
    register_reproduce(app)
    runner = CliRunner()
    base = ["reproduce", "glue", "--budget", "medium", "--tasks", "stsb", "--settings", "L3-init",
            "--methods", "procrustes_kd,cka_kd,kd_only", "--seeds", "3", "--teacher-seed", "1", "--dry-run"]
    out = runner.invoke(app, base)
    assert out.exit_code == 0, out.output
    assert "teacher 1, alpha 4, main 7, total 12 jobs" in out.stdout
    report = tmp_path / "results.json"
    report.write_text('{"alphas": {"stsb/L3-init/procrustes_kd": 0.7, "stsb/L3-init/cka_kd": 0.3}}')
    out = runner.invoke(app, [*base, "--alphas-from", str(report)])
    assert out.exit_code == 0, out.output
    assert "teacher 1, alpha 0, main 9, total 10 jobs" in out.stdout
    report.write_text('{"tables": []}')
    out = runner.invoke(app, [*base, "--alphas-from", str(report)])
    assert out.exit_code == 2 and "not a GLUE results.json with an 'alphas' object" in out.output
    assert "--alphas-from" in out.output
    out = runner.invoke(app, [*base, "--teacher-seed", "-1"])
    assert out.exit_code == 2 and "--teacher-seed" in out.output
