"""Checkpoints: atomic writes, and a stopped-then-resumed run equals an uninterrupted one exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from geokd_core.callbacks import Callback, TrainerControl, TrainerState
from geokd_core.run import run_job
from geokd_core.spec import load_spec
from geokd_core.training.batches import BatchOrder, total_steps
from geokd_core.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from tests.utils.job_specs import distill_spec


class StopAt(Callback):
    """Kills the run (cooperatively) right after optimiser step ``k``."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_step_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.step == self.k:
            control.should_stop = True


def _metric_lines(out: Path) -> dict[int, dict[str, float]]:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    # The stop (step 3) falls inside a logging window: its partial sums are checkpointed too.
    return {r["step"]: {k: v for k, v in r["values"].items() if k != "train/examples_per_s"}
            for r in rows if r["type"] == "metric"}


def test_resume_is_exact(bert_teacher: Path, glue_root: Path, tmp_path: Path) -> None:
    # Dropout is on (BERT's default 0.1), grad accumulation 2, a trainable projection (linproj) and
    # 5 steps x 2 micro-batches over 4 batches per epoch: the stop at step 3 falls mid-epoch.
    spec = load_spec(distill_spec(bert_teacher, glue_root, loss={"feature": "linproj"},
                                  train={"max_steps": 5, "grad_accum": 2, "log_every": 2, "warmup_ratio": 0.2}))
    full = run_job(spec, tmp_path / "full")
    stopped = run_job(spec, tmp_path / "resumed", callbacks=[StopAt(3)])
    assert stopped.status == "stopped" and stopped.step == 3
    resumed = run_job(spec, tmp_path / "resumed", resume=True)
    assert resumed.status == "completed" and resumed.step == full.step == 5

    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last")
    for part in ("student", "objective"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    for k, v in a["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], b["optimizer"]["state"][k]["exp_avg"])
    assert a["scheduler"] == b["scheduler"]
    assert {k: v for k, v in full.final_metrics.items() if k != "train/examples_per_s"} == \
        {k: v for k, v in resumed.final_metrics.items() if k != "train/examples_per_s"}
    full_lines, resumed_lines = _metric_lines(tmp_path / "full"), _metric_lines(tmp_path / "resumed")
    assert full_lines == resumed_lines and sorted(full_lines) == [2, 4, 5]


def test_resume_without_checkpoint_starts_fresh_and_completed_runs_are_not_retrained(
        bert_teacher: Path, glue_root: Path, tmp_path: Path) -> None:
    spec = load_spec(distill_spec(bert_teacher, glue_root, train={"max_steps": 2}))
    first = run_job(spec, tmp_path, resume=True)
    assert first.status == "completed" and first.step == 2
    again = run_job(spec, tmp_path, resume=True)  # from the final checkpoint: no step left to take
    assert again.step == 2 and again.final_metrics["dev/mcc"] == first.final_metrics["dev/mcc"]


def test_checkpoint_swap_is_atomic(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    save_checkpoint(ckpt, {"step": 1}, {"step": 1})
    save_checkpoint(ckpt, {"step": 2}, {"step": 2})
    assert load_checkpoint(find_checkpoint(ckpt))["step"] == 2
    assert sorted(p.name for p in ckpt.iterdir()) == ["last"]
    # A crash between the two renames leaves only last.old: it is still found.
    (ckpt / "last").rename(ckpt / "last.old")
    assert load_checkpoint(find_checkpoint(ckpt))["step"] == 2
    assert find_checkpoint(tmp_path / "nothing") is None


def test_data_order_is_a_pure_function_of_seed_and_step() -> None:
    order = BatchOrder(10, 4, seed=7)
    epoch0 = [order.micro_batch(m) for m in range(3)]
    assert sorted(sum(epoch0, [])) == list(range(10))  # every example once per epoch
    assert [len(b) for b in epoch0] == [4, 4, 2]
    assert BatchOrder(10, 4, seed=7).micro_batch(4) == order.micro_batch(4)  # fresh object, same batch
    assert order.permutation(0) != order.permutation(1)
    assert total_steps(10, 4, 2, epochs=2.0, max_steps=None) == 3 and total_steps(10, 4, 1, 1.0, 7) == 7
