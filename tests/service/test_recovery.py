"""Crashes and restarts mid-job, with real processes: nothing is lost and the job finishes.

- A worker SIGKILLed mid-job: its heartbeat goes stale, the API's reaper re-queues the job, a new
  worker resumes from the uploaded checkpoint; the metric series has every step exactly once
  (store on SQLite, and on Postgres).
- The API killed and restarted mid-job: the worker keeps its events until the API is back (with
  the store on SQLite, and on Postgres).
- Redis (a private server) killed and restarted mid-job: the job finishes, and the worker
  reconnects and takes new jobs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.service.conftest import running_service
from tests.service.harness import expected_steps, series_steps, synthetic_spec
from tests.utils.redis_server import private_redis

SERIES = "synthetic/procrustes/seed0/loss"


def parent_pid(pid: int) -> int:
    """The parent of a running process (a job runs in a pool child of the worker's main process)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_for_file(path: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_worker_sigkill_resumes_from_checkpoint(tmp_path: Path, redis_url: str, store: str,
                                                request: pytest.FixtureRequest) -> None:
    steps = 800
    # On Postgres the reaper's stale-lease re-queue runs in the scaled-out shape.
    database_url = request.getfixturevalue("postgres_url") if store == "postgres" else None
    with running_service(tmp_path / "home", redis_url, database_url=database_url) as svc:
        workers = [svc.workers.start(), svc.workers.start()]
        job_id = svc.client.submit(synthetic_spec(steps=steps, log_every=10, checkpoint_every=50))
        job = svc.client.wait_step(job_id, 110)
        # The sink posts events before it uploads the checkpoint of the same flush: wait for the
        # API to hold one, or a fast run could be killed between the two and start from scratch.
        wait_for_file(tmp_path / "home" / "artifacts" / job_id / ".checkpoint.tar")
        owner = next(w for w in workers if w.pid == parent_pid(int(job["worker"].rsplit(":", 1)[1])))
        owner.kill()
        assert not owner.alive()
        killed_at = svc.client.job(job_id)["progress"]["step"]
        job = svc.client.wait_finished(job_id, timeout_s=120)
        assert job["status"] == "SUCCEEDED", job
        assert job["attempt"] == 2
        logs = svc.client.logs(job_id)
        assert any(line.startswith("resuming attempt 2 from the last uploaded checkpoint") for line in logs), logs
        # Exactly one point per logged step across both attempts: re-emitted steps overwrite.
        series = svc.client.metrics(job_id)
        assert series_steps(series, SERIES) == expected_steps(steps, 10)
        assert killed_at < steps


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_api_restart_mid_job_loses_nothing(tmp_path: Path, redis_url: str, store: str,
                                           request: pytest.FixtureRequest) -> None:
    steps = 400
    # A stale window longer than the restart: this is an API outage, not a worker crash. With
    # Postgres this is the scaled-out shape: Redis broker, Postgres store, workers over HTTP.
    database_url = request.getfixturevalue("postgres_url") if store == "postgres" else None
    with running_service(tmp_path / "home", redis_url, {"GEOKD_STALE_AFTER_S": "30"}, database_url) as svc:
        worker = svc.workers.start()
        job_id = svc.client.submit(synthetic_spec(steps=steps, log_every=10, checkpoint_every=50))
        svc.client.wait_step(job_id, 60)
        svc.api.proc.kill()
        time.sleep(2.0)  # the engine keeps emitting; the worker buffers and retries
        svc.api.proc.start()
        job = svc.client.wait_finished(job_id, timeout_s=120)
        assert job["status"] == "SUCCEEDED", job
        assert job["attempt"] == 1
        assert series_steps(svc.client.metrics(job_id), SERIES) == expected_steps(steps, 10)
        assert "API unavailable" in worker.log()  # the outage really happened mid-job
        assert (tmp_path / "home" / "geokd.db").exists() == (store == "sqlite")  # the store is the one asked for


def test_redis_restart_mid_job(tmp_path: Path) -> None:
    redis = private_redis(tmp_path / "redis")
    try:
        with running_service(tmp_path / "home", redis.url) as svc:
            worker = svc.workers.start()
            job_id = svc.client.submit(synthetic_spec(steps=300, log_every=10, checkpoint_every=50))
            svc.client.wait_step(job_id, 40)
            redis.kill()
            time.sleep(1.0)
            redis.start()
            job = svc.client.wait_finished(job_id, timeout_s=120)
            assert job["status"] == "SUCCEEDED", job
            assert series_steps(svc.client.metrics(job_id), SERIES) == expected_steps(300, 10)
            # The worker reconnected to the restarted (empty) Redis and takes new work.
            second = svc.client.submit(synthetic_spec(steps=30, log_every=10, checkpoint_every=None))
            assert svc.client.wait_finished(second, timeout_s=90)["status"] == "SUCCEEDED"
            assert worker.alive()
            assert "Connection to broker lost" in worker.log()
    finally:
        redis.kill()


def test_worker_sigterm_checkpoints_and_another_resumes(tmp_path: Path, redis_url: str) -> None:
    # `docker stop` / Ctrl-C: a warm shutdown passes SIGTERM to the running job, which writes and
    # uploads a final checkpoint and stops without finishing; the reaper re-queues it.
    steps = 800
    with running_service(tmp_path / "home", redis_url) as svc:
        first = svc.workers.start()
        job_id = svc.client.submit(synthetic_spec(steps=steps, log_every=10, checkpoint_every=None))
        svc.client.wait_step(job_id, 60)
        assert first.stop(timeout_s=30) == 0  # exits by itself, well before the SIGKILL fallback
        logs = svc.client.logs(job_id)
        assert any("worker shutdown" in line and "final checkpoint" in line for line in logs), logs
        svc.workers.start()
        job = svc.client.wait_finished(job_id, timeout_s=120)
        assert job["status"] == "SUCCEEDED" and job["attempt"] == 2, job
        # checkpoint_every=None: the only checkpoint is the one written at shutdown.
        assert any(line.startswith("resuming attempt 2") for line in svc.client.logs(job_id))
        assert series_steps(svc.client.metrics(job_id), SERIES) == expected_steps(steps, 10)
