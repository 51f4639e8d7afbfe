"""The Celery app, built from ``Settings``; light enough for the API to import (no torch, no engine).

The API only sends tasks by name (``geokd.run_job``, ``geokd.preflight``); the worker process
imports ``worker.tasks`` through ``include`` when it starts, so task code (and the engine behind
it) never loads in the API.

Reliability choices (see docs/DESIGN.md and the Celery notes in shared/NOTES.md):
- ``task_acks_late=False``: ack on start. A long job left unacknowledged is redelivered by Redis
  after the visibility timeout and would run twice; crash recovery is the API's lease + reaper.
- ``worker_prefetch_multiplier=1`` and ``worker_disable_prefetch``: a busy worker holds no
  second message that would die with it.
- ``worker_max_tasks_per_child=1``: a fresh child per job, which releases GPU memory.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Queue

from geokd_core.settings import Settings

RUN_JOB = "geokd.run_job"
PREFLIGHT = "geokd.preflight"
QUEUES: tuple[str, ...] = ("cpu", "gpu")

# How often the embedded (SQLite) broker is polled for new messages; the kombu default is 1 s.
EMBEDDED_POLLING_INTERVAL_S = 0.05


def broker_url(settings: Settings) -> str:
    """The configured broker, or the embedded SQLite one under ``settings.home``."""
    return settings.broker_url or f"sqla+sqlite:///{settings.home / 'broker.db'}"


def result_backend(settings: Settings) -> str:
    """Explicit backend, else Redis when the broker is Redis, else SQLite next to the broker DB.

    Deriving the SQLite path from the broker's keeps the API and a worker with different homes
    (but one ``sqla+sqlite`` broker URL) on the same result store.
    """
    if settings.result_backend:
        return settings.result_backend
    url = broker_url(settings)
    if url.startswith(("redis://", "rediss://")):
        return url
    if url.startswith("sqla+sqlite:///"):
        return f"db+sqlite:///{Path(url.removeprefix('sqla+sqlite:///')).parent / 'results.db'}"
    return f"db+sqlite:///{settings.home / 'results.db'}"


def queue_for(device: str) -> str:
    """Queue of a job by its spec's ``train.device`` (``auto`` runs on CPU workers)."""
    return "gpu" if device == "cuda" else "cpu"


def make_celery(settings: Settings) -> Celery:
    """Build the Celery app for ``settings`` (embedded SQLite broker when no broker URL is set)."""
    url = broker_url(settings)
    if url.startswith("sqla+"):
        settings.home.mkdir(parents=True, exist_ok=True)
        if url.startswith("sqla+sqlite:///"):
            Path(url.removeprefix("sqla+sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        _tune_sqlalchemy_transport()
    app = Celery("geokd", broker=url, backend=result_backend(settings), include=["worker.tasks"])
    app.conf.update(
        task_acks_late=False,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_max_tasks_per_child=1,
        task_queues=[Queue(q) for q in QUEUES],
        task_default_queue="cpu",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        # Keep trying while Redis restarts (None = forever) instead of giving up after 100 tries.
        broker_connection_max_retries=None,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app


def _tune_sqlalchemy_transport() -> None:
    # Passing `polling_interval` in broker_transport_options crashes (kombu hands those options
    # to sqlalchemy.create_engine); the class attribute is the supported knob.
    from kombu.transport.sqlalchemy import Channel, Transport

    Transport.polling_interval = EMBEDDED_POLLING_INTERVAL_S
    _fork_outside_sqlite(Channel)


# A process forked while another of its threads is inside SQLite inherits SQLite's allocator mutex
# locked, and hangs at its first SQLite call. With the embedded broker the worker's main thread
# polls SQLite every 50 ms while billiard's supervisor thread forks a fresh child after each job
# (max_tasks_per_child=1); such a child ran its job, then hung in `sqlite3Malloc` storing the
# result, and the worker silently lost a slot (seen once in ≈ 35 jobs of a reproduction; 8 of
# 2000 forks in tests/worker/test_fork_safety.py without this). Forks wait until the broker's
# SQLite calls are done, and broker calls wait while a fork is in progress.
_SQLITE_FORK_LOCK = threading.RLock()
_CHANNEL_DB_METHODS = ("_open", "_get_or_create", "_new_queue", "_put", "_get", "_query_all", "_purge", "_size",
                       "close")


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _SQLITE_FORK_LOCK:
            return method(*args, **kwargs)

    return call


def _fork_outside_sqlite(channel_cls: type) -> None:
    """Make the kombu SQLAlchemy channel's database calls and ``os.fork`` mutually exclusive (once)."""
    if getattr(channel_cls, "__geokd_fork_locked__", False):
        return
    for name in _CHANNEL_DB_METHODS:
        if hasattr(channel_cls, name):
            setattr(channel_cls, name, _locked(getattr(channel_cls, name)))
    channel_cls.__geokd_fork_locked__ = True  # type: ignore[attr-defined]
    os.register_at_fork(before=_SQLITE_FORK_LOCK.acquire, after_in_parent=_SQLITE_FORK_LOCK.release,
                        after_in_child=_SQLITE_FORK_LOCK.release)
