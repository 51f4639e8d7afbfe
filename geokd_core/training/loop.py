"""The optimisation loop: micro-batches → loss terms → optimiser steps → events and checkpoints."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from geokd_core.data.types import TaskData
from geokd_core.events import EventType
from geokd_core.layer_map import Pair
from geokd_core.models import Models
from geokd_core.spec import JobSpec
from geokd_core.training import checkpoint as ckpt
from geokd_core.training.batches import BatchOrder
from geokd_core.training.evaluation import evaluate_model
from geokd_core.training.forward import forward_with_layers, teacher_targets, to_device
from geokd_core.training.objective import Objective
from geokd_core.training.probe import Probe
from geokd_core.training.reporter import Reporter
from geokd_core.training.teacher_cache import TeacherCache

MAX_GRAD_NORM = 1.0
TERMS = ("loss", "ce", "kd", "feature")


def make_autocast(device: torch.device, mixed_precision: str) -> Callable[[], Any]:
    """Autocast on CUDA only (mixed precision is a GPU feature; CPU runs stay float32)."""
    if device.type != "cuda" or mixed_precision == "no":
        return contextlib.nullcontext
    dtype = torch.float16 if mixed_precision == "fp16" else torch.bfloat16
    return lambda: torch.autocast("cuda", dtype=dtype)


@dataclass
class Engine:
    """Everything one training run needs, built by ``geokd_core.train``."""

    spec: JobSpec
    out: Path
    data: TaskData
    models: Models
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    device: torch.device
    pairs: list[Pair]
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    order: BatchOrder
    total_steps: int
    autocast: Callable[[], Any]
    cache: TeacherCache | None = None
    probe: Probe | None = None
    # Running sums of the current logging window (checkpointed: a resumed run logs the same values).
    window: dict[str, float] = field(default_factory=dict)

    @property
    def distill(self) -> bool:
        return self.models.teacher is not None and self.objective.distill

    @property
    def student_layers(self) -> list[int]:
        """Student layers the feature loss reads (none when it is off)."""
        return [s for s, _ in self.pairs] if self.objective.uses_features else []

    @property
    def teacher_layers(self) -> list[int]:
        """Teacher layers the feature loss reads (none when it is off)."""
        return [t for _, t in self.pairs] if self.objective.uses_features else []

    # ---- checkpoint ----------------------------------------------------------------------
    def state_dict(self, step: int, best: float | None) -> dict[str, Any]:
        return {
            "step": step,
            "best_metric": best,
            "pairs": self.pairs,
            "student": self.models.student.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.rng_state(),
            "window": dict(self.window),
            "seed": self.spec.train.seed,
            "spec_hash": self.spec.spec_hash(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> int:
        self.pairs = [tuple(p) for p in state["pairs"]]
        self.models.student.load_state_dict(state["student"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.window = dict(state["window"])
        ckpt.set_rng_state(state["rng"])
        return int(state["step"])

    def save(self, reporter: Reporter) -> Path:
        s = reporter.state
        path = ckpt.save_checkpoint(self.out / "checkpoints", self.state_dict(s.step, s.best_metric),
                                    {"step": s.step, "epoch": s.epoch, "total_steps": s.total_steps})
        reporter.checkpoint(path)
        return path

    # ---- one optimiser step ----------------------------------------------------------------
    def micro_step(self, m: int) -> int:
        """Forward/backward of micro-batch ``m``; adds its terms to the window; returns its size."""
        spec, student = self.spec, self.models.student
        rows = [self.data.train[p] for p in self.order.micro_batch(m)]
        batch = to_device(self.collate(rows), self.device)
        targets = None
        if self.distill:
            if self.cache is not None:
                targets = self.cache.lookup(batch["idx"], batch["input_ids"].shape[1], self.device)
            else:
                with self.autocast():
                    targets = teacher_targets(self.models.teacher, batch, self.teacher_layers, spec.loss.granularity)
        with self.autocast():
            logits, s_hidden = forward_with_layers(student, batch, self.student_layers)
        terms = self.objective(logits, s_hidden, batch["labels"], batch["attention_mask"], targets)
        self.scaler.scale(terms["loss"] / spec.train.grad_accum).backward()
        for k in TERMS:
            self.window[k] = self.window.get(k, 0.0) + float(terms[k].detach())
        self.window["micro"] = self.window.get("micro", 0.0) + 1
        self.window["examples"] = self.window.get("examples", 0.0) + len(rows)
        return len(rows)

    def optimizer_step(self, step: int) -> None:
        accum = self.spec.train.grad_accum
        self.optimizer.zero_grad(set_to_none=True)
        for a in range(accum):
            self.micro_step(step * accum + a)
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    # ---- reporting ---------------------------------------------------------------------------
    def log_window(self, reporter: Reporter) -> dict[str, float]:
        n = max(self.window.get("micro", 0.0), 1.0)
        values = {f"train/{k}": self.window.get(k, 0.0) / n for k in TERMS}
        values["train/lr"] = self.scheduler.get_last_lr()[0]
        # Throughput of the optimisation steps alone (evaluation and probes excluded).
        values["train/examples_per_s"] = self.window.get("examples", 0.0) / max(self.window.get("seconds", 0.0), 1e-9)
        if self.probe is not None and self.distill and self.pairs:
            align, _ = self.probe.measure(self.models.student, self.pairs, with_grams=False)
            values.update(align)
        reporter.metrics(values)
        reporter.progress()
        self.window = {}
        return values

    def gram_snapshot(self, reporter: Reporter) -> None:
        if self.probe is None or not self.distill or not self.pairs:
            return
        _, grams = self.probe.measure(self.models.student, self.pairs, with_grams=True)
        for payload in grams:
            reporter.emit(EventType.GRAM, payload)
        reporter.hook("on_gram_snapshot", grams=grams)

    def evaluate(self, reporter: Reporter) -> dict[str, float]:
        from geokd_core.training.evaluation import primary_key

        metrics = evaluate_model(self.models.student, self.models.tokenizer, self.collate, self.data,
                                 self.spec, self.device, reporter)
        key = primary_key(self.data)
        if key in metrics and (reporter.state.best_metric is None or metrics[key] > reporter.state.best_metric):
            reporter.state.best_metric = metrics[key]
        return metrics

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, reporter: Reporter, start_step: int) -> tuple[str, dict[str, float]]:
        """Train from ``start_step`` to ``total_steps``; returns (status, last logged train metrics)."""
        tr, state, control = self.spec.train, reporter.state, reporter.control
        state.step, state.total_steps = start_step, self.total_steps
        state.epoch = self.order.epoch_of(start_step * tr.grad_accum)
        self.models.student.train()
        last: dict[str, float] = {}
        step = start_step
        while step < self.total_steps:
            if control.should_stop:  # set before this step (e.g. a cancel seen while starting up)
                self.save(reporter)
                return "stopped", last
            tic = time.perf_counter()
            self.optimizer_step(step)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # honest step times for the throughput metric
            self.window["seconds"] = self.window.get("seconds", 0.0) + time.perf_counter() - tic
            step += 1
            state.step, state.epoch = step, self.order.epoch_of(step * tr.grad_accum)
            reporter.hook("on_step_end")
            if step % tr.log_every == 0 or step == self.total_steps:
                last = self.log_window(reporter)
            if tr.gram_every and (step % tr.gram_every == 0 or step == self.total_steps):
                self.gram_snapshot(reporter)
            if (tr.eval_every and step % tr.eval_every == 0 and step < self.total_steps) or control.should_evaluate:
                control.should_evaluate = False
                self.evaluate(reporter)
            if control.should_stop:
                self.save(reporter)
                return "stopped", last
            if (tr.checkpoint_every and step % tr.checkpoint_every == 0) or control.should_save:
                control.should_save = False
                self.save(reporter)
        return "completed", last
