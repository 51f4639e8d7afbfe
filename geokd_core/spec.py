"""The job spec: one versioned pydantic model shared by the API, worker, CLI and dashboard.

This module must stay light (no torch, no transformers): the API and the dashboard import it.
Static checks live here (types, ranges, names, cross-field rules). Checks that need the file
system or a model config (paths exist, layer indices in range, head/task match) live in
``geokd_core.preflight`` and run before any training starts.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SPEC_VERSION = 1

# Registry names of the feature losses (geokd_core.losses.available() must equal this; a test checks).
FEATURE_LOSSES: tuple[str, ...] = ("procrustes", "gram", "cka", "cka_debiased", "linproj", "orthproj")
KD_KINDS: tuple[str, ...] = ("forward_kl", "reverse_kl", "js", "skew_forward_kl", "skew_reverse_kl")
GLUE_TASKS: tuple[str, ...] = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
INSTRUCT_SETS: tuple[str, ...] = ("dolly", "self-inst", "vicuna", "sinst")


class JobKind(StrEnum):
    DISTILL = "distill"
    FINETUNE = "finetune"
    SYNTHETIC = "synthetic"
    EVALUATE = "evaluate"


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class _Strict(BaseModel):
    # Unknown keys are errors: a typo like `aplha` must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class StudentConfig(_Strict):
    """A randomly initialised student built from the teacher's config family."""

    num_layers: int = Field(ge=1, le=96)
    hidden_size: int = Field(ge=8, le=16384)
    num_heads: int = Field(ge=1, le=256)
    intermediate_size: int | None = Field(default=None, ge=8)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> StudentConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        return self


class InitFromTeacher(_Strict):
    """DistilBERT-style student: copy the embeddings and the listed teacher layers (0-based)."""

    layers: list[int] = Field(min_length=1)

    @field_validator("layers")
    @classmethod
    def _non_negative_unique(cls, v: list[int]) -> list[int]:
        if any(i < 0 for i in v):
            raise ValueError("layer indices are 0-based and must be >= 0")
        if len(set(v)) != len(v):
            raise ValueError("layer indices must be unique")
        return v


class ModelRef(_Strict):
    """A model: a local directory or hub id (``model``), optionally a GGUF file inside it.

    For the student, ``config`` (random init) or ``init_from_teacher`` may replace ``model``.
    """

    model: str | None = None
    gguf_file: str | None = None
    config: StudentConfig | None = None
    init_from_teacher: InitFromTeacher | None = None
    revision: str | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelRef:
        sources = [self.model is not None, self.config is not None, self.init_from_teacher is not None]
        if sum(sources) != 1:
            raise ValueError("give exactly one of `model`, `config`, `init_from_teacher`")
        if self.gguf_file and self.model is None:
            raise ValueError("`gguf_file` needs `model` (the directory or repo holding it)")
        return self


class DataSpec(_Strict):
    """Where the examples come from.

    - ``source="glue"``: ``task`` from the hub by name, or from ``path`` (a GLUE-layout folder
      holding ``<TASK>/train.tsv`` and ``<TASK>/dev.tsv``, or the task folder itself).
    - ``source="file"``: a custom TSV/CSV/JSONL ``path`` (+ optional ``eval_path``) with named
      ``text_columns`` and ``label_column``.
    - ``source="instruct"``: MiniLLM-format JSONL (``prompt``, ``output``) at ``path``; ``eval_sets``
      are further JSONL files evaluated with ROUGE-L.
    """

    source: Literal["glue", "file", "instruct"] = "glue"
    task: str | None = None
    path: str | None = None
    eval_path: str | None = None
    eval_sets: dict[str, str] = Field(default_factory=dict)
    text_columns: list[str] = Field(default_factory=list)
    label_column: str | None = None
    num_labels: int | None = Field(default=None, ge=1)
    max_train_examples: int | None = Field(default=None, ge=1)
    max_eval_examples: int | None = Field(default=None, ge=1)
    # Rows of train held out (from the end of the shuffled train set) for model selection, never dev.
    holdout_examples: int = Field(default=0, ge=0)
    max_seq_len: int = Field(default=128, ge=8, le=8192)
    max_new_tokens: int = Field(default=64, ge=1, le=2048)

    @model_validator(mode="after")
    def _source_fields(self) -> DataSpec:
        if self.source == "glue":
            if self.task is None:
                raise ValueError(f"`task` is required for source=glue; choose one of {list(GLUE_TASKS)}")
            if self.task not in GLUE_TASKS:
                raise ValueError(f"unknown GLUE task {self.task!r}; choose one of {list(GLUE_TASKS)}")
        elif self.source == "file":
            if not self.path:
                raise ValueError("`path` is required for source=file")
            if not self.text_columns or not self.label_column:
                raise ValueError("source=file needs `text_columns` and `label_column`")
        elif self.source == "instruct" and not self.path:
            raise ValueError("`path` (a MiniLLM-format JSONL file) is required for source=instruct")
        return self


