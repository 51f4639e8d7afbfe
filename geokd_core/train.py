"""Training and evaluation jobs: a validated spec in, a trained (or evaluated) student out.

``run_training_job`` serves ``kind: distill`` and ``kind: finetune``; ``run_evaluation_job``
serves ``kind: evaluate``. Both are called by ``geokd_core.run.run_job`` (the CLI and the worker
use that). The pieces live in ``geokd_core.training``; this module only wires them up.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geokd_core.callbacks import Callback
from geokd_core.errors import SpecError
from geokd_core.events import EventType
from geokd_core.layer_map import resolve_pairs
from geokd_core.models import Models, build_models, hidden_size, num_layers, resolve_device, save_student
from geokd_core.run import RunResult
from geokd_core.spec import JobKind, JobSpec
from geokd_core.training import checkpoint as ckpt
from geokd_core.training.batches import BatchOrder, total_steps
from geokd_core.training.evaluation import evaluate_model
from geokd_core.training.forward import to_device
from geokd_core.training.loop import Engine, make_autocast
from geokd_core.training.model_card import write_model_card
from geokd_core.training.objective import Objective
from geokd_core.training.optim import make_optimizer, make_scheduler
from geokd_core.training.probe import Probe
from geokd_core.training.reporter import Reporter
from geokd_core.training.teacher_cache import build_teacher_cache


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _quiet_transformers() -> None:
    # Weight-loading progress bars would interleave with the CLI's own progress bar.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _load(spec: JobSpec, with_teacher: bool) -> tuple[Any, Models, Any, torch.device]:
    """Data, models (on the device) and the collator of ``spec``."""
    from geokd_core.data import load_task_data, make_collator

    assert spec.data is not None and spec.student is not None
    _quiet_transformers()
    seed_everything(spec.train.seed)
    data = load_task_data(spec.data, seed=spec.train.seed)
    device = resolve_device(spec.train.device)
    models = build_models(spec.teacher if with_teacher else None, spec.student, data.info.task_type,
                          data.info.num_labels)
    models.student.to(device)
    if models.teacher is not None:
        models.teacher.to(device)
    collate = make_collator(models.tokenizer, data.info, spec.data.max_seq_len)
    return data, models, collate, device


def _make_objective(spec: JobSpec, models: Models, task_type: str, n_pairs: int, distill: bool) -> Objective:
    d_t = hidden_size(models.teacher) if models.teacher is not None else hidden_size(models.student)
    try:
        return Objective(spec.loss, task_type, n_pairs, hidden_size(models.student), d_t, distill)
    except ValueError as exc:  # e.g. a feature loss that cannot compare these widths
        raise SpecError(f"loss.feature: {exc}") from exc


def _cache_fingerprint(spec: JobSpec, engine: Engine) -> dict[str, Any]:
    assert spec.data is not None and spec.teacher is not None
    return {"teacher": spec.teacher.model_dump(mode="json"), "data": spec.data.model_dump(mode="json"),
            "seed": spec.train.seed, "layers": engine.teacher_layers,
            "granularity": spec.loss.granularity, "n": len(engine.data.train)}


def build_engine(spec: JobSpec, out: Path, reporter: Reporter) -> Engine:
    """Load everything, fix the layer mapping, and set up the optimiser (fresh state)."""
    distill = spec.kind == JobKind.DISTILL
    data, models, collate, device = _load(spec, with_teacher=spec.teacher is not None)
    if not data.train:
        raise SpecError("data: the training set is empty")
    autocast = make_autocast(device, spec.train.mixed_precision)
    if spec.train.mixed_precision != "no" and device.type != "cuda":
        reporter.log(f"mixed_precision={spec.train.mixed_precision} ignored on {device.type} (GPU only)", "WARNING")
    probe_rows = data.train[: spec.train.gram_probe_size]
    probe = Probe(to_device(collate(probe_rows), device), models.teacher if distill else None, autocast)
    pairs: list[tuple[int, int]] = []
    if distill:
        assert models.teacher is not None
        sim = probe.similarity(models.student)
        reporter.emit(EventType.LAYER_SIMILARITY, {
            "metric": "cka", "teacher_layers": list(range(sim.shape[0])),
            "student_layers": list(range(sim.shape[1])), "matrix": sim.tolist()})
        pairs = resolve_pairs(spec.loss.layer_map, num_layers(models.student), num_layers(models.teacher),
                              spec.loss.pairs, similarity=sim[1:, 1:])
        reporter.log("layer pairs (student, teacher): " + ", ".join(f"s{s}-t{t}" for s, t in pairs))
    if not distill:
        models.teacher = None  # finetune only needed it to build the student
    objective = _make_objective(spec, models, data.info.task_type, len(pairs), distill).to(device)
    tr = spec.train
    steps = total_steps(len(data.train), tr.batch_size, tr.grad_accum, tr.epochs, tr.max_steps)
    optimizer = make_optimizer([models.student, objective], tr)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and tr.mixed_precision == "fp16")
    return Engine(spec=spec, out=out, data=data, models=models, collate=collate, device=device, pairs=pairs,
                  objective=objective, optimizer=optimizer, scheduler=make_scheduler(optimizer, tr, steps),
                  scaler=scaler, order=BatchOrder(len(data.train), tr.batch_size, tr.seed), total_steps=steps,
                  autocast=autocast, probe=probe)


def attach_teacher_cache(spec: JobSpec, out: Path, engine: Engine) -> None:
    """Build (or reopen) ``out/teacher_cache`` for the engine's layer pairs; the loop then reads it."""
    assert spec.data is not None and engine.models.teacher is not None
    engine.cache = build_teacher_cache(
        out / "teacher_cache", engine.models.teacher, engine.collate, engine.data.train,
        engine.teacher_layers, spec.loss.granularity,
        batch_size=spec.train.batch_size, max_len=spec.data.max_seq_len, device=engine.device,
        fingerprint=_cache_fingerprint(spec, engine), autocast=engine.autocast)


