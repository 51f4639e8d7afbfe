"""The synthetic experiment as an engine job: every (loss, seed) run, one global step counter.

Runs are executed loss-major (all seeds of the first loss, then the next loss). Run ``r`` owns
global steps ``r * steps + 1 .. (r + 1) * steps``; its initial state is logged at step
``r * steps``. Metric series are per run (``synthetic/<loss>/seed<k>/...``), so within a series
steps are strictly increasing and, across the whole event stream, never decrease. After a resume
the steps after the checkpoint are recomputed bit for bit and re-emitted with the same values,
so a store that de-duplicates on (series, step) ends with exactly one point per step.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geokd_core import geometry, losses
from geokd_core.callbacks import Callback, CallbackList, TrainerControl, TrainerState
from geokd_core.errors import SpecError
from geokd_core.events import Event, EventType
from geokd_core.run import RunResult
from geokd_core.spec import JobSpec, SyntheticSpec
from geokd_core.synthetic.checkpoint import load_checkpoint, save_checkpoint
from geokd_core.synthetic.reference import rank_floors
from geokd_core.synthetic.report import final_metrics, write_results
from geokd_core.synthetic.vectors import center_rows, count_preserved, make_pair


@dataclass
class _Live:
    """The (loss, seed) run in progress."""

    loss_name: str
    seed: int
    teacher: torch.Tensor  # [n, d_t]
    student: nn.Parameter  # [n, d_s]
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_fn(self.student, self.teacher).backward()
        self.optimizer.step()


def synthetic_spec_hash(syn: SyntheticSpec) -> str:
    """What a checkpoint must agree with to be resumed (everything that shapes the results)."""
    return hashlib.sha256(json.dumps(syn.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def _build(loss_name: str, seed: int, syn: SyntheticSpec, teacher: torch.Tensor, student0: torch.Tensor) -> _Live:
    # Trainable projections draw their init from the global RNG: fork it so a run depends on its
    # seed only, never on what ran before it in the same process.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        loss_fn = losses.make_feature_loss(loss_name, syn.d_student, syn.d_teacher)
    student = nn.Parameter(student0.clone())
    optimizer = torch.optim.Adam([student, *loss_fn.parameters()], lr=syn.lr)
    return _Live(loss_name, seed, teacher, student, loss_fn, optimizer)


class _Job:
    """One call of ``run_synthetic_job``: the loop plus its bookkeeping (history, events, checkpoints)."""

    def __init__(self, spec: JobSpec, out_dir: Path, callbacks: Sequence[Callback]) -> None:
        self.syn = spec.synthetic or SyntheticSpec()
        self.train = spec.train
        self.out_dir = out_dir
        # Repeated losses/seeds would share series names and records: each pair runs once.
        self.plan = list(dict.fromkeys((name, seed) for name in self.syn.losses for seed in self.syn.seeds))
        self.total = len(self.plan) * self.syn.steps
        self.cbs = CallbackList(callbacks)
        self.state = TrainerState(total_steps=self.total)
        self.control = TrainerControl()
        self.history: dict[str, Any] = {"runs": [], "elapsed_s": 0.0}
        self.t0 = time.perf_counter()
        self.base_elapsed = 0.0  # seconds spent by earlier attempts (from the checkpoint)
        self.gram_every = self.train.gram_every or max(1, self.syn.steps // 5)
        self.probe = min(self.train.gram_probe_size, self.syn.n)

    # ---- events -----------------------------------------------------------------------------
    def emit(self, kind: EventType, step: int, data: dict[str, Any]) -> None:
        self.cbs.emit(Event(type=kind, step=step, data=data), self.state, self.control)

    def log_metrics(self, live: _Live, local: int, step: int) -> None:
        with torch.no_grad():
            value = float(live.loss_fn(live.student, live.teacher))
            kept, total = count_preserved(live.teacher, live.student.detach(), self.syn.eps)
        fraction = kept / total if total else 0.0
        rec = self.history["runs"][-1]
        rec["teacher_pairs"] = total
        for key, v in (("steps", local), ("loss_values", value), ("preserved_pairs", kept), ("preserved_fraction", fraction)):
            rec[key].append(v)
        prefix = f"synthetic/{live.loss_name}/seed{live.seed}"
        values = {f"{prefix}/loss": value, f"{prefix}/preserved_pairs": float(kept), f"{prefix}/preserved_fraction": fraction}
        self.emit(EventType.METRIC, step, {"values": values})
        self.cbs.call("on_log", self.state, self.control, logs=values)
        self.emit(EventType.PROGRESS, step, {"step": step, "total_steps": self.total, "epoch": self.state.epoch})

    def log_gram(self, live: _Live, step: int) -> None:
        k = self.probe
        with torch.no_grad():
            t = geometry.gram_snapshot(center_rows(live.teacher)[:k], k)
            s = geometry.gram_snapshot(center_rows(live.student.detach())[:k], k)
        data = {"layer": f"{live.loss_name}/seed{live.seed}", "teacher": t.tolist(), "student": s.tolist()}
        self.emit(EventType.GRAM, step, data)
        self.cbs.call("on_gram_snapshot", self.state, self.control, **data)

    # ---- checkpoints ------------------------------------------------------------------------
    def save(self, live: _Live, run: int, local: int, step: int) -> None:
        self.history["elapsed_s"] = self.elapsed()
        tensors = {
            "teacher": live.teacher,
            "student": live.student.detach().clone(),
            "loss_fn": live.loss_fn.state_dict(),
            "optimizer": live.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
        }
        meta = {"spec_hash": synthetic_spec_hash(self.syn), "run": run, "local_step": local,
                "global_step": step, "loss": live.loss_name, "seed": live.seed, "history": self.history}
        path = save_checkpoint(self.out_dir, tensors, meta)
        self.emit(EventType.CHECKPOINT, step, {"path": str(path)})
        self.cbs.call("on_save", self.state, self.control, path=path)

    def restore(self) -> tuple[int, int, _Live | None]:
        """Resume point ``(run, local_step, live)``; ``live`` is None when a run boundary was saved."""
        found = load_checkpoint(self.out_dir)
        if found is None:
            return 0, 0, None
        tensors, meta = found
        if meta["spec_hash"] != synthetic_spec_hash(self.syn):
            raise SpecError(
                f"the checkpoint in {self.out_dir / 'checkpoints'} belongs to different synthetic settings; "
                "resume with the original spec or use a fresh output directory"
            )
        self.history = meta["history"]
        self.base_elapsed = float(self.history.get("elapsed_s", 0.0))
        run, local = int(meta["run"]), int(meta["local_step"])
        if local >= self.syn.steps:
            return run + 1, 0, None
        name, seed = self.plan[run]
        live = _build(name, seed, self.syn, tensors["teacher"], tensors["student"])
        live.loss_fn.load_state_dict(tensors["loss_fn"])
        live.optimizer.load_state_dict(tensors["optimizer"])
        torch.set_rng_state(tensors["rng"])
        return run, local, live

    def elapsed(self) -> float:
        return self.base_elapsed + time.perf_counter() - self.t0

    # ---- the loop ---------------------------------------------------------------------------
    def run(self, resume: bool) -> RunResult:
        run0, local0, live = self.restore() if resume else (0, 0, None)
        self.t0 = time.perf_counter()
        self.state.step = run0 * self.syn.steps + local0
        self.cbs.call("on_train_begin", self.state, self.control)
        for run in range(run0, len(self.plan)):
            offset = run * self.syn.steps
            if live is None:
                live = self.start_run(run, offset)
            stopped = self.train_run(live, run, offset, local0)
            if stopped:
                # As in transformers, the end hook runs however the loop ended.
                self.cbs.call("on_train_end", self.state, self.control, metrics={}, status="stopped")
                return RunResult(status="stopped", step=self.state.step)
            live, local0 = None, 0
        return self.finish()

    def start_run(self, run: int, offset: int) -> _Live:
        name, seed = self.plan[run]
        teacher, student0 = make_pair(self.syn.n, self.syn.d_teacher, self.syn.d_student, seed)
        live = _build(name, seed, self.syn, teacher, student0)
        # Exactly one record per earlier run, whatever an interrupted attempt left behind.
        self.history["runs"] = self.history["runs"][:run]
        self.history["runs"].append({"loss": name, "seed": seed, "teacher_pairs": 0, "steps": [],
                                     "loss_values": [], "preserved_pairs": [], "preserved_fraction": []})
        self.state.step, self.state.epoch = offset, float(run)
        msg = f"synthetic run {run + 1}/{len(self.plan)}: loss={name} seed={seed}"
        self.emit(EventType.LOG, offset, {"level": "INFO", "message": msg})
        self.log_metrics(live, 0, offset)
        self.log_gram(live, offset)
        return live

    def train_run(self, live: _Live, run: int, offset: int, local0: int) -> bool:
        steps, every = self.syn.steps, self.train.checkpoint_every
        for local in range(local0 + 1, steps + 1):
            live.step()
            step = offset + local
            self.state.step, self.state.epoch = step, run + local / steps
            if local % self.syn.log_every == 0 or local == steps:
                self.log_metrics(live, local, step)
            if local % self.gram_every == 0 or local == steps:
                self.log_gram(live, step)
            self.cbs.call("on_step_end", self.state, self.control)
            # Run boundaries are always saved (cheap), so a resume never repeats a finished run.
            if self.control.should_stop or local == steps or (every and step % every == 0):
                self.save(live, run, local, step)
            if self.control.should_stop:
                return True
        return False

    def finish(self) -> RunResult:
        self.history["elapsed_s"] = self.elapsed()
        self.state.step = self.total
        syn = self.syn
        reference = rank_floors(syn.n, syn.d_teacher, syn.d_student, syn.eps, syn.seeds, syn.losses)
        artifacts = write_results(self.out_dir, syn, self.history, reference)
        for name, path in artifacts.items():
            self.emit(EventType.ARTIFACT, self.total, {"name": name, "path": str(path)})
        metrics = final_metrics(self.history)
        self.cbs.call("on_train_end", self.state, self.control, metrics=metrics, status="completed")
        return RunResult(status="completed", step=self.total, final_metrics=metrics, artifacts=artifacts)


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Run the job's tensor math on one intra-op thread, restoring the caller's setting after.

    The matrices here are small (n x d <= ~10^5 entries), so OpenMP fork/join overhead dominates,
    and on a busy shared CPU spinning threads are ruinous: the default run took 15 s with one
    thread and 224 s with two on this 2-core machine at load 8.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_synthetic_job(
    spec: JobSpec,
    out_dir: Path,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
) -> RunResult:
    """Run the paper's synthetic experiment for every loss and seed of ``spec.synthetic``.

    Args:
        spec: a ``kind=synthetic`` job; ``spec.train`` supplies ``checkpoint_every``,
            ``gram_every`` (default ``steps // 5``) and ``gram_probe_size``.
        out_dir: receives ``checkpoints/last``, ``results.json``, ``results.md`` and
            ``preserved_pairs.png``.
        callbacks: engine callbacks; every event goes through ``on_event``.
        resume: continue from ``out_dir/checkpoints/last`` when it exists (a completed job
            resumes straight to writing its results, emitting no metric twice).

    Returns:
        ``RunResult`` with ``final_metrics`` = per loss, the mean over seeds of the final loss,
        preserved pairs and preserved fraction.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _single_threaded():
        return _Job(spec, out, callbacks).run(resume)