LayerMapKind = Literal["uniform", "last", "explicit", "suggest"]


class LossSpec(_Strict):
    """L = gamma * CE + alpha * L_feature + (1 - alpha) * L_KD."""

    feature: str | None = None
    alpha: float = Field(default=0.5, ge=0.0, le=1.0)
    gamma: float = Field(default=1.0, ge=0.0)
    kd_kind: str = "forward_kl"
    temperature: float = Field(default=2.0, gt=0.0, le=100.0)
    skew_lambda: float = Field(default=0.1, ge=0.0, le=1.0)
    layer_map: LayerMapKind = "uniform"
    # explicit pairs: (student_layer, teacher_layer), 1-based hidden-state indices (0 = embeddings).
    pairs: list[tuple[int, int]] = Field(default_factory=list)
    granularity: Literal["token", "pooled"] = "token"

    @field_validator("feature")
    @classmethod
    def _known_feature(cls, v: str | None) -> str | None:
        if v is not None and v not in FEATURE_LOSSES:
            raise ValueError(f"unknown feature loss {v!r}; choose one of {list(FEATURE_LOSSES)} or null")
        return v

    @field_validator("kd_kind")
    @classmethod
    def _known_kd(cls, v: str) -> str:
        if v not in KD_KINDS:
            raise ValueError(f"unknown kd_kind {v!r}; choose one of {list(KD_KINDS)}")
        return v

    @model_validator(mode="after")
    def _pairs_when_explicit(self) -> LossSpec:
        if self.layer_map == "explicit" and not self.pairs:
            raise ValueError("layer_map=explicit needs `pairs` as [[student_layer, teacher_layer], ...]")
        if self.layer_map != "explicit" and self.pairs:
            raise ValueError("`pairs` is only used with layer_map=explicit")
        if any(s < 0 or t < 0 for s, t in self.pairs):
            raise ValueError("layer indices in `pairs` must be >= 0")
        return self


class TrainSpec(_Strict):
    epochs: float = Field(default=1.0, gt=0.0, le=1000.0)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)
    grad_accum: int = Field(default=1, ge=1, le=1024)
    lr: float = Field(default=5e-5, gt=0.0, le=10.0)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.01, ge=0.0, le=1.0)
    seed: int = Field(default=0, ge=0)
    log_every: int = Field(default=10, ge=1)
    eval_every: int | None = Field(default=None, ge=1)
    checkpoint_every: int | None = Field(default=None, ge=1)
    gram_every: int | None = Field(default=None, ge=1)
    gram_probe_size: int = Field(default=32, ge=2, le=512)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    teacher_cache: bool = False


