"""Evaluate a model on every evaluation split of a task and report each result as an event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from geokd_core.data.types import Example, TaskData
from geokd_core.spec import JobSpec
from geokd_core.training.reporter import Reporter


def eval_splits(data: TaskData) -> dict[str, list[Example]]:
    """``dev`` (the task's eval split), every named eval set, and ``holdout`` when present."""
    splits: dict[str, list[Example]] = {}
    if data.eval:
        splits["dev"] = data.eval
    splits.update({name: ex for name, ex in data.eval_sets.items() if ex})
    if data.holdout:
        splits["holdout"] = data.holdout
    return splits


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, tokenizer: Any, collate: Callable, data: TaskData, spec: JobSpec,
                   device: torch.device, reporter: Reporter) -> dict[str, float]:
    """Run every split, emit one ``eval`` event each; returns ``{"<split>/<metric>": value}``."""
    from geokd_core import evaluate

    assert spec.data is not None
    was_training = model.training
    model.eval()
    flat: dict[str, float] = {}
    task = data.info.task or spec.data.source
    try:
        for split, examples in eval_splits(data).items():
            if data.info.task_type == "causal_lm":
                metrics = evaluate.evaluate_generation(
                    model, tokenizer, examples, max_new_tokens=spec.data.max_new_tokens,
                    batch_size=spec.train.batch_size, device=device, max_seq_len=spec.data.max_seq_len)
            else:
                metrics = evaluate.evaluate_classifier(
                    model, collate, examples, data.info, batch_size=spec.train.batch_size, device=device)
            metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            reporter.evaluation(split, task if split in ("dev", "holdout") else split, metrics)
            flat.update({f"{split}/{k}": v for k, v in metrics.items()})
    finally:
        model.train(was_training)
    return flat


def primary_key(data: TaskData) -> str:
    """``dev/<primary metric>`` used for ``state.best_metric``."""
    from geokd_core import evaluate

    return f"dev/{evaluate.primary_metric(data.info.task, data.info.task_type)}"
