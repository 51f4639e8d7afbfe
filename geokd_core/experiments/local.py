"""Engine-direct backend: run a reproduction's jobs in local worker processes, without the service.

The reproduction normally drives the REST service (``api/reproduce.py``). On a single machine that
cannot run the service — e.g. a lent GPU box with no Redis/API packages — :class:`LocalBackend`
implements the same four calls by running ``geokd_core.run.run_job`` in a pool of spawned
processes (spawn, not fork: CUDA cannot be re-initialised in a forked child). Specs, engine,
metrics and the report are exactly those of the service path; only transport and queueing differ.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _run(spec: dict[str, Any], out_dir: str, resume: bool) -> dict[str, Any]:
    """Runs in the child: one job, returns its summary (``RunResult.final_metrics``)."""
    from geokd_core.run import run_job
    from geokd_core.spec import JobSpec

    result = run_job(JobSpec.model_validate(spec), Path(out_dir), resume=resume)
    return {"status": result.status, "summary": result.final_metrics}


def _now() -> str:
    return datetime.now(UTC).isoformat()


class LocalBackend:
    """``Backend`` of ``geokd_core.experiments.runner`` over a local process pool."""

    def __init__(self, root: Path, workers: int = 2) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
        self.jobs: dict[str, dict[str, Any]] = {}
        self.futures: dict[str, Future[dict[str, Any]]] = {}
        self.by_key: dict[str, str] = {}

    def _start(self, job_id: str, resume: bool) -> None:
        job = self.jobs[job_id]
        job.update(status="RUNNING", started_at=_now(), finished_at=None, error=None)
        self.futures[job_id] = self.pool.submit(_run, job["spec"], str(self.root / job_id), resume)

    def submit(self, spec: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        if idempotency_key in self.by_key:
            return self.job(self.by_key[idempotency_key])
        job_id = uuid.uuid4().hex
        self.by_key[idempotency_key] = job_id
        self.jobs[job_id] = {"id": job_id, "spec": spec, "summary": {}, "attempt": 1}
        self._start(job_id, resume=False)
        return dict(self.jobs[job_id])

    def job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        fut = self.futures.get(job_id)
        if job["status"] == "RUNNING" and fut is not None and fut.done():
            job["finished_at"] = _now()
            try:
                res = fut.result()
                job["summary"] = res["summary"]
                job["status"] = "SUCCEEDED" if res["status"] == "completed" else "CANCELLED"
            except Exception as exc:  # the engine's readable error becomes the job's error
                job["status"], job["error"] = "FAILED", f"{type(exc).__name__}: {exc}"
        return dict(job)

    def retry(self, job_id: str) -> dict[str, Any]:
        self.jobs[job_id]["attempt"] += 1
        self._start(job_id, resume=True)
        return dict(self.jobs[job_id])

    def download(self, job_id: str, name: str, dest: Path) -> Path:
        if name != "student.zip":
            raise FileNotFoundError(f"local backend serves only student.zip, not {name!r}")
        archive = shutil.make_archive(str(dest.with_suffix("")), "zip", self.root / job_id / "student")
        return Path(archive)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
