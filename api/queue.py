"""Hand jobs to the workers by task name, so the API process never imports the engine (or torch).

``CeleryQueue`` builds the Celery app lazily from ``worker.celery_app.make_celery(settings)``; tests
inject any object with the same three methods (see ``Queue``).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from geokd_core.settings import Settings

RUN_TASK = "geokd.run_job"
PREFLIGHT_TASK = "geokd.preflight"
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class PreflightTimeout(Exception):
    """No worker answered the preflight request in time."""


class Queue(Protocol):
    def enqueue(self, job_id: str, spec: dict[str, Any]) -> None:
        """Put ``job_id`` on the queue its spec's device needs (raises if the broker is down)."""

    def preflight(self, spec: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        """Ask a worker to dry-run ``spec``; return its problems (``[{"loc", "msg"}]``)."""

    def ping(self, timeout: float) -> None:
        """Raise if the broker cannot be reached within ``timeout`` seconds."""


def queue_for(spec: dict[str, Any]) -> str:
    """``gpu`` for specs that ask for CUDA, else ``cpu`` (``auto`` runs wherever a cpu worker is)."""
    return "gpu" if (spec.get("train") or {}).get("device") == "cuda" else "cpu"


class CeleryQueue:
    """Sends tasks by name through the worker package's Celery app (built on first use)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app: Any = None
        self._lock = threading.Lock()

    def _celery(self) -> Any:
        with self._lock:
            if self._app is None:
                # Imported here: worker.celery_app imports no torch, but it is only needed on send.
                from worker.celery_app import make_celery

                self._app = make_celery(self._settings)
            return self._app

    def enqueue(self, job_id: str, spec: dict[str, Any]) -> None:
        # ignore_result: no result-backend round trip (a Redis backend that is down would block
        # ~20 s); a short publish retry: if the broker is down, the reaper re-sends the job later.
        self._celery().send_task(
            RUN_TASK, args=[job_id], queue=queue_for(spec), ignore_result=True, retry_policy=PUBLISH_RETRY
        )

    def preflight(self, spec: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        from celery.exceptions import TimeoutError as CeleryTimeout

        result = self._celery().send_task(
            PREFLIGHT_TASK, args=[spec], queue=queue_for(spec), retry_policy=PUBLISH_RETRY
        )
        try:
            problems = result.get(timeout=timeout, propagate=True)
        except CeleryTimeout as exc:
            result.forget()
            raise PreflightTimeout from exc
        return list(problems or [])

    def ping(self, timeout: float) -> None:
        from kombu import Connection

        from worker.celery_app import broker_url

        with Connection(broker_url(self._settings), connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
