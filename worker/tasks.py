"""Celery tasks: thin wrappers that receive ids (or a spec dict) and call logic that lives elsewhere.

Imported only by the worker (through the app's ``include``), never by the API.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_init, worker_process_init, worker_shutting_down
from pydantic import ValidationError

from geokd_core.settings import get_settings
from geokd_core.spec import JobSpec
from worker.api_client import ApiUnavailable
from worker.celery_app import PREFLIGHT, RUN_JOB
from worker.job_runner import run_claimed_job
from worker.threads import apply_threads_per_job

log = logging.getLogger(__name__)
RETRY_AFTER_S = 30
# httpx logs every request at INFO: one line per event batch would drown the worker log.
logging.getLogger("httpx").setLevel(logging.WARNING)


@shared_task(name=RUN_JOB, ignore_result=True, bind=True, max_retries=None)
def run_job(self: Task, job_id: str) -> str:
    """Run one delivery of ``job_id`` (a duplicate delivery returns ``"duplicate"`` at once)."""
    try:
        outcome = run_claimed_job(job_id, get_settings())
    except ApiUnavailable as exc:
        # The API stayed unreachable through every retry before the claim: the message was already
        # acknowledged, so put the job back on the broker rather than leave it QUEUED forever.
        log.warning("job %s: API unreachable (%s); re-sending the task in %ss", job_id, exc, RETRY_AFTER_S)
        raise self.retry(countdown=RETRY_AFTER_S, exc=exc) from exc
    log.info("job %s: %s", job_id, outcome)
    return outcome


@shared_task(name=PREFLIGHT)
def preflight(spec_json: dict[str, Any]) -> list[dict[str, Any]]:
    """Static + file-system checks and a 1-step dry run; ``[]`` when the spec can run."""
    try:
        spec = JobSpec.model_validate(spec_json)
    except ValidationError as exc:
        return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    from geokd_core.preflight import check

    settings = get_settings()
    # The API enforces the allowed roots at submit; a worker checks them again only where its own
    # roots are configured (its GEOKD_HOME is scratch space, not a data root).
    problems = check(spec, data_roots=settings.data_roots or None, model_roots=settings.model_roots or None,
                     dry_run=True)
    return [_problem_dict(p) for p in problems]


def _problem_dict(problem: Any) -> dict[str, Any]:
    if isinstance(problem, dict):
        return {"loc": list(problem.get("loc", [])), "msg": str(problem.get("msg", ""))}
    return {"loc": list(getattr(problem, "loc", [])), "msg": str(getattr(problem, "msg", problem))}


# Modules imported once in the worker's main process, so each fresh job child (max_tasks_per_child=1)
# forks with them loaded instead of paying ~3 s of imports per job. Importing torch does not
# initialise CUDA, so forking stays safe. Override with GEOKD_WORKER_PRELOAD (comma-separated, or "").
DEFAULT_PRELOAD = ",".join([
    "torch", "torch._dynamo",  # Adam imports torch._dynamo on first use: ~3 s
    "geokd_core.synthetic", "matplotlib.figure", "matplotlib.backends.backend_agg",
])


# The worker controller, kept from ``worker_init`` (main process) so that each forked job child
# can read its concurrency (resolved by then, also for ``--concurrency auto``).
_controller: Any = None


@worker_init.connect
def _preload_engine(sender: Any = None, **_: Any) -> None:
    global _controller
    _controller = sender
    for name in filter(None, os.environ.get("GEOKD_WORKER_PRELOAD", DEFAULT_PRELOAD).split(",")):
        try:
            importlib.import_module(name.strip())
        except ImportError as exc:
            log.warning("preload of %s skipped: %s", name, exc)


@worker_process_init.connect
def _share_cores(**_: Any) -> None:
    # Each job child gets its share of the cores, not all of them (see worker/threads.py).
    concurrency = getattr(_controller, "concurrency", None)
    concurrency = concurrency if isinstance(concurrency, int) and concurrency > 0 else 1
    threads = apply_threads_per_job(concurrency, get_settings().torch_threads)
    log.info("job process: %s torch threads (concurrency %s)", threads or "default", concurrency)


@worker_shutting_down.connect
def _forward_shutdown(**_: Any) -> None:
    # A warm shutdown (SIGTERM to the main process, e.g. `docker stop`) waits for running tasks.
    # Pool children ignore SIGTERM from nobody, so pass it on: a running job then checkpoints and
    # stops (job_runner installs the handler), and the reaper re-queues it for another worker.
    for pid in _child_pids(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _child_pids(pid: int) -> list[int]:
    pids: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids += [int(p) for p in children.read_text().split()]
        except OSError:
            continue
    return pids
