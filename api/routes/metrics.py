"""Per-job results: metric series, Gram matrices, layer similarity, evals and logs."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from api import reads
from api.deps import CurrentUser, SessionDep
from api.models import EvalsPublic, GramPublic, LogsPublic, MetricsPublic
from api.routes.jobs import ERRORS, job_or_404
from geokd_core.events import EventType

router = APIRouter(prefix="/jobs", tags=["results"])

Step = Annotated[int, Query(ge=-1, le=2**62)]


@router.get(
    "/{job_id}/metrics",
    response_model=MetricsPublic,
    summary="Metric series",
    description="Every logged series (`train/loss`, `align/s3-t6/procrustes`, ...) as step/value lists. "
    "`since` is exclusive: poll with `since=<last_step>` to fetch only new points. `series` is a "
    "comma-separated filter. Non-finite values are null.",
    responses=ERRORS,
)
def get_metrics(
    job_id: uuid.UUID,
    who: CurrentUser,
    session: SessionDep,
    since: Step | None = None,
    series: Annotated[str | None, Query(max_length=10_000)] = None,
) -> MetricsPublic:
    job = job_or_404(session, job_id, who)
    wanted = [s for s in (series or "").split(",") if s] or None
    return reads.metrics(session, job.id, since, wanted)


@router.get(
    "/{job_id}/gram",
    response_model=GramPublic,
    summary="Gram matrices of the probe batch",
    description="Teacher, student and difference (teacher − student) k × k cosine Grams for one layer "
    "pair and step (defaults: first layer pair, latest step), plus the available layers and steps.",
    responses={**ERRORS, 404: {"description": "No such job, or no Gram snapshot for that layer/step"}},
)
def get_gram(
    job_id: uuid.UUID,
    who: CurrentUser,
    session: SessionDep,
    layer: Annotated[str | None, Query(max_length=100)] = None,
    step: Step | None = None,
) -> GramPublic:
    job = job_or_404(session, job_id, who)
    out = reads.gram(session, job.id, layer, step)
    if out is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no Gram snapshot for that layer/step")
    return out


@router.get(
    "/{job_id}/layer-similarity",
    response_model=dict[str, Any],
    summary="Latest teacher×student layer similarity matrix",
    description="The most recent `layer_similarity` event payload: `metric`, `teacher_layers`, "
    "`student_layers`, `matrix` (rows = teacher layers).",
    responses={**ERRORS, 404: {"description": "No such job, or no layer similarity yet"}},
)
def get_layer_similarity(job_id: uuid.UUID, who: CurrentUser, session: SessionDep) -> dict[str, Any]:
    job = job_or_404(session, job_id, who)
    data = reads.latest_event(session, job.id, EventType.LAYER_SIMILARITY)
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no layer similarity recorded yet")
    return data


@router.get("/{job_id}/evals", response_model=EvalsPublic, summary="Evaluation results", responses=ERRORS)
def get_evals(job_id: uuid.UUID, who: CurrentUser, session: SessionDep) -> EvalsPublic:
    job = job_or_404(session, job_id, who)
    return EvalsPublic(items=reads.evals(session, job.id))


@router.get(
    "/{job_id}/logs",
    response_model=LogsPublic,
    summary="Log lines",
    description="The last `tail` log lines, oldest first.",
    responses=ERRORS,
)
def get_logs(
    job_id: uuid.UUID, who: CurrentUser, session: SessionDep, tail: Annotated[int, Query(ge=1, le=10_000)] = 200
) -> LogsPublic:
    job = job_or_404(session, job_id, who)
    return LogsPublic(lines=reads.logs(session, job.id, tail))
