"""A job's life through real processes (uvicorn API, Celery worker subprocess, Redis), with the
store on SQLite and again on Postgres.

Each test checks what a user sees through the REST API: status, stored metric series (exactly the
steps the engine logs, none duplicated or missing), logs, artifacts. The tests of this module share
one API and one worker with two pool processes (starting them is most of a test's cost).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from geokd_core.settings import Settings
from tests.service.conftest import Service, running_service
from tests.service.harness import expected_steps, series_steps, synthetic_spec, wait_log
from tests.utils.live_worker import LiveWorker
from tests.utils.postgres import fresh_database
from worker.celery_app import RUN_JOB, make_celery
from worker.threads import available_cpus, threads_per_job

SERIES = "synthetic/procrustes/seed0/loss"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def svc_worker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               redis_url: str) -> Iterator[tuple[Service, LiveWorker]]:
    """Every test of the module runs twice: store on SQLite (one machine) and on a fresh Postgres
    database (the scaled-out shape: Redis broker, Postgres store, workers over HTTP)."""
    home = tmp_path_factory.mktemp(f"jobs-{request.param}") / "home"
    with ExitStack() as stack:
        database_url = None
        if request.param == "postgres":
            database_url = stack.enter_context(fresh_database(request.getfixturevalue("postgres_server")))
        svc = stack.enter_context(running_service(home, redis_url, database_url=database_url))
        # Two pool processes, so the duplicate-delivery test can race two deliveries for one lease.
        yield svc, svc.workers.start(concurrency=2)


@pytest.fixture
def redis_service(svc_worker: tuple[Service, LiveWorker]) -> Service:
    return svc_worker[0]


def test_submit_runs_to_success(redis_service: Service) -> None:
    svc = redis_service
    job_id = svc.client.submit(synthetic_spec(steps=60, log_every=10, checkpoint_every=20))
    job = svc.client.wait_finished(job_id)
    assert job["status"] == "SUCCEEDED", job
    assert job["attempt"] == 1 and job["error"] is None and job["started_at"] and job["finished_at"]
    assert job["summary"], "final metrics are stored as the job summary"
    series = svc.client.metrics(job_id)
    assert series_steps(series, SERIES) == expected_steps(60, 10)
    assert len(series[SERIES]["values"]) == len(expected_steps(60, 10))
    assert "results.json" in svc.client.artifacts(job_id)
    logs = svc.client.logs(job_id)
    # The worker runs two jobs at once: each job process gets its share of the cores.
    threads = threads_per_job(available_cpus(), 2, 0, os.environ.get("OMP_NUM_THREADS")) or int(
        os.environ["OMP_NUM_THREADS"])
    started = [line for line in logs if line.startswith("attempt 1 started on ")]
    assert started and started[0].endswith(f"({threads} CPU thread{'s' * (threads != 1)})"), logs
    assert any("succeeded at step 60" in line for line in logs)


def test_duplicate_delivery_runs_once(svc_worker: tuple[Service, LiveWorker]) -> None:
    svc, worker = svc_worker
    job_id = svc.client.submit(synthetic_spec(steps=60, log_every=10, checkpoint_every=20))
    app = make_celery(Settings(_env_file=None, home=svc.api.home, broker_url=svc.broker_url))  # type: ignore[call-arg]
    app.send_task(RUN_JOB, args=[job_id], queue="cpu")
    job = svc.client.wait_finished(job_id)
    assert job["status"] == "SUCCEEDED" and job["attempt"] == 1
    starts = [line for line in svc.client.logs(job_id) if line.startswith("attempt ")]
    assert len(starts) == 1, starts
    wait_log(worker, f"job {job_id}: duplicate")
    assert series_steps(svc.client.metrics(job_id), SERIES) == expected_steps(60, 10)


def test_cancel_running_then_retry_resumes(redis_service: Service) -> None:
    svc = redis_service
    steps = 800
    job_id = svc.client.submit(synthetic_spec(steps=steps, log_every=10, checkpoint_every=100))
    svc.client.wait_step(job_id, 20)
    svc.client.cancel(job_id)
    job = svc.client.wait(job_id, lambda j: j["status"] == "CANCELLED", timeout_s=15, what="CANCELLED")
    stopped_at = job["progress"]["step"]
    assert 0 < stopped_at < steps
    assert any(line.startswith("cancelled at step") for line in svc.client.logs(job_id))
    # The final checkpoint was uploaded: a retry resumes from it instead of starting over.
    svc.client.retry(job_id)
    job = svc.client.wait_finished(job_id, timeout_s=120)
    assert job["status"] == "SUCCEEDED", job
    assert any(line.startswith("resuming attempt") for line in svc.client.logs(job_id))
    assert series_steps(svc.client.metrics(job_id), SERIES) == expected_steps(steps, 10)


def test_cancel_queued_never_starts(redis_service: Service) -> None:
    svc = redis_service
    # device=cuda goes to the gpu queue; no gpu worker runs yet, so the job stays QUEUED.
    job_id = svc.client.submit(synthetic_spec(steps=50, device="cuda"))
    assert svc.client.job(job_id)["status"] == "QUEUED"
    assert svc.client.cancel(job_id)["status"] == "CANCELLED"
    worker = svc.workers.start(queue="gpu")  # now the message is delivered: the claim must refuse it
    wait_log(worker, f"job {job_id}: duplicate")
    worker.kill()
    job = svc.client.job(job_id)
    assert job["status"] == "CANCELLED" and job["started_at"] is None
    assert svc.client.metrics(job_id) == {}


def test_bad_data_fails_readably(redis_service: Service, tmp_path: Path) -> None:
    from tests.utils.tiny_models import make_bert_dir

    svc = redis_service
    model = make_bert_dir(svc.api.home / "models" / "tiny-bert", num_layers=1, hidden=16, heads=2)
    # A path inside the data root that passes submit-time checks but is no data file: a directory.
    bad = svc.api.home / "data" / "train.jsonl"
    bad.mkdir(parents=True)
    spec = {
        "name": "bad-data", "kind": "finetune",
        "student": {"model": str(model)},
        "data": {"source": "file", "path": str(bad), "text_columns": ["text"], "label_column": "label",
                 "max_seq_len": 16},
        "train": {"max_steps": 2, "batch_size": 2, "device": "cpu"},
    }
    job_id = svc.client.submit(spec)
    job = svc.client.wait_finished(job_id)
    assert job["status"] == "FAILED"
    assert job["error"] and "is a directory" in job["error"] and "Traceback" not in job["error"]
    logs = svc.client.logs(job_id)
    assert job["error"] in logs
    assert any("Traceback" in line or line.strip().startswith("File ") for line in logs), logs[-20:]


def test_preflight_runs_on_a_worker(redis_service: Service) -> None:
    svc = redis_service
    ok = svc.client.http.post("/jobs/validate", params={"preflight": "true"}, json=synthetic_spec(steps=5))
    assert ok.status_code == 200 and ok.json()["valid"] is True, ok.text
    # A model directory without config.json passes the API's own path checks; only the worker's
    # preflight, which tries to resolve the model, can refuse it.
    empty = svc.api.home / "models" / "empty-model"
    empty.mkdir(parents=True)
    (svc.api.home / "data").mkdir(exist_ok=True)
    data = svc.api.home / "data" / "preflight-train.jsonl"
    data.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    spec = {"name": "pf", "kind": "finetune", "student": {"model": str(empty)},
            "data": {"source": "file", "path": str(data), "text_columns": ["text"], "label_column": "label"},
            "train": {"max_steps": 1, "batch_size": 2, "device": "cpu"}}
    bad = svc.client.http.post("/jobs/validate", params={"preflight": "true"}, json=spec)
    assert bad.status_code == 422, bad.text
    assert any(p["loc"][:2] == ["body", "student"] or p["loc"][:1] == ["student"] for p in bad.json()["detail"]), bad.text
