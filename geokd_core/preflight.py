"""Checks that need the file system or model configs, run before any training starts.

``check`` returns every problem it finds (field path + reason) instead of stopping at the first.
It loads model *configs* only (``AutoConfig``), never weights; ``dry_run=True`` additionally runs one
training step on four rows through the real engine.

Which feature losses can compare a student of width d_s with a teacher of width d_t:

================  =====================================================================
loss              d_s ≠ d_t
================  =====================================================================
procrustes        directly (nuclear norm of R_sᵀR_t, a d_s×d_t matrix)
gram, cka,        directly (both sides become n×n Gram / kernel matrices)
cka_debiased
linproj, orthproj the loss owns a learned d_s→d_t projection
================  =====================================================================

So no registered loss needs equal widths; a loss outside both sets would (:func:`needs_equal_dims`).
Token-level features (and logit KD over a vocabulary) do need the same tokenizer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from geokd_core.data import TaskInfo, load_task_data
from geokd_core.errors import GeokdError
from geokd_core.paths import (
    Problem,
    looks_like_hub_id,
    resolve_under_roots,
    resolved_spec,
    spec_path_problems,
)
from geokd_core.spec import DataSpec, JobKind, JobSpec, ModelRef

DIM_FREE_LOSSES = frozenset({"procrustes", "gram", "cka", "cka_debiased"})
PROJECTED_LOSSES = frozenset({"linproj", "orthproj"})


def needs_equal_dims(feature: str) -> bool:
    """True for a feature loss that can only compare features of the same width."""
    return feature not in DIM_FREE_LOSSES | PROJECTED_LOSSES


def _load_config(ref: ModelRef, role: str, roots: list[Path] | None, problems: list[Problem]) -> Any | None:
    """The model's transformers config, None when it cannot be known offline (uncached hub id)."""
    from transformers import AutoConfig

    assert ref.model is not None
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    if ref.gguf_file:
        kwargs["gguf_file"] = ref.gguf_file
    try:
        source = str(resolve_under_roots(ref.model, roots))
    except GeokdError:
        if not looks_like_hub_id(ref.model):
            return None  # already reported by spec_path_problems
        source = ref.model
        kwargs.update(local_files_only=True, revision=ref.revision)
    try:
        cfg = AutoConfig.from_pretrained(source, **kwargs)
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError/...: all "unusable"
        if "local_files_only" in kwargs:
            return None  # a hub model not in the local cache: checked when the run downloads it
        problems.append(Problem([role, "model"], f"cannot load a model config from {ref.model!r}: {exc}"))
        return None
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def _dims(cfg: Any) -> tuple[int | None, int | None]:
    return getattr(cfg, "num_hidden_layers", None), getattr(cfg, "hidden_size", None)


def _head_problems(role: str, cfg: Any, info: TaskInfo, spec: JobSpec) -> list[Problem]:
    from geokd_core.models import arch_name, head_kind, head_mismatch

    loc: list[str | int] = [role, "model"]
    if (why := head_mismatch(cfg, info.task_type, info.num_labels, role)) is not None:
        return [Problem(loc, why)]
    if head_kind(cfg) != "classifier" and info.task_type != "causal_lm" and role == "teacher" \
            and spec.kind == JobKind.DISTILL and spec.loss.alpha < 1:
        return [Problem(loc, f"the teacher ({arch_name(cfg)}) has no trained classification head, so logit KD (alpha < 1) "
                             "would distill a random head: fine-tune it first (kind=finetune) or set loss.alpha=1")]
    return []


def _student_shape(spec: JobSpec, t_cfg: Any, s_cfg: Any, problems: list[Problem]) -> tuple[int | None, int | None]:
    st = spec.student
    assert st is not None
    t_layers, t_hidden = _dims(t_cfg) if t_cfg is not None else (None, None)
    if st.config is not None:
        return st.config.num_layers, st.config.hidden_size
    if st.init_from_teacher is not None:
        layers = st.init_from_teacher.layers
        if t_layers is not None:
            bad = [i for i in layers if i >= t_layers]
            if bad:
                problems.append(Problem(["student", "init_from_teacher", "layers"],
                                        f"teacher layers {bad} out of range: the teacher has {t_layers} layers (0..{t_layers - 1})"))
        return len(layers), t_hidden
    n, h = _dims(s_cfg) if s_cfg is not None else (None, None)
    if n is not None and n < 1:
        problems.append(Problem(["student", "model"], f"the student has {n} layers; it needs at least 1"))
    return n, h


def _mapping_problems(spec: JobSpec, s_layers: int | None, t_layers: int | None) -> list[Problem]:
    out: list[Problem] = []
    if spec.loss.layer_map != "explicit":
        return out
    for i, (s, t) in enumerate(spec.loss.pairs):
        if s_layers is not None and s > s_layers:
            out.append(Problem(["loss", "pairs", i], f"student layer {s} out of range 0..{s_layers} (0 = embeddings)"))
        if t_layers is not None and t > t_layers:
            out.append(Problem(["loss", "pairs", i], f"teacher layer {t} out of range 0..{t_layers} (0 = embeddings)"))
    return out