def run_training_job(spec: JobSpec, out: Path, callbacks: Sequence[Callback] = (), resume: bool = False) -> RunResult:
    """Distill or fine-tune as ``spec`` says; see ``docs/DESIGN.md`` for the output layout."""
    reporter = Reporter(callbacks, out)
    engine = build_engine(spec, out, reporter)
    start = 0
    found = ckpt.find_checkpoint(out / "checkpoints") if resume else None
    if found is not None:
        state = ckpt.load_checkpoint(found)  # CPU: RNG states must stay CPU tensors; load_state_dict moves weights
        if state.get("spec_hash") != spec.spec_hash():
            raise SpecError(f"cannot resume from {found}: it was written by a different spec")
        start = engine.load_state_dict(state)
        reporter.state.best_metric = state.get("best_metric")
        reporter.log(f"resumed from {found} at step {start}")
    if spec.train.teacher_cache and engine.distill:
        tic = time.perf_counter()
        attach_teacher_cache(spec, out, engine)
        reporter.log(f"teacher cache ready at {engine.cache.root} ({time.perf_counter() - tic:.1f} s)")
    reporter.state.total_steps = engine.total_steps
    reporter.hook("on_train_begin")
    reporter.progress()
    if start == 0 and spec.train.gram_every:
        engine.gram_snapshot(reporter)
    status, last = engine.run(reporter, start)
    if status == "stopped":
        reporter.hook("on_train_end", status=status)
        return RunResult(status="stopped", step=reporter.state.step, final_metrics=last,
                         artifacts={"checkpoint": out / "checkpoints" / ckpt.LAST})
    return _finish(spec, out, engine, reporter, last)


def _finish(spec: JobSpec, out: Path, engine: Engine, reporter: Reporter, last: dict[str, float]) -> RunResult:
    """Final evaluation, checkpoint, student + model card, results.json."""
    metrics = engine.evaluate(reporter)
    ckpt_path = engine.save(reporter)
    final = {k: v for k, v in last.items() if k.startswith("train/")} | metrics
    student_dir = save_student(engine.models.student, engine.models.tokenizer, out / "student")
    extra = {"teacher": spec.teacher.model if spec.teacher else None, "layer pairs": engine.pairs,
             "steps": reporter.state.step, "device": str(engine.device)}
    card = write_model_card(student_dir / "README.md", spec, metrics, extra)
    # The checkpoint is not a published artifact (the service stores it separately).
    artifacts = {"student": student_dir, "model_card": card}
    results = _write_results(out, spec, "completed", reporter.state.step, final,
                             {**artifacts, "checkpoint": ckpt_path}, pairs=engine.pairs)
    artifacts["results"] = results
    for name in ("student", "model_card", "results"):
        reporter.artifact(name, artifacts[name])
    reporter.hook("on_train_end", status="completed", metrics=final)
    return RunResult(status="completed", step=reporter.state.step, final_metrics=final, artifacts=artifacts)


def _write_results(out: Path, spec: JobSpec, status: str, step: int, metrics: dict[str, float],
                   artifacts: dict[str, Path], **extra: Any) -> Path:
    path = out / "results.json"
    payload = {"name": spec.name, "kind": spec.kind.value, "status": status, "step": step,
               "spec_hash": spec.spec_hash(), "metrics": metrics,
               "artifacts": {k: str(v) for k, v in artifacts.items()}, **extra}
    path.write_text(json.dumps(payload, indent=2, default=list))
    return path


def run_evaluation_job(spec: JobSpec, out: Path, callbacks: Sequence[Callback] = ()) -> RunResult:
    """Evaluate ``spec.student`` on every eval split; writes results.json."""
    assert spec.student is not None
    reporter = Reporter(callbacks, out)
    needs_teacher = spec.student.model is None  # a config/layer-copy student is built from the teacher
    data, models, collate, device = _load(spec, with_teacher=needs_teacher)
    metrics = evaluate_model(models.student, models.tokenizer, collate, data, spec, device, reporter)
    results = _write_results(out, spec, "completed", 0, metrics, {})
    reporter.artifact("results", results)
    return RunResult(status="completed", step=0, final_metrics=metrics, artifacts={"results": results})
