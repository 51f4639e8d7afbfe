"""The worker's HTTP client to the API's ``/api/v1/worker`` routes (docs/DESIGN.md, Worker ↔ API).

Workers need only the broker URL and this API URL, so they can run on other machines. Every
call raises ``LeaseLost`` on 409 (another worker owns the job, or it is finished/cancelled) and
``ApiUnavailable`` when the API cannot be reached or answers 5xx; ``call_with_retry`` turns the
latter into waiting with exponential backoff, because an API restart must not lose a job.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class LeaseLost(Exception):
    """409 from the API: this worker may not (or no longer) run the job."""


class JobNotFound(Exception):
    """404 from the API: no such job (deleted, or a message from another deployment)."""


class ApiUnavailable(Exception):
    """The API is down, restarting or overloaded (connection error, timeout, 5xx)."""


@dataclass
class Claim:
    lease: str
    attempt: int
    spec: dict[str, Any]
    resume: bool


def worker_name() -> str:
    """``host:pid`` of this process, as the API records it on the job row."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerApiClient:
    """Thin synchronous client; one per job run (holds a connection pool)."""

    def __init__(self, api_url: str, token: str | None, timeout_s: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=api_url.rstrip("/") + "/api/v1/worker", headers=headers, timeout=timeout_s
        )

    def close(self) -> None:
        self._http.close()

    # ---- protocol ------------------------------------------------------------------------
    def claim(self, job_id: str, worker: str) -> Claim:
        body = self._json("POST", f"/jobs/{job_id}/claim", json={"worker": worker})
        return Claim(lease=body["lease"], attempt=int(body.get("attempt", 1)),
                     spec=body["spec"], resume=bool(body.get("resume", False)))

    def post_events(self, job_id: str, lease: str, events: list[dict[str, Any]]) -> bool:
        """Append a batch of events (also a heartbeat); returns ``cancel_requested``."""
        body = self._json("POST", f"/jobs/{job_id}/events", json={"lease": lease, "events": events})
        return bool(body.get("cancel_requested", False))

    def heartbeat(self, job_id: str, lease: str) -> bool:
        body = self._json("POST", f"/jobs/{job_id}/heartbeat", json={"lease": lease})
        return bool(body.get("cancel_requested", False))

    def put_checkpoint(self, job_id: str, lease: str, tar_path: Path) -> None:
        self._upload(f"/jobs/{job_id}/checkpoint", lease, tar_path)

    def get_checkpoint(self, job_id: str, lease: str, dest: Path) -> bool:
        """Download the job's latest checkpoint tar to ``dest``; False when there is none (404)."""
        try:
            with self._http.stream("GET", f"/jobs/{job_id}/checkpoint", params={"lease": lease}) as r:
                if r.status_code == 404:
                    return False
                if not r.is_success:  # read the (small) error body only; stream a good one to disk
                    r.read()
                    _raise_for(r)
                with dest.open("wb") as f:
                    for chunk in r.iter_bytes():
                        f.write(chunk)
        except httpx.TransportError as exc:
            raise ApiUnavailable(str(exc)) from exc
        return True

    def put_artifact(self, job_id: str, lease: str, name: str, path: Path) -> None:
        self._upload(f"/jobs/{job_id}/artifacts/{name}", lease, path)

    def finish(self, job_id: str, lease: str, status: str, error: str | None = None,
               summary: dict[str, Any] | None = None) -> None:
        self._json("POST", f"/jobs/{job_id}/finish",
                   json={"lease": lease, "status": status, "error": error, "summary": summary or {}})

    # ---- plumbing ------------------------------------------------------------------------
    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            r = self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnavailable(str(exc)) from exc
        _raise_for(r)
        return r.json() if r.content else {}

    def _upload(self, url: str, lease: str, path: Path) -> None:
        try:
            with path.open("rb") as f:
                r = self._http.put(url, params={"lease": lease}, content=f,
                                   headers={"Content-Type": "application/octet-stream"})
        except httpx.TransportError as exc:
            raise ApiUnavailable(str(exc)) from exc
        _raise_for(r)


def _raise_for(r: httpx.Response) -> None:
    if r.status_code == 409:
        raise LeaseLost(r.text)
    if r.status_code == 404:
        raise JobNotFound(r.text)
    if r.status_code >= 500 or r.status_code in (408, 429):
        raise ApiUnavailable(f"{r.status_code}: {r.text[:200]}")
    r.raise_for_status()


def call_with_retry(fn: Callable[[], T], deadline_s: float = 600.0, first_delay_s: float = 0.2,
                    max_delay_s: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn`` until it stops raising ``ApiUnavailable`` or ``deadline_s`` passes (then re-raise).

    ``LeaseLost`` and other errors pass through at once: retrying cannot fix them.
    """
    start = time.monotonic()
    delay = first_delay_s
    while True:
        try:
            return fn()
        except ApiUnavailable:
            if time.monotonic() - start + delay > deadline_s:
                raise
            sleep(delay)
            delay = min(delay * 2, max_delay_s)
