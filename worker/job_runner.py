"""One attempt at one job, start to finish: claim → (download checkpoint) → engine → publish → finish.

Knows the engine only through ``geokd_core.run.run_job`` and the API only through
``WorkerApiClient``; Celery is not imported here (``worker.tasks`` wraps this in a task).

Outcomes:
- claim answered 409 → ``"duplicate"``: another delivery of the same job, or it is finished or
  cancelled; nothing runs.
- engine completed → artifacts uploaded, ``SUCCEEDED``.
- engine stopped after ``cancel_requested`` → final checkpoint uploaded, ``CANCELLED``.
- engine stopped for a worker shutdown → final checkpoint uploaded, no ``finish``: the reaper
  re-queues the job and another worker resumes it.
- lease lost mid-run → stop and walk away; the job belongs to another attempt now.
- any exception → ``FAILED`` with a readable error, the traceback tail as log events.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import traceback
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from geokd_core.errors import GeokdError
from geokd_core.events import Event, EventType
from geokd_core.settings import Settings
from geokd_core.spec import JobSpec
from worker.api_client import (
    ApiUnavailable,
    Claim,
    JobNotFound,
    LeaseLost,
    WorkerApiClient,
    call_with_retry,
    worker_name,
)
from worker.packaging import collect_artifacts, extract_checkpoint, json_safe
from worker.sink import ApiEventSink
from worker.threads import torch_threads

log = logging.getLogger(__name__)

TRACEBACK_TAIL_LINES = 15


def readable_error(exc: BaseException) -> str:
    """What the user sees as the job's error: our own errors verbatim, others with their type."""
    if isinstance(exc, GeokdError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return f"invalid job spec: {exc}"
    return f"{type(exc).__name__}: {exc}"


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_TAIL_LINES) -> list[str]:
    text = "".join(traceback.format_exception(exc)).rstrip("\n")
    return text.splitlines()[-lines:]


def run_claimed_job(job_id: str, settings: Settings, client: WorkerApiClient | None = None) -> str:
    """Run one delivery of ``job_id``; returns the outcome (see module docstring)."""
    own_client = client is None
    client = client or WorkerApiClient(settings.api_url, settings.worker_token)
    try:
        try:
            claim = call_with_retry(lambda: client.claim(job_id, worker_name()))
        except LeaseLost as exc:
            log.info("job %s not claimable (%s): duplicate delivery, finished or cancelled", job_id, exc)
            return "duplicate"
        except JobNotFound:
            log.warning("job %s does not exist on %s; dropping the message", job_id, settings.api_url)
            return "unknown job"
        return _run(job_id, claim, settings, client)
    finally:
        if own_client:
            client.close()


def _run(job_id: str, claim: Claim, settings: Settings, client: WorkerApiClient) -> str:
    out_dir = settings.home / "work" / f"{job_id}-a{claim.attempt}"
    shutil.rmtree(out_dir, ignore_errors=True)  # a fresh directory per attempt: no stale state
    out_dir.mkdir(parents=True)
    try:
        return _attempt(job_id, claim, settings, client, out_dir)
    finally:  # everything worth keeping was uploaded (checkpoint, artifacts) or logged
        shutil.rmtree(out_dir, ignore_errors=True)


