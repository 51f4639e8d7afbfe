"""The worker side of a job's life: claim a lease, prove it on every call, finish, or be reaped.

A lease is a random token written by one conditional UPDATE; only the holder may post events or
finish. That is what keeps a job running at most once when the broker redelivers a message.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from sqlalchemy import and_, case, or_, update
from sqlmodel import Session, col, select

from api.crud import Conflict, add_status_event
from api.models import Job, utcnow
from geokd_core.spec import JobStatus

RUNNING = JobStatus.RUNNING.value
QUEUED = JobStatus.QUEUED.value


class NotFound(Exception):
    """No such job (→ 404)."""


@dataclass(frozen=True)
class Claim:
    job: Job
    lease: str
    resume: bool


def claim(session: Session, job_id: str, worker: str, stale_after_s: float, has_checkpoint: bool) -> Claim:
    """Lease ``job_id`` to ``worker`` if it is QUEUED, or RUNNING under a lease that went stale.

    Raises:
        NotFound: no such job.
        Conflict: finished, cancelled, or leased by a live worker (a duplicate delivery).
    """
    now = utcnow()
    stale_before = now - timedelta(seconds=stale_after_s)
    takeover = and_(
        Job.status == RUNNING, or_(col(Job.heartbeat_at).is_(None), col(Job.heartbeat_at) < stale_before)
    )
    token = secrets.token_hex(16)
    res = session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.cancel_requested).is_(False), or_(Job.status == QUEUED, takeover))
        .values(
            status=RUNNING,
            lease=token,
            worker=worker,
            heartbeat_at=now,
            started_at=case((col(Job.started_at).is_(None), now), else_=Job.started_at),
            # Taking over a stale lease is a new attempt (the reaper would have counted it too).
            attempt=case((Job.status == RUNNING, Job.attempt + 1), else_=Job.attempt),
        )
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(job_id)
        why = "a cancel was requested" if job.cancel_requested else f"it is {job.status}"
        if job.status == RUNNING and not job.cancel_requested:
            why = f"it is leased by live worker {job.worker}"
        raise Conflict(f"job {job_id} cannot be claimed: {why}")
    job = session.get(Job, job_id)
    assert job is not None
    session.refresh(job)
    add_status_event(session, job, RUNNING)
    session.commit()
    return Claim(job=job, lease=token, resume=job.attempt > 1 or has_checkpoint)


def touch(session: Session, job_id: str, lease: str, values: dict[str, Any] | None = None) -> bool:
    """Heartbeat (plus ``values``) under ``lease``; False if the lease is no longer held.

    Does not commit: callers add their rows to the same transaction.
    """
    res = session.execute(
        update(Job)
        .where(col(Job.id) == job_id, Job.lease == lease, Job.status == RUNNING)
        .values(heartbeat_at=utcnow(), **(values or {}))
    )
    return res.rowcount == 1  # type: ignore[attr-defined]


def require_lease(session: Session, job_id: str, lease: str) -> Job:
    """The job if ``lease`` holds it now (read-only check for uploads/downloads)."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(job_id)
    if job.lease != lease or job.status != RUNNING:
        raise Conflict(f"lease on job {job_id} was lost (job is {job.status})")
    return job


def heartbeat(session: Session, job_id: str, lease: str) -> bool:
    """Refresh the lease; returns ``cancel_requested``."""
    if not touch(session, job_id, lease):
        session.rollback()
        raise_lost(session, job_id)
    session.commit()
    job = session.get(Job, job_id)
    assert job is not None
    session.refresh(job)
    return job.cancel_requested


def raise_lost(session: Session, job_id: str) -> NoReturn:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(job_id)
    raise Conflict(f"lease on job {job_id} was lost (job is {job.status})")


def finish(
    session: Session, job_id: str, lease: str, status: str, error: str | None, summary: dict[str, Any]
) -> Job:
    """Record the final status under the lease (the lease is dropped with it)."""
    now = utcnow()
    values: dict[str, Any] = {"status": status, "finished_at": now, "error": error, "lease": None}
    if summary:
        values["summary"] = summary
    if not touch(session, job_id, lease, values):
        session.rollback()
        raise_lost(session, job_id)
    job = session.get(Job, job_id)
    assert job is not None
    session.refresh(job)
    add_status_event(session, job, status, error)
    session.commit()
    return job


def reap(session: Session, stale_after_s: float, max_attempts: int) -> list[str]:
    """Re-queue RUNNING jobs whose heartbeat is older than ``stale_after_s``.

    A job that has used ``max_attempts`` becomes FAILED with a readable error; one whose cancel
    was requested becomes CANCELLED. Returns the ids that went back to QUEUED (to enqueue).
    """
    stale_before = utcnow() - timedelta(seconds=stale_after_s)
    stale = session.exec(
        select(Job).where(
            Job.status == RUNNING,
            or_(col(Job.heartbeat_at).is_(None), col(Job.heartbeat_at) < stale_before),
        )
    ).all()
    requeued: list[str] = []
    for job in stale:
        error: str | None = None
        if job.cancel_requested:
            values: dict[str, Any] = {"status": JobStatus.CANCELLED.value, "finished_at": utcnow()}
        elif job.attempt >= max_attempts:
            error = (
                f"worker {job.worker} stopped sending heartbeats (none for {stale_after_s:g} s) "
                f"and the job has used all {max_attempts} attempts"
            )
            values = {"status": JobStatus.FAILED.value, "finished_at": utcnow(), "error": error}
        else:
            values = {"status": QUEUED, "attempt": job.attempt + 1, "enqueued_at": None}
        values.update(lease=None, worker=None)
        # Compare-and-set on the lease: a worker that just came back to life keeps its job.
        res = session.execute(
            update(Job).where(col(Job.id) == job.id, Job.lease == job.lease, Job.status == RUNNING).values(**values)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            continue
        session.refresh(job)
        add_status_event(session, job, job.status, error)
        if job.status == QUEUED:
            requeued.append(job.id)
    session.commit()
    return requeued


def unsent(session: Session, min_age_s: float) -> list[Job]:
    """QUEUED jobs the broker never accepted (enqueue failed), older than ``min_age_s``."""
    before = utcnow() - timedelta(seconds=min_age_s)
    return list(
        session.exec(
            select(Job).where(Job.status == QUEUED, col(Job.enqueued_at).is_(None), Job.created_at < before)
        ).all()
    )
