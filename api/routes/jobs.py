"""Job resources: submit, validate, list, read, cancel, retry, delete."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool

from api import crud
from api.deps import CurrentUser, QueueDep, SessionDep, SettingsDep
from api.models import Job, JobCreate, JobPublic, JobsPublic, ValidationResult
from api.queue import PreflightTimeout, Queue
from api.validation import spec_problems
from geokd_core.spec import JobSpec, JobStatus

log = logging.getLogger("geokd.api")
router = APIRouter(prefix="/jobs", tags=["jobs"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
    404: {"description": "No such job (or not yours)"},
}


def enqueue(session: Any, queue: Queue, job: Job) -> None:
    """Send the job to the broker; if the broker is down the reaper sends it later."""
    try:
        queue.enqueue(job.id, job.spec)
    except Exception as exc:  # the job is safe in the store; never lose the submission over this
        log.warning("could not enqueue job %s (%s); the reaper will retry", job.id, exc)
        return
    crud.mark_enqueued(session, job.id)


def job_or_404(session: Any, job_id: uuid.UUID, who: Any) -> Job:
    job = crud.visible_job(session, str(job_id), who)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"job {job_id} not found")
    return job


def _refuse_problems(spec: JobSpec, settings: Any) -> None:
    problems = spec_problems(spec, settings)
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problems)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobPublic,
    summary="Submit a job",
    description="Validate the spec (schema, this server's limits, local paths inside the allowed roots), "
    "store it QUEUED and hand it to a worker. With `Idempotency-Key`, a repeated request returns the "
    "job the first one created (status 200) instead of a new one; the same key with another spec is 409.",
    responses={
        **ERRORS,
        200: {"model": JobPublic, "description": "Idempotent retry: the existing job"},
        409: {"description": "The Idempotency-Key was used before with a different spec"},
    },
)
def submit_job(
    spec: JobSpec,
    who: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200, min_length=1)] = None,
) -> Job:
    _refuse_problems(spec, settings)
    raw = spec.model_dump(mode="json")
    job, created = crud.create_job(
        session,
        JobCreate(name=spec.name, kind=spec.kind.value, spec=raw, owner=who.owner, idempotency_key=idempotency_key),
    )
    if created:
        enqueue(session, queue, job)
    elif job.spec != raw:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"Idempotency-Key {idempotency_key!r} was already used for job {job.id} with a different spec",
        )
    else:
        response.status_code = status.HTTP_200_OK
    return job


@router.post(
    "/validate",
    response_model=ValidationResult,
    summary="Validate a spec without submitting it",
    description="Schema, limits and path checks; with `preflight=true` a worker also resolves the models "
    "and data, checks the layer mapping and runs one step on a tiny batch (504 if no worker answers "
    "within `GEOKD_PREFLIGHT_TIMEOUT_S`). Problems come back as 422 in FastAPI's error shape.",
    responses={401: ERRORS[401], 504: {"description": "No worker answered the preflight in time"}},
)
async def validate_job(
    spec: JobSpec,
    who: CurrentUser,
    settings: SettingsDep,
    queue: QueueDep,
    preflight: bool = False,
) -> ValidationResult:
    await run_in_threadpool(_refuse_problems, spec, settings)
    if preflight:
        try:
            found = await run_in_threadpool(
                queue.preflight, spec.model_dump(mode="json"), settings.preflight_timeout_s
            )
        except PreflightTimeout as exc:
            raise HTTPException(
                status.HTTP_504_GATEWAY_TIMEOUT,
                detail=f"no worker answered the preflight within {settings.preflight_timeout_s:g} s; "
                "is a worker running for this spec's device queue?",
            ) from exc
        except Exception as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"preflight failed: {exc}") from exc
        if found:
            detail = [{"loc": ["body", *p.get("loc", [])], "msg": p.get("msg", ""), "type": "preflight"} for p in found]
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)
    return ValidationResult(valid=True, problems=[])


@router.get(
    "",
    response_model=JobsPublic,
    summary="List jobs",
    description="Newest first. Non-admins see only their own jobs; `name` matches a substring.",
    responses={401: ERRORS[401]},
)
def list_jobs(
    who: CurrentUser,
    session: SessionDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> JobsPublic:
    rows, total = crud.list_jobs(
        session, who, status=status_.value if status_ else None, owner=owner, name=name, limit=limit, offset=offset
    )
    return JobsPublic(items=[JobPublic.model_validate(r, from_attributes=True) for r in rows], total=total)


@router.get("/{job_id}", response_model=JobPublic, summary="Get a job", responses=ERRORS)
def get_job(job_id: uuid.UUID, who: CurrentUser, session: SessionDep) -> Job:
    return job_or_404(session, job_id, who)


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    summary="Cancel a job",
    description="A QUEUED job becomes CANCELLED at once (it never starts); a RUNNING one gets "
    "`cancel_requested=true`, checkpoints and ends CANCELLED within seconds. 409 if already finished.",
    responses={**ERRORS, 409: {"description": "The job has already finished"}},
)
def cancel_job(job_id: uuid.UUID, who: CurrentUser, session: SessionDep) -> Job:
    job = job_or_404(session, job_id, who)
    return crud.cancel_job(session, job)


@router.post(
    "/{job_id}/retry",
    response_model=JobPublic,
    summary="Retry a failed or cancelled job",
    description="Back to QUEUED with `attempt + 1`; the worker resumes from the last uploaded checkpoint.",
    responses={**ERRORS, 409: {"description": "The job is not FAILED or CANCELLED"}},
)
def retry_job(job_id: uuid.UUID, who: CurrentUser, session: SessionDep, queue: QueueDep) -> Job:
    job = job_or_404(session, job_id, who)
    job = crud.retry_job(session, job)
    enqueue(session, queue, job)
    session.refresh(job)
    return job


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a finished job and its artifacts",
    responses={**ERRORS, 409: {"description": "The job has not finished"}},
)
def delete_job(job_id: uuid.UUID, who: CurrentUser, session: SessionDep, settings: SettingsDep) -> Response:
    job = job_or_404(session, job_id, who)
    crud.delete_job(session, job, settings.resolved_artifact_dir())
    return Response(status_code=status.HTTP_204_NO_CONTENT)
