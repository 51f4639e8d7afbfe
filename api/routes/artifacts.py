"""Job artifacts (student checkpoint zip, model card, results): list and download."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse
from sqlmodel import col, select
from starlette.background import BackgroundTask

from api.deps import CurrentUser, CurrentUserOrQuery, SessionDep
from api.models import Artifact, ArtifactPublic, ArtifactsPublic
from api.routes.jobs import ERRORS, job_or_404

router = APIRouter(prefix="/jobs", tags=["artifacts"])


@router.get(
    "/{job_id}/artifacts",
    response_model=ArtifactsPublic,
    summary="List a job's artifacts",
    description="Files the worker published (e.g. `student.zip`, `model_card.md`, `results.json`).",
    responses=ERRORS,
)
def list_artifacts(job_id: uuid.UUID, who: CurrentUser, session: SessionDep) -> ArtifactsPublic:
    job = job_or_404(session, job_id, who)
    rows = session.exec(select(Artifact).where(Artifact.job_id == job.id).order_by(col(Artifact.name))).all()
    return ArtifactsPublic(
        items=[
            ArtifactPublic(name=r.name, size=r.size, url=f"/api/v1/jobs/{job.id}/artifacts/{r.name}") for r in rows
        ]
    )


@router.get(
    "/{job_id}/artifacts/{name}",
    summary="Download an artifact",
    description="The file itself (a directory artifact is sent as a `.zip`). Accepts `?api_key=` for links.",
    response_class=FileResponse,
    responses={
        **ERRORS,
        200: {"content": {"application/octet-stream": {}}, "description": "The file"},
        404: {"description": "No such job or artifact"},
    },
)
def download_artifact(job_id: uuid.UUID, name: str, who: CurrentUserOrQuery, session: SessionDep) -> FileResponse:
    job = job_or_404(session, job_id, who)
    row = session.exec(select(Artifact).where(Artifact.job_id == job.id, Artifact.name == name)).first()
    path = Path(row.path) if row is not None else None
    if path is None or not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"job {job.id} has no artifact {name!r}")
    if path.is_dir():
        from api.storage import zip_dir

        archive = zip_dir(path)
        return FileResponse(
            archive,
            filename=f"{name}.zip",
            background=BackgroundTask(shutil.rmtree, archive.parent, ignore_errors=True),
        )
    return FileResponse(path, filename=name)