class SyntheticSpec(_Strict):
    """The paper's synthetic experiment: n eps-orthogonal teacher vectors in d_t dims."""

    n: int = Field(default=1000, ge=4, le=20000)
    d_teacher: int = Field(default=100, ge=2, le=4096)
    d_student: int = Field(default=50, ge=1, le=4096)
    eps: float = Field(default=0.1, gt=0.0, lt=1.0)
    steps: int = Field(default=300, ge=1, le=100000)
    lr: float = Field(default=0.05, gt=0.0)
    losses: list[str] = Field(default_factory=lambda: ["procrustes", "gram", "cka", "linproj", "orthproj"])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    log_every: int = Field(default=10, ge=1)

    @field_validator("losses")
    @classmethod
    def _known_losses(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in FEATURE_LOSSES]
        if bad:
            raise ValueError(f"unknown loss(es) {bad}; choose from {list(FEATURE_LOSSES)}")
        if not v:
            raise ValueError("give at least one loss")
        return v

    @model_validator(mode="after")
    def _student_smaller(self) -> SyntheticSpec:
        if self.d_student > self.d_teacher:
            raise ValueError("d_student must be <= d_teacher (the student is the smaller model)")
        return self


class JobSpec(_Strict):
    """A geokd job. ``version`` lets stored specs be migrated when the schema changes."""

    version: Literal[1] = SPEC_VERSION
    name: str = Field(default="job", min_length=1, max_length=200)
    kind: JobKind = JobKind.DISTILL
    teacher: ModelRef | None = None
    student: ModelRef | None = None
    data: DataSpec | None = None
    loss: LossSpec = Field(default_factory=LossSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    synthetic: SyntheticSpec | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_fields(self) -> JobSpec:
        k = self.kind
        if k == JobKind.SYNTHETIC:
            if self.synthetic is None:
                self.synthetic = SyntheticSpec()
            return self
        if self.data is None:
            raise ValueError(f"kind={k.value} needs `data`")
        if k == JobKind.DISTILL:
            if self.teacher is None or self.student is None:
                raise ValueError("kind=distill needs both `teacher` and `student`")
        elif k == JobKind.FINETUNE:
            if self.student is None:
                raise ValueError("kind=finetune trains `student` (a teacher to fine-tune goes there too)")
            if self.loss.feature is not None:
                raise ValueError("kind=finetune has no teacher, so `loss.feature` must be null")
        elif k == JobKind.EVALUATE and self.student is None:
            raise ValueError("kind=evaluate needs `student` (the model to evaluate)")
        for role in ("teacher",):
            ref = getattr(self, role)
            if ref is not None and ref.model is None:
                raise ValueError("`teacher` must name a `model` (directory or hub id)")
        if self.student is not None and self.student.init_from_teacher and self.teacher is None:
            raise ValueError("`student.init_from_teacher` needs a `teacher`")
        if self.student is not None and self.student.config and self.teacher is None:
            raise ValueError("`student.config` builds on the teacher's architecture and needs a `teacher`")
        return self

    # ---- helpers -------------------------------------------------------------------------
    def spec_hash(self) -> str:
        """Stable hash of the spec content (name and tags excluded), used to skip finished runs."""
        payload = self.model_dump(mode="json", exclude={"name", "tags"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def load_spec(source: str | Path | dict[str, Any]) -> JobSpec:
    """Load a spec from a YAML/JSON file path, a YAML/JSON string or a dict."""
    if isinstance(source, dict):
        return JobSpec.model_validate(source)
    if isinstance(source, str) and _names_a_file(source) and not Path(source).exists():
        raise FileNotFoundError(f"spec file {source!r} not found")
    text = Path(source).read_text() if _looks_like_path(source) else str(source)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("a job spec must be a YAML/JSON mapping at the top level")
    return JobSpec.model_validate(data)


def _names_a_file(source: str) -> bool:
    return "\n" not in source and source.endswith((".yaml", ".yml", ".json"))


def _looks_like_path(source: str | Path) -> bool:
    if isinstance(source, Path):
        return True
    return "\n" not in source and source.endswith((".yaml", ".yml", ".json")) and Path(source).exists()


def json_schema() -> dict[str, Any]:
    return JobSpec.model_json_schema()
