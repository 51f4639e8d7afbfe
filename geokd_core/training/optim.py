"""Optimiser and learning-rate schedule of the student (+ trainable projections)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from transformers import get_scheduler

from geokd_core.spec import TrainSpec

_SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def param_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases and normalisation weights (1-D tensors)."""
    decay, no_decay = [], []
    for m in modules:
        for p in m.parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(modules: Iterable[nn.Module], spec: TrainSpec) -> torch.optim.Optimizer:
    """AdamW; the fused kernel (one pass over all parameters, CPU and CUDA) when this torch has it."""
    groups = param_groups(modules, spec.weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=spec.lr, fused=True)
    except (RuntimeError, TypeError):  # fused not supported for these tensors/devices
        return torch.optim.AdamW(param_groups(modules, spec.weight_decay), lr=spec.lr)


def make_scheduler(optimizer: torch.optim.Optimizer, spec: TrainSpec, total_steps: int):
    warmup = int(spec.warmup_ratio * total_steps)
    return get_scheduler(_SCHEDULES[spec.scheduler], optimizer, num_warmup_steps=warmup,
                         num_training_steps=total_steps)
