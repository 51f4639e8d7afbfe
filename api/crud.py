"""Job rows: create (idempotently), read with owner scoping, cancel, retry, delete.

State changes are single conditional UPDATEs (compare-and-set on the status), so two requests
racing on one job cannot both win, on SQLite or Postgres alike.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.models import Artifact, EvalResult, EventRow, GramSnapshot, Job, JobCreate, MetricPoint, utcnow
from api.security import Principal
from geokd_core.events import EventType
from geokd_core.spec import JobStatus

FINISHED = [s.value for s in JobStatus if s.finished]


class Conflict(Exception):
    """The job is not in a state that allows the request (→ 409)."""


def add_status_event(session: Session, job: Job, status: str, error: str | None = None) -> None:
    """Record a status change in the event log (it is streamed like any engine event)."""
    step = int((job.progress or {}).get("step") or 0)
    session.add(
        EventRow(
            job_id=job.id,
            type=EventType.STATUS.value,
            step=step,
            data={"status": status, "error": error, "attempt": job.attempt},
            ts=utcnow().timestamp(),
        )
    )


def create_job(session: Session, data: JobCreate) -> tuple[Job, bool]:
    """Insert a QUEUED job; with an idempotency key already used by this owner, return that job.

    Returns:
        (job, created): ``created`` is False when an earlier job with the same key was returned.
    """
    if data.idempotency_key is not None:
        existing = _by_idempotency_key(session, data.owner, data.idempotency_key)
        if existing is not None:
            return existing, False
    job = Job.model_validate(data)
    session.add(job)
    try:
        session.flush()
        add_status_event(session, job, JobStatus.QUEUED.value)
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key won the unique (owner, key) constraint.
        session.rollback()
        existing = _by_idempotency_key(session, data.owner, data.idempotency_key or "")
        if existing is None:
            raise
        return existing, False
    return job, True


def _by_idempotency_key(session: Session, owner: str, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.owner == owner, Job.idempotency_key == key)).first()


def visible_job(session: Session, job_id: str, who: Principal) -> Job | None:
    """The job if it exists and ``who`` may see it (admins see all); else None (→ 404, no leak)."""
    job = session.get(Job, job_id)
    if job is None or not (who.is_admin or job.owner == who.owner):
        return None
    return job


def list_jobs(
    session: Session,
    who: Principal,
    *,
    status: str | None = None,
    owner: str | None = None,
    name: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """Newest first. A non-admin only ever sees their own jobs, whatever ``owner`` says."""
    conds: list[Any] = []
    if not who.is_admin:
        conds.append(Job.owner == who.owner)
    if owner is not None:
        conds.append(Job.owner == owner)
    if status is not None:
        conds.append(Job.status == status)
    if name is not None:
        conds.append(col(Job.name).contains(name, autoescape=True))
    total = session.exec(select(func.count()).select_from(Job).where(*conds)).one()
    rows = session.exec(
        select(Job).where(*conds).order_by(col(Job.created_at).desc(), col(Job.id)).offset(offset).limit(limit)
    ).all()
    return list(rows), int(total)


def mark_enqueued(session: Session, job_id: str) -> None:
    session.execute(update(Job).where(col(Job.id) == job_id).values(enqueued_at=utcnow()))
    session.commit()


def _transition(session: Session, job_id: str, where: list[Any], values: dict[str, Any]) -> bool:
    res = session.execute(update(Job).where(col(Job.id) == job_id, *where).values(**values))
    return res.rowcount == 1  # type: ignore[attr-defined]


def cancel_job(session: Session, job: Job) -> Job:
    """QUEUED → CANCELLED now; RUNNING → ``cancel_requested`` (the worker stops cooperatively)."""
    now = utcnow()
    if _transition(
        session,
        job.id,
        [Job.status == JobStatus.QUEUED.value],
        {"status": JobStatus.CANCELLED.value, "cancel_requested": True, "finished_at": now},
    ):
        session.refresh(job)
        add_status_event(session, job, JobStatus.CANCELLED.value)
    elif not _transition(session, job.id, [Job.status == JobStatus.RUNNING.value], {"cancel_requested": True}):
        session.rollback()
        session.refresh(job)
        raise Conflict(f"job {job.id} is already {job.status}; only QUEUED or RUNNING jobs can be cancelled")
    session.commit()
    session.refresh(job)
    return job


def retry_job(session: Session, job: Job) -> Job:
    """FAILED/CANCELLED → QUEUED with attempt + 1; the worker resumes from the last checkpoint."""
    ok = _transition(
        session,
        job.id,
        [col(Job.status).in_([JobStatus.FAILED.value, JobStatus.CANCELLED.value])],
        {
            "status": JobStatus.QUEUED.value,
            "attempt": Job.attempt + 1,
            "error": None,
            "cancel_requested": False,
            "lease": None,
            "worker": None,
            "finished_at": None,
            "enqueued_at": None,
        },
    )
    if not ok:
        session.rollback()
        session.refresh(job)
        raise Conflict(f"job {job.id} is {job.status}; only FAILED or CANCELLED jobs can be retried")
    session.refresh(job)
    add_status_event(session, job, JobStatus.QUEUED.value)
    session.commit()
    session.refresh(job)
    return job


def delete_job(session: Session, job: Job, artifact_root: Path) -> None:
    """Remove a finished job, every row that belongs to it, and its artifact folder."""
    if job.status not in FINISHED:
        raise Conflict(f"job {job.id} is {job.status}; cancel it and wait until it has finished")
    for table in (EventRow, MetricPoint, GramSnapshot, EvalResult, Artifact):
        session.execute(delete(table).where(table.job_id == job.id))  # type: ignore[attr-defined]
    session.execute(delete(Job).where(col(Job.id) == job.id))
    session.commit()
    shutil.rmtree(artifact_root / job.id, ignore_errors=True)
