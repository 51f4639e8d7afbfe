"""Read-side queries over what the events fanned out into: metrics, Grams, evals, logs."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from api.models import (
    EvalPublic,
    EvalResult,
    EventRow,
    GramPublic,
    GramSnapshot,
    LogLine,
    MetricPoint,
    MetricsPublic,
    Series,
)
from geokd_core.events import EventType


def metrics(session: Session, job_id: str, since: int | None, series: list[str] | None) -> MetricsPublic:
    """Every point with ``step > since`` (exclusive), grouped by series and sorted by step."""
    q = select(MetricPoint.series, MetricPoint.step, MetricPoint.value).where(MetricPoint.job_id == job_id)
    if since is not None:
        q = q.where(MetricPoint.step > since)
    if series:
        q = q.where(col(MetricPoint.series).in_(series))
    out: dict[str, Series] = {}
    last: int | None = since
    for name, step, value in session.exec(q.order_by(col(MetricPoint.series), col(MetricPoint.step))).all():
        s = out.setdefault(name, Series(steps=[], values=[]))
        s.steps.append(step)
        s.values.append(value)
        last = step if last is None else max(last, step)
    return MetricsPublic(series=out, last_step=last)


def difference(
    teacher: list[list[float | None]], student: list[list[float | None]]
) -> list[list[float | None]]:
    """Elementwise teacher − student of two (k, k) Grams; null where either is null.

    Mismatched shapes are cut to the common part (the engine always sends equal shapes).
    """
    return [
        [None if t is None or s is None else t - s for t, s in zip(tr, sr, strict=False)]
        for tr, sr in zip(teacher, student, strict=False)
    ]


def gram(session: Session, job_id: str, layer: str | None, step: int | None) -> GramPublic | None:
    """The Gram snapshot of ``layer`` at ``step`` (defaults: first layer, latest step) or None."""
    layers = sorted(
        session.exec(select(GramSnapshot.layer).where(GramSnapshot.job_id == job_id).distinct()).all()
    )
    if not layers:
        return None
    layer = layer if layer is not None else layers[0]
    steps = list(
        session.exec(
            select(GramSnapshot.step)
            .where(GramSnapshot.job_id == job_id, GramSnapshot.layer == layer)
            .order_by(col(GramSnapshot.step))
        ).all()
    )
    if not steps:
        return None
    step = steps[-1] if step is None else step
    row = session.exec(
        select(GramSnapshot).where(
            GramSnapshot.job_id == job_id, GramSnapshot.layer == layer, GramSnapshot.step == step
        )
    ).first()
    if row is None:
        return None
    return GramPublic(
        layers=layers,
        steps=steps,
        layer=layer,
        step=step,
        teacher=row.teacher,
        student=row.student,
        difference=difference(row.teacher, row.student),
    )


def latest_event(session: Session, job_id: str, type_: EventType) -> dict[str, Any] | None:
    row = session.exec(
        select(EventRow)
        .where(EventRow.job_id == job_id, EventRow.type == type_.value)
        .order_by(col(EventRow.seq).desc())
        .limit(1)
    ).first()
    return None if row is None else row.data


def evals(session: Session, job_id: str) -> list[EvalPublic]:
    rows = session.exec(
        select(EvalResult).where(EvalResult.job_id == job_id).order_by(col(EvalResult.step), col(EvalResult.id))
    ).all()
    return [EvalPublic(step=r.step, split=r.split, task=r.task, metrics=r.metrics) for r in rows]


def logs(session: Session, job_id: str, tail: int) -> list[LogLine]:
    """The last ``tail`` log events, oldest first."""
    rows = session.exec(
        select(EventRow)
        .where(EventRow.job_id == job_id, EventRow.type == EventType.LOG.value)
        .order_by(col(EventRow.seq).desc())
        .limit(tail)
    ).all()
    return [
        LogLine(ts=r.ts, level=str(r.data.get("level") or "INFO"), message=str(r.data.get("message") or ""))
        for r in reversed(rows)
    ]


def events_after(session: Session, job_id: str, after: int, limit: int = 500) -> list[EventRow]:
    """Events of ``job_id`` with ``seq > after`` in order (one SSE poll)."""
    return list(
        session.exec(
            select(EventRow)
            .where(EventRow.job_id == job_id, col(EventRow.seq) > after)
            .order_by(col(EventRow.seq))
            .limit(limit)
        ).all()
    )
