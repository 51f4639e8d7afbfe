"""Events the engine emits and the service stores and streams (no torch: the API imports this).

One event type per kind of payload; every event carries the training ``step`` it belongs to.
The engine produces them through ``geokd_core.callbacks``; the worker forwards them to the API,
which stores them and replays them over SSE; the dashboard reads them back through the API.

Payloads (``data``):
- ``metric``:  ``{"values": {series_name: float, ...}}``. Series names are slash-separated:
  ``train/loss``, ``train/ce``, ``train/kd``, ``train/feature``, ``train/lr``,
  ``train/examples_per_s``, ``align/<pair>/procrustes``, ``align/<pair>/cka``,
  ``align/<pair>/gram``, ``align/<pair>/preserved_pairs`` (``<pair>`` = ``s<i>-t<j>``),
  ``synthetic/<loss>/seed<k>/loss``, ``synthetic/<loss>/seed<k>/preserved_pairs``.
- ``gram``:   ``{"layer": "s3-t6", "teacher": [[...]], "student": [[...]]}`` (k x k cosine Grams
  of the fixed probe batch; the difference is derived by the reader).
- ``layer_similarity``: ``{"metric": "cka", "teacher_layers": [...], "student_layers": [...],
  "matrix": [[...]]}`` (rows = teacher layers, columns = student layers).
- ``eval``:   ``{"split": "dev", "task": "cola", "metrics": {"mcc": 0.41, ...}}``.
- ``log``:    ``{"level": "INFO", "message": "..."}``.
- ``checkpoint``: ``{"path": "..."}`` (local to the process that wrote it).
- ``artifact``: ``{"name": "student", "path": "..."}`` (a file or directory to publish).
- ``status``: ``{"status": "RUNNING", "error": null}`` (emitted by the service, not the engine).
- ``progress``: ``{"step": int, "total_steps": int, "epoch": float}``.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class EventType(StrEnum):
    METRIC = "metric"
    GRAM = "gram"
    LAYER_SIMILARITY = "layer_similarity"
    EVAL = "eval"
    LOG = "log"
    CHECKPOINT = "checkpoint"
    ARTIFACT = "artifact"
    STATUS = "status"
    PROGRESS = "progress"


class Event(BaseModel):
    type: EventType
    step: int = Field(default=0, ge=0)
    data: dict[str, Any] = Field(default_factory=dict)
    # Wall-clock time of emission (seconds since the epoch); used for event-latency measurements.
    ts: float = Field(default_factory=time.time)
