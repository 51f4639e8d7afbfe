"""The worker ↔ API protocol (``/api/v1/worker``): lease, events, heartbeat, files, finish.

Workers authenticate with ``GEOKD_WORKER_TOKEN`` (or an admin key). Every call after ``claim``
carries the lease; a call with a lost lease gets 409 and the worker must stop.
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session

from api import ingest, storage
from api import lease as leasing
from api.deps import SessionDep, SettingsDep, worker_auth
from api.models import Artifact
from geokd_core.events import Event

router = APIRouter(prefix="/worker/jobs", tags=["worker"], dependencies=[Depends(worker_auth)])

MAX_STEP = 2**62  # fits a signed 64-bit column on every backend
Lease = Annotated[str, Query(min_length=1, max_length=64, description="The token `claim` returned")]
CONFLICT: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid worker token"},
    404: {"description": "No such job"},
    409: {"description": "The lease is not (or no longer) held by this worker"},
}


class ClaimIn(BaseModel):
    worker: str = Field(min_length=1, max_length=200, description="`host:pid` of the worker process")


class ClaimOut(BaseModel):
    lease: str
    attempt: int
    spec: dict[str, Any]
    resume: bool


class LeaseIn(BaseModel):
    lease: str = Field(min_length=1, max_length=64)


class EventsIn(LeaseIn):
    events: list[Event] = Field(max_length=10_000)

    @field_validator("events")
    @classmethod
    def _storable(cls, events: list[Event]) -> list[Event]:
        for e in events:
            if e.step > MAX_STEP:
                raise ValueError(f"step {e.step} is larger than {MAX_STEP}")
            if not math.isfinite(e.ts):
                raise ValueError("ts must be a finite number of seconds since the epoch")
        return events


class FinishIn(LeaseIn):
    status: Literal["SUCCEEDED", "FAILED", "CANCELLED"]
    error: str | None = Field(default=None, max_length=100_000)
    summary: dict[str, Any] = Field(default_factory=dict)


class CancelFlag(BaseModel):
    cancel_requested: bool


class Finished(BaseModel):
    status: str


def _guard(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except leasing.NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"job {exc} not found") from exc


@router.post("/{job_id}/claim", response_model=ClaimOut, summary="Lease a job to this worker", responses=CONFLICT)
def claim(job_id: uuid.UUID, body: ClaimIn, session: SessionDep, settings: SettingsDep) -> ClaimOut:
    has_ckpt = storage.checkpoint_path(settings, str(job_id)).exists()
    got = _guard(leasing.claim, session, str(job_id), body.worker, settings.stale_after_s, has_ckpt)
    return ClaimOut(lease=got.lease, attempt=got.job.attempt, spec=got.job.spec, resume=got.resume)


@router.post(
    "/{job_id}/events",
    response_model=CancelFlag,
    summary="Append a batch of events (also a heartbeat)",
    description="Stored in one transaction; a re-sent batch is stored once.",
    responses=CONFLICT,
)
def post_events(job_id: uuid.UUID, body: EventsIn, session: SessionDep) -> CancelFlag:
    return CancelFlag(cancel_requested=_guard(ingest.ingest, session, str(job_id), body.lease, body.events))


@router.post("/{job_id}/heartbeat", response_model=CancelFlag, summary="Keep the lease alive", responses=CONFLICT)
def heartbeat(job_id: uuid.UUID, body: LeaseIn, session: SessionDep) -> CancelFlag:
    return CancelFlag(cancel_requested=_guard(leasing.heartbeat, session, str(job_id), body.lease))


@router.post("/{job_id}/finish", response_model=Finished, summary="Record the final status", responses=CONFLICT)
def finish(job_id: uuid.UUID, body: FinishIn, session: SessionDep) -> Finished:
    summary = ingest.finite(body.summary)
    job = _guard(leasing.finish, session, str(job_id), body.lease, body.status, body.error, summary)
    return Finished(status=job.status)


async def _upload(request: Request, session: Session, job_id: str, lease_token: str, name: str) -> int:
    _guard(leasing.require_lease, session, job_id, lease_token)
    session.close()  # the upload may take minutes: release the connection
    dest = storage.job_dir(request.app.state.settings, job_id) / name
    return await storage.save_stream(request.stream(), dest)


@router.put(
    "/{job_id}/checkpoint",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Upload the latest checkpoint (tar, raw body)",
    responses=CONFLICT,
)
async def put_checkpoint(job_id: uuid.UUID, lease: Lease, request: Request, session: SessionDep) -> None:
    await _upload(request, session, str(job_id), lease, storage.CHECKPOINT_NAME)


@router.get(
    "/{job_id}/checkpoint",
    summary="Download the latest checkpoint",
    response_class=FileResponse,
    responses={**CONFLICT, 200: {"content": {"application/x-tar": {}}}, 404: {"description": "No checkpoint"}},
)
def get_checkpoint(job_id: uuid.UUID, lease: Lease, session: SessionDep, settings: SettingsDep) -> FileResponse:
    _guard(leasing.require_lease, session, str(job_id), lease)
    path = storage.checkpoint_path(settings, str(job_id))
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"job {job_id} has no checkpoint")
    return FileResponse(path, media_type="application/x-tar", filename="checkpoint.tar")


@router.put(
    "/{job_id}/artifacts/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Upload an artifact file (raw body)",
    responses={**CONFLICT, 422: {"description": "Invalid artifact name"}},
)
async def put_artifact(job_id: uuid.UUID, name: str, lease: Lease, request: Request, session: SessionDep) -> None:
    if not storage.valid_name(name):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"loc": ["path", "name"], "msg": "letters, digits, '.', '_', '-' only", "type": "value_error"}],
        )
    size = await _upload(request, session, str(job_id), lease, name)
    path = storage.job_dir(request.app.state.settings, str(job_id)) / name
    with Session(request.app.state.engine) as s:
        row = {"job_id": str(job_id), "name": name, "path": str(path), "size": size}
        ingest.upsert(s, Artifact, [row], ["job_id", "name"], ["path", "size"])
        s.commit()