def _attempt(job_id: str, claim: Claim, settings: Settings, client: WorkerApiClient, out_dir: Path) -> str:
    # The sink's thread heartbeats from here until close(): through checkpoint download, the run
    # and the artifact uploads, so a slow upload never looks like a dead worker to the reaper.
    sink = ApiEventSink(client, job_id, claim.lease, out_dir,
                        heartbeat_interval_s=settings.heartbeat_interval_s).start()
    threads = torch_threads()
    where = worker_name() + (f" ({threads} CPU thread{'s' * (threads != 1)})" if threads else "")
    sink.emit(_log("INFO", f"attempt {claim.attempt} started on {where}"))
    restore = _stop_on_sigterm(sink)
    try:
        spec = JobSpec.model_validate(claim.spec)
        resumed = _download_checkpoint(client, job_id, claim, out_dir, sink)
        from geokd_core.run import run_job  # the engine (and torch) load only in the job process

        result = run_job(spec, out_dir, callbacks=[sink], resume=resumed or claim.resume)
        restore()
        if sink.lease_lost:
            sink.close()
            return "lease lost"
        if result.status == "stopped" and not sink.cancel_requested:
            sink.emit(_log("WARNING", f"stopped at step {result.step} ({sink.stop_reason or 'engine'}); "
                                      "the final checkpoint is uploaded and the job will be re-queued"))
            sink.close()
            return "released"
        status = "CANCELLED" if result.status == "stopped" else "SUCCEEDED"
        if status == "SUCCEEDED":
            _publish(client, job_id, claim, out_dir, {**sink.artifacts, **result.artifacts})
    except LeaseLost:
        sink.close()
        return "lease lost"
    except Exception as exc:  # every failure ends FAILED, never stuck in RUNNING
        restore()
        return _fail(job_id, claim, client, sink, exc)
    sink.emit(_log("INFO", f"{status.lower()} at step {result.step}"))
    if not sink.close():
        return _finish(client, job_id, claim, "FAILED", "events could not be delivered to the API", {})
    return _finish(client, job_id, claim, status, None, json_safe(result.final_metrics))


def _publish(client: WorkerApiClient, job_id: str, claim: Claim, out_dir: Path, declared: dict[str, Path]) -> None:
    files = collect_artifacts(out_dir, declared, out_dir / ".artifacts")
    for name, path in files.items():
        call_with_retry(lambda n=name, p=path: client.put_artifact(job_id, claim.lease, n, p))


def _download_checkpoint(client: WorkerApiClient, job_id: str, claim: Claim, out_dir: Path,
                         sink: ApiEventSink) -> bool:
    if not (claim.resume or claim.attempt > 1):
        return False
    tar_path = out_dir / ".upload" / "resume.tar"
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    if not call_with_retry(lambda: client.get_checkpoint(job_id, claim.lease, tar_path)):
        sink.emit(_log("INFO", "no checkpoint uploaded yet: starting from scratch"))
        return False
    extract_checkpoint(tar_path, out_dir)
    tar_path.unlink()
    sink.emit(_log("INFO", f"resuming attempt {claim.attempt} from the last uploaded checkpoint"))
    return True


def _fail(job_id: str, claim: Claim, client: WorkerApiClient, sink: ApiEventSink, exc: BaseException) -> str:
    error = readable_error(exc)
    log.error("job %s failed: %s", job_id, error)
    sink.emit(_log("ERROR", error))
    for line in traceback_tail(exc):
        sink.emit(_log("ERROR", line))
    sink.close()
    if sink.lease_lost:
        return "lease lost"
    return _finish(client, job_id, claim, "FAILED", error, {})


def _finish(client: WorkerApiClient, job_id: str, claim: Claim, status: str, error: str | None,
            summary: dict[str, Any]) -> str:
    try:
        call_with_retry(lambda: client.finish(job_id, claim.lease, status, error, summary))
    except LeaseLost:
        return "lease lost"
    except ApiUnavailable:
        # Heartbeats have stopped: the reaper re-queues the job, which resumes from its checkpoint.
        log.error("job %s: could not report %s to the API; leaving it to the reaper", job_id, status)
        return "finish not delivered"
    return status


def _log(level: str, message: str) -> Event:
    return Event(type=EventType.LOG, data={"level": level, "message": message})


def _stop_on_sigterm(sink: ApiEventSink):  # noqa: ANN202 - returns the restore function
    """While the job runs, SIGTERM asks it to checkpoint and stop instead of killing it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sink.request_stop("worker shutdown"))
    return lambda: signal.signal(signal.SIGTERM, previous)
