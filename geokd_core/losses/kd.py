"""Logit distillation losses: forward/reverse KL, Jensen-Shannon and DistiLLM's skew KLs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from geokd_core.spec import KD_KINDS

__all__ = ["KD_KINDS", "kd"]


def _kl(logp: Tensor, logq: Tensor) -> Tensor:
    """``KL(p || q)`` over the last axis from log-probabilities; ``0 log 0 = 0`` (masked vocab)."""
    p = logp.exp()
    # Mask the difference itself (not only the product): -inf - -inf is NaN, and a NaN factor
    # would poison the backward of the product even where `p` is zero.
    diff = torch.where(p > 0, logp - logq, torch.zeros_like(p))
    return (p * diff).sum(-1)


def _log_mix(logp: Tensor, logq: Tensor, w: float) -> Tensor:
    """``log(w p + (1 - w) q)`` computed stably in log space."""
    if w <= 0.0:
        return logq
    if w >= 1.0:
        return logp
    # -inf (a masked vocabulary entry) would make logaddexp's backward exp(-inf - -inf) = NaN.
    floor = torch.finfo(logp.dtype).min
    return torch.logaddexp(logp.clamp_min(floor) + math.log(w), logq.clamp_min(floor) + math.log1p(-w))


def kd(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    kind: str = "forward_kl",
    mask: Tensor | None = None,
    skew_lambda: float = 0.1,
) -> Tensor:
    """Temperature-scaled logit distillation loss, averaged over valid positions and scaled by T^2.

    With ``p = softmax(teacher / T)`` and ``q = softmax(student / T)`` (the division happens on the
    logits, before the softmax), per position:

    * ``forward_kl``: ``KL(p || q)`` (Hinton et al. 2015)
    * ``reverse_kl``: ``KL(q || p)``
    * ``js``: ``(KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``
    * ``skew_forward_kl``: ``KL(p || l p + (1 - l) q)`` (DistiLLM, l = ``skew_lambda``)
    * ``skew_reverse_kl``: ``KL(q || (1 - l) p + l q)`` (DistiLLM)

    DistiLLM's code drops the constant entropy term of the skew losses; here they are true KLs
    (same gradient, and 0 when ``q = p``).

    Args:
        student_logits: ``[..., V]`` (differentiable).
        teacher_logits: ``[..., V]``.
        temperature: ``T > 0``.
        kind: one of ``geokd_core.spec.KD_KINDS``.
        mask: ``[...]`` bool or 0/1 tensor marking valid positions (e.g. non-padding tokens);
            ``None`` = all positions valid.
        skew_lambda: mixing weight ``l`` in ``[0, 1]`` of the skew KLs.

    Returns:
        0-dim tensor: ``T^2 * sum(valid per-position loss) / max(#valid, 1)``.
    """
    if kind not in KD_KINDS:
        raise ValueError(f"unknown kd kind {kind!r}; choose one of {list(KD_KINDS)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= skew_lambda <= 1.0:
        raise ValueError(f"skew_lambda must be in [0, 1], got {skew_lambda}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"logit shapes differ: student {tuple(student_logits.shape)} vs teacher {tuple(teacher_logits.shape)}"
        )
    dtype = torch.float64 if student_logits.dtype == torch.float64 else torch.float32
    logq = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1)
    logp = F.log_softmax(teacher_logits.to(dtype) / temperature, dim=-1)
    if kind == "forward_kl":
        per = _kl(logp, logq)
    elif kind == "reverse_kl":
        per = _kl(logq, logp)
    elif kind == "js":
        logm = _log_mix(logp, logq, 0.5)
        per = 0.5 * (_kl(logp, logm) + _kl(logq, logm))
    elif kind == "skew_forward_kl":
        per = _kl(logp, _log_mix(logp, logq, skew_lambda))
    else:  # skew_reverse_kl
        per = _kl(logq, _log_mix(logp, logq, 1.0 - skew_lambda))
    if mask is None:
        total, count = per.sum(), per.new_tensor(float(per.numel()))
    else:
        if mask.shape != per.shape:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} must equal the logits' leading shape {tuple(per.shape)}"
            )
        m = mask.to(per.dtype)
        total, count = (per * m).sum(), m.sum()
    return temperature**2 * total / count.clamp_min(1.0)
