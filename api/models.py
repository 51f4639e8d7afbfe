"""Store tables and the API's public shapes (one SQLModel family per entity).

``JobBase`` → ``JobCreate`` (input) → ``Job`` (table) → ``JobPublic`` (output): input, storage and
output never share a class by accident. Timestamps are timezone-aware UTC (SQLModel's
``UTCDateTime`` stores them so on SQLite too).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from geokd_core.spec import JobStatus


def utcnow() -> datetime:
    """Aware UTC now."""
    return datetime.now(UTC)


# ---- jobs ----------------------------------------------------------------------------------
class JobBase(SQLModel):
    name: str = Field(max_length=200, index=True)
    kind: str = Field(max_length=32)


class JobCreate(JobBase):
    """What a route hands to ``crud.create_job`` (the validated spec as JSON)."""

    spec: dict[str, Any]
    owner: str
    idempotency_key: str | None = None


class Job(JobBase, table=True):
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_job_owner_idem"),
        Index("ix_job_status_heartbeat", "status", "heartbeat_at"),
    )

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    owner: str = Field(index=True, max_length=200)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default=JobStatus.QUEUED.value, index=True, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    enqueued_at: datetime | None = None  # null while the broker has not accepted the job
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt: int = 1
    worker: str | None = Field(default=None, max_length=200)
    lease: str | None = Field(default=None, max_length=64)
    heartbeat_at: datetime | None = None
    cancel_requested: bool = False
    error: str | None = None
    progress: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    idempotency_key: str | None = Field(default=None, max_length=200)


class Progress(BaseModel):
    step: int = 0
    total_steps: int | None = None
    epoch: float | None = None


class JobPublic(JobBase):
    id: str
    status: JobStatus
    owner: str
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int
    worker: str | None
    heartbeat_at: datetime | None
    error: str | None
    progress: Progress
    cancel_requested: bool
    summary: dict[str, Any]


class JobsPublic(SQLModel):
    items: list[JobPublic]
    total: int


# ---- events and what is fanned out of them ---------------------------------------------------
class EventRow(SQLModel, table=True):
    __tablename__ = "event"
    # AUTOINCREMENT: a seq is never reused after a job's events are deleted (SSE ids stay unique).
    __table_args__ = (Index("ix_event_job_seq", "job_id", "seq"), {"sqlite_autoincrement": True})

    seq: int | None = Field(default=None, primary_key=True)  # SSE `id:`; increases per insert
    job_id: str = Field(foreign_key="job.id", max_length=36)
    type: str = Field(max_length=32)
    step: int = 0
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    ts: float


class MetricPoint(SQLModel, table=True):
    __tablename__ = "metric_point"
    __table_args__ = (UniqueConstraint("job_id", "series", "step", name="uq_metric_job_series_step"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True, max_length=36)
    series: str = Field(max_length=300)
    step: int
    value: float | None  # NaN/inf are stored as NULL (JSON cannot carry them)


class GramSnapshot(SQLModel, table=True):
    __tablename__ = "gram_snapshot"
    __table_args__ = (UniqueConstraint("job_id", "layer", "step", name="uq_gram_job_layer_step"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True, max_length=36)
    layer: str = Field(max_length=100)
    step: int
    teacher: list[list[float | None]] = Field(sa_column=Column(JSON, nullable=False))
    student: list[list[float | None]] = Field(sa_column=Column(JSON, nullable=False))


class EvalResult(SQLModel, table=True):
    __tablename__ = "eval_result"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True, max_length=36)
    step: int
    split: str = Field(max_length=100)
    task: str | None = Field(default=None, max_length=100)
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Artifact(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("job_id", "name", name="uq_artifact_job_name"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", index=True, max_length=36)
    name: str = Field(max_length=128)
    path: str
    size: int


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=200)  # the owner of the jobs this key submits
    key_hash: str = Field(unique=True, max_length=64)
    prefix: str = Field(max_length=16)  # shown by `geokd keys list`; never enough to authenticate
    is_admin: bool = False
    created_at: datetime = Field(default_factory=utcnow)


# ---- response shapes of the read routes ------------------------------------------------------
class Series(BaseModel):
    steps: list[int]
    values: list[float | None]


class MetricsPublic(BaseModel):
    series: dict[str, Series]
    last_step: int | None


class GramPublic(BaseModel):
    layers: list[str]
    steps: list[int]
    layer: str
    step: int
    teacher: list[list[float | None]]
    student: list[list[float | None]]
    difference: list[list[float | None]]


class EvalPublic(BaseModel):
    step: int
    split: str
    task: str | None
    metrics: dict[str, Any]


class EvalsPublic(BaseModel):
    items: list[EvalPublic]


class LogLine(BaseModel):
    ts: float
    level: str
    message: str


class LogsPublic(BaseModel):
    lines: list[LogLine]


class ArtifactPublic(BaseModel):
    name: str
    size: int
    url: str


class ArtifactsPublic(BaseModel):
    items: list[ArtifactPublic]


class ValidationResult(BaseModel):
    valid: bool
    problems: list[dict[str, Any]]
