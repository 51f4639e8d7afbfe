"""Fan a worker's event batch out into the store, in one transaction with the lease heartbeat.

The batch is appended to the event log (what SSE replays) and also lands in the query tables:
metric points (upserted on (job, series, step), so a resumed attempt that re-emits a step
overwrites it), Gram snapshots, eval results and the job's progress.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from api.lease import raise_lost, touch
from api.models import EvalResult, EventRow, GramSnapshot, Job, MetricPoint
from geokd_core.events import Event, EventType


def finite(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by None (JSON has no spelling for them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def upsert(session: Session, model: type, rows: list[dict[str, Any]], keys: list[str], update: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE the ``update`` columns (SQLite/Postgres; else delete + insert)."""
    if not rows:
        return
    name = session.get_bind().dialect.name
    dialect_insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(name)
    if dialect_insert is None:  # portable fallback: delete the keys, then insert
        for r in rows:
            session.execute(delete(model).where(*[getattr(model, k) == r[k] for k in keys]))
        session.bulk_insert_mappings(model, rows)  # type: ignore[arg-type]
        return
    stmt = dialect_insert(model)
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_={c: getattr(stmt.excluded, c) for c in update})
    session.execute(stmt, rows)


def ingest(session: Session, job_id: str, lease: str, events: list[Event]) -> bool:
    """Store ``events`` under ``lease``; returns the job's ``cancel_requested``.

    Raises:
        Conflict: the lease is no longer held (the job was re-queued or finished).
    """
    progress = next((_progress(e) for e in reversed(events) if e.type == EventType.PROGRESS), None)
    extra = {"progress": progress} if progress is not None else {}
    if not touch(session, job_id, lease, extra):
        session.rollback()
        raise_lost(session, job_id)

    metrics: dict[tuple[str, int], float | None] = {}
    grams: dict[tuple[str, int], dict[str, Any]] = {}
    seen = _already_stored(session, job_id, events)
    for ev in events:
        if (ev.type.value, ev.step, ev.ts) in seen:
            continue  # a re-sent batch (the worker never saw our answer): store each event once
        data = finite(ev.data)
        session.add(EventRow(job_id=job_id, type=ev.type.value, step=ev.step, data=data, ts=ev.ts))
        if ev.type == EventType.METRIC:
            for series, value in (data.get("values") or {}).items():
                metrics[(str(series)[:300], ev.step)] = value if isinstance(value, int | float) else None
        elif ev.type == EventType.GRAM and "layer" in data and _matrix(data.get("teacher")) and _matrix(data.get("student")):
            grams[(str(data["layer"])[:100], ev.step)] = data
        elif ev.type == EventType.EVAL:
            _replace_eval(session, job_id, ev.step, data)
    upsert(
        session,
        MetricPoint,
        [{"job_id": job_id, "series": s, "step": st, "value": v} for (s, st), v in metrics.items()],
        ["job_id", "series", "step"],
        ["value"],
    )
    upsert(
        session,
        GramSnapshot,
        [
            {"job_id": job_id, "layer": layer, "step": st, "teacher": d.get("teacher") or [], "student": d.get("student") or []}
            for (layer, st), d in grams.items()
        ],
        ["job_id", "layer", "step"],
        ["teacher", "student"],
    )
    session.commit()
    job = session.get(Job, job_id)
    assert job is not None
    session.refresh(job)
    return job.cancel_requested


def _progress(ev: Event) -> dict[str, Any]:
    """The job's ``progress`` column from a progress event (malformed fields are dropped)."""
    d = finite(ev.data)
    out: dict[str, Any] = {"step": d["step"] if isinstance(d.get("step"), int) else ev.step}
    out["total_steps"] = d["total_steps"] if isinstance(d.get("total_steps"), int) else None
    if isinstance(d.get("epoch"), int | float):
        out["epoch"] = d["epoch"]
    return out


def _matrix(m: Any) -> bool:
    """A list of rows of numbers (or null where a value was non-finite)."""
    return isinstance(m, list) and all(
        isinstance(r, list) and all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in r)
        for r in m
    )


def _already_stored(session: Session, job_id: str, events: list[Event]) -> set[tuple[str, int, float]]:
    if not events:
        return set()
    since = min(e.ts for e in events)
    rows = session.exec(
        select(EventRow.type, EventRow.step, EventRow.ts).where(EventRow.job_id == job_id, EventRow.ts >= since)
    ).all()
    return {(t, s, ts) for t, s, ts in rows}


def _replace_eval(session: Session, job_id: str, step: int, data: dict[str, Any]) -> None:
    split = str(data.get("split") or "dev")[:100]
    task = data.get("task")
    task = None if task is None else str(task)[:100]
    session.execute(
        delete(EvalResult).where(
            col(EvalResult.job_id) == job_id,
            col(EvalResult.step) == step,
            col(EvalResult.split) == split,
            col(EvalResult.task).is_(None) if task is None else col(EvalResult.task) == task,
        )
    )
    metrics = data.get("metrics")
    session.add(EvalResult(job_id=job_id, step=step, split=split, task=task, metrics=metrics if isinstance(metrics, dict) else {}))