def _feature_problems(spec: JobSpec, t_cfg: Any, s_cfg: Any, s_hidden: int | None, info: TaskInfo | None) -> list[Problem]:
    feature = spec.loss.feature
    out: list[Problem] = []
    t_hidden = _dims(t_cfg)[1] if t_cfg is not None else None
    if feature and s_hidden and t_hidden and s_hidden != t_hidden and needs_equal_dims(feature):
        out.append(Problem(["loss", "feature"], f"{feature} compares features of equal width, but d_s={s_hidden} ≠ d_t={t_hidden}: "
                                                "use linproj/orthproj (learned projection) or procrustes/gram/cka"))
    # A student with its own model may tokenize differently from the teacher.
    t_vocab = getattr(t_cfg, "vocab_size", None)
    s_vocab = getattr(s_cfg, "vocab_size", None)
    if spec.student is not None and spec.student.model and t_vocab and s_vocab and t_vocab != s_vocab:
        if feature and spec.loss.granularity == "token":
            out.append(Problem(["loss", "granularity"], f"token-level features need one tokenizer, but the vocabularies differ "
                                                        f"(teacher {t_vocab}, student {s_vocab}); use granularity=pooled"))
        if info is not None and info.task_type == "causal_lm" and spec.loss.alpha < 1:
            out.append(Problem(["student", "model"], f"logit KD over a vocabulary needs the same one (teacher {t_vocab}, student {s_vocab})"))
    return out


def _resolved_data(data: DataSpec, roots: list[Path] | None) -> DataSpec:
    """``data`` with its paths resolved under ``roots`` (relative paths are relative to a root)."""
    def res(p: str) -> str:
        return str(resolve_under_roots(p, roots))

    return data.model_copy(update={
        "path": res(data.path) if data.path else None,
        "eval_path": res(data.eval_path) if data.eval_path else None,
        "eval_sets": {k: res(v) for k, v in data.eval_sets.items()},
    })


def _data_problems(spec: JobSpec, data_roots: list[Path] | None) -> tuple[TaskInfo | None, list[Problem]]:
    assert spec.data is not None
    try:
        data = load_task_data(_resolved_data(spec.data, data_roots), seed=spec.train.seed)
    except GeokdError as exc:
        return None, [Problem(["data", "path"], str(exc))]
    if spec.kind != JobKind.EVALUATE and not data.train:
        return data.info, [Problem(["data", "path"], "no training rows (train.tsv missing or empty); only kind=evaluate can run")]
    return data.info, []


def _max_len_problems(spec: JobSpec, cfgs: dict[str, Any]) -> list[Problem]:
    assert spec.data is not None
    out = []
    for role, cfg in cfgs.items():
        limit = getattr(cfg, "max_position_embeddings", None)
        if isinstance(limit, int) and spec.data.max_seq_len > limit:
            out.append(Problem(["data", "max_seq_len"], f"{spec.data.max_seq_len} exceeds the {role}'s max_position_embeddings ({limit})"))
    return out


def dry_run_problems(spec: JobSpec) -> list[Problem]:
    """One training step on four rows through ``geokd_core.run.run_job`` in a temp dir.

    Skipped (no problems) when the training engine is not importable yet.
    """
    try:
        import geokd_core.train  # noqa: F401 - only to know whether the engine exists
        from geokd_core.run import run_job
    except ImportError:
        return []
    small = spec.model_copy(deep=True)
    assert small.data is not None
    small.data.max_train_examples = 4
    small.data.max_eval_examples = 4
    small.train = small.train.model_copy(update={
        "max_steps": 1, "batch_size": min(small.train.batch_size, 4), "grad_accum": 1, "eval_every": None,
        "checkpoint_every": None, "gram_every": None, "teacher_cache": False,
        "gram_probe_size": min(small.train.gram_probe_size, 4),
    })
    with tempfile.TemporaryDirectory(prefix="geokd-dry-run-") as d:
        try:
            run_job(small, Path(d))
        except Exception as exc:  # anything the real run would die of is the answer here
            return [Problem(["dry_run"], f"{type(exc).__name__}: {exc}")]
    return []


def check(
    spec: JobSpec,
    *,
    data_roots: list[Path] | None = None,
    model_roots: list[Path] | None = None,
    dry_run: bool = False,
) -> list[Problem]:
    """Every reason ``spec`` cannot run, each naming its field; ``[]`` means ready.

    Args:
        spec: a validated job spec.
        data_roots / model_roots: allowed local roots (None = unrestricted, for the local CLI).
        dry_run: also run one training step on a tiny batch (only when nothing else is wrong).
    """
    problems = spec_path_problems(spec, data_roots=data_roots, model_roots=model_roots)
    if spec.kind == JobKind.SYNTHETIC or spec.data is None:
        return problems
    cfgs: dict[str, Any] = {}
    refused = {p.loc[0] for p in problems}  # never read a config from a refused path
    for role in ("teacher", "student"):
        ref = getattr(spec, role)
        if ref is not None and ref.model is not None and role not in refused:
            cfg = _load_config(ref, role, model_roots, problems)
            if cfg is not None:
                cfgs[role] = cfg
    t_cfg, s_cfg = cfgs.get("teacher"), cfgs.get("student")
    info: TaskInfo | None = None
    if not any(p.loc[0] == "data" for p in problems):  # a missing/forbidden path is reported once
        info, data_problems = _data_problems(spec, data_roots)
        problems += data_problems
    s_layers, s_hidden = _student_shape(spec, t_cfg, s_cfg, problems) if spec.student else (None, None)
    problems += _mapping_problems(spec, s_layers, _dims(t_cfg)[0] if t_cfg is not None else None)
    if info is not None:
        for role, cfg in cfgs.items():
            problems += _head_problems(role, cfg, info, spec)
    problems += _feature_problems(spec, t_cfg, s_cfg, s_hidden, info)
    problems += _max_len_problems(spec, cfgs)
    if dry_run and not problems:
        run_spec = resolved_spec(spec, data_roots=data_roots, model_roots=model_roots)
        problems += dry_run_problems(run_spec)
    return problems
