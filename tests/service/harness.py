"""The pieces of a running service for the reliability tests: API process, workers, a job client.

The API is a real uvicorn subprocess (``tests/utils/live_api.py``) with a short stale-heartbeat
window and a fast reaper, so a killed worker's job is re-queued within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.utils.live_worker import LiveWorker, start_worker

# Short reliability windows so crash tests finish in seconds (production defaults are 30 s / 5 s).
FAST_RELIABILITY_ENV = {
    "GEOKD_STALE_AFTER_S": "3",
    "GEOKD_REAPER_INTERVAL_S": "0.5",
    "GEOKD_HEARTBEAT_INTERVAL_S": "0.5",
    "GEOKD_MAX_ATTEMPTS": "5",
}
FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}


def synthetic_spec(steps: int = 300, *, name: str = "svc-test", checkpoint_every: int | None = 50,
                   log_every: int = 10, losses: Iterable[str] = ("procrustes",), n: int = 64,
                   device: str = "cpu") -> dict[str, Any]:
    """A small ``kind: synthetic`` job (one loss, one seed → global steps 0..steps)."""
    return {
        "name": name,
        "kind": "synthetic",
        "synthetic": {"n": n, "d_teacher": 32, "d_student": 8, "steps": steps, "losses": list(losses),
                      "seeds": [0], "log_every": log_every},
        "train": {"checkpoint_every": checkpoint_every, "gram_every": 10_000, "gram_probe_size": 8,
                  "device": device},
    }


class JobsClient:
    """The user-facing REST calls the tests need (``/api/v1``)."""

    def __init__(self, api_url: str, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=api_url.rstrip("/") + "/api/v1", headers=headers, timeout=10.0)

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> str:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        r = self.http.post("/jobs", json=spec, headers=headers)
        assert r.status_code in (200, 201), r.text
        return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.http.get(f"/jobs/{job_id}")
        r.raise_for_status()
        return r.json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        r = self.http.post(f"/jobs/{job_id}/cancel")
        r.raise_for_status()
        return r.json()

    def retry(self, job_id: str) -> dict[str, Any]:
        r = self.http.post(f"/jobs/{job_id}/retry")
        r.raise_for_status()
        return r.json()

    def metrics(self, job_id: str) -> dict[str, Any]:
        r = self.http.get(f"/jobs/{job_id}/metrics")
        r.raise_for_status()
        return r.json()["series"]

    def logs(self, job_id: str) -> list[str]:
        r = self.http.get(f"/jobs/{job_id}/logs", params={"tail": 1000})
        r.raise_for_status()
        return [line["message"] for line in r.json()["lines"]]

    def artifacts(self, job_id: str) -> set[str]:
        r = self.http.get(f"/jobs/{job_id}/artifacts")
        r.raise_for_status()
        return {a["name"] for a in r.json()["items"]}

    def wait(self, job_id: str, until: Callable[[dict[str, Any]], bool], timeout_s: float = 60.0,
             what: str = "condition") -> dict[str, Any]:
        """Poll the job until ``until(job)``; tolerates the API being briefly unreachable."""
        deadline = time.monotonic() + timeout_s
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                job = self.job(job_id)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if until(job):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id}: {what} not reached in {timeout_s}s; last state {job}")

    def wait_finished(self, job_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
        return self.wait(job_id, lambda j: j["status"] in FINISHED, timeout_s, "a final status")

    def wait_step(self, job_id: str, step: int, timeout_s: float = 60.0) -> dict[str, Any]:
        return self.wait(job_id, lambda j: j["status"] == "RUNNING" and (j.get("progress") or {}).get("step", 0) >= step,
                         timeout_s, f"RUNNING at step >= {step}")


def wait_log(worker: LiveWorker, text: str, timeout_s: float = 30.0) -> None:
    """Wait until ``text`` appears in the worker's log."""
    deadline = time.monotonic() + timeout_s
    while text not in worker.log():
        assert time.monotonic() < deadline, f"{text!r} not in worker log:\n{worker.log()[-3000:]}"
        time.sleep(0.1)


def expected_steps(steps: int, log_every: int) -> list[int]:
    """Steps at which a one-run synthetic job logs its metrics: 0, every ``log_every``, and the last."""
    return sorted({0, steps, *range(log_every, steps + 1, log_every)})


def series_steps(series: dict[str, Any], name: str) -> list[int]:
    return list(series[name]["steps"])


@dataclass
class WorkerFactory:
    """Starts workers bound to one API and broker; stops every one it started."""

    api_url: str
    worker_token: str | None
    home: Path
    broker_url: str | None
    started: list[LiveWorker]

    def start(self, **kwargs: Any) -> LiveWorker:
        env = {**FAST_RELIABILITY_ENV, **kwargs.pop("extra_env", {})}
        w = start_worker(self.api_url, self.worker_token, self.home / f"w{len(self.started)}", self.broker_url,
                         extra_env=env, **kwargs)
        self.started.append(w)
        return w

    def stop_all(self) -> None:
        for w in self.started:
            w.kill()
