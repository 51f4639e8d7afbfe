"""Alignment diagnostics logged during training: cheap, no grad, never part of a loss.

Distances follow the loss definitions in :mod:`geokd_core.losses` (centered, unit-Frobenius
inputs) but are returned as distances, not squares: ``procrustes_distance = sqrt(procrustes)`` in
``[0, sqrt 2]``, ``gram_distance = sqrt(gram)`` in ``[0, sqrt 2]``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from geokd_core.losses import center_and_normalize, cka, gram, procrustes
from geokd_core.losses.cka import cka_similarity_value
from geokd_core.losses.procrustes import nuclear_cross

__all__ = [
    "SIMILARITY_METRICS",
    "cka_similarity",
    "gram_distance",
    "gram_snapshot",
    "layer_similarity_matrix",
    "orthogonal_pairs",
    "preserved_orthogonal_pairs",
    "procrustes_distance",
]

SIMILARITY_METRICS: tuple[str, ...] = ("cka", "cka_debiased", "procrustes", "gram")
# Rows per block when counting pairs, so n = 20000 never materializes an n x n matrix.
_BLOCK = 2048


@torch.no_grad()
def procrustes_distance(s: Tensor, t: Tensor) -> Tensor:
    """Procrustes distance ``D_P`` between ``s [n, d_s]`` and ``t [n, d_t]`` (0-dim, in ``[0, sqrt 2]``)."""
    return procrustes(s, t).clamp_min(0).sqrt()


@torch.no_grad()
def gram_distance(s: Tensor, t: Tensor) -> Tensor:
    """Gram distance ``D_FG = ||K_s - K_t||_F`` of the normalized inputs (0-dim, in ``[0, sqrt 2]``)."""
    return gram(s, t).clamp_min(0).sqrt()


@torch.no_grad()
def cka_similarity(s: Tensor, t: Tensor, debiased: bool = False) -> Tensor:
    """Linear CKA between ``s [n, d_s]`` and ``t [n, d_t]`` (0-dim; 1 = identical up to rotation/scale)."""
    return 1.0 - cka(s, t, debiased=debiased)


@torch.no_grad()
def layer_similarity_matrix(
    teacher_feats: list[Tensor],
    student_feats: list[Tensor],
    metric: Literal["cka", "cka_debiased", "procrustes", "gram"] = "cka",
) -> Tensor:
    """Similarity of every teacher layer to every student layer, for suggesting a layer mapping.

    Every entry is a similarity in ``[0, 1]``, higher = more alike: CKA for ``cka``;
    ``1 - D_P^2 / 2 = ||s^T t||_*`` for ``procrustes``; ``1 - D_FG^2 / 2`` for ``gram``.

    Args:
        teacher_feats: ``L_t`` tensors ``[n, d_t]`` (one per teacher layer, same rows).
        student_feats: ``L_s`` tensors ``[n, d_s]``.
        metric: one of :data:`SIMILARITY_METRICS`.

    Returns:
        ``[L_t, L_s]`` float tensor.
    """
    if metric not in SIMILARITY_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(SIMILARITY_METRICS)}")
    # Normalize each layer once, not once per pair.
    teachers = [center_and_normalize(x) for x in teacher_feats]
    students = [center_and_normalize(x) for x in student_feats]
    out = torch.empty(len(teachers), len(students), dtype=torch.float64)
    for i, t in enumerate(teachers):
        for j, s in enumerate(students):
            dtype = torch.promote_types(s.dtype, t.dtype)
            s_w, t_w = s.to(dtype), t.to(dtype)
            if metric in ("cka", "cka_debiased"):
                value = cka_similarity_value(s_w, t_w, debiased=metric == "cka_debiased")
            elif metric == "procrustes":
                value = nuclear_cross(s_w, t_w, centered=True)
            else:
                value = 1.0 - gram(s_w, t_w) / 2.0
            out[i, j] = float(value)
    return out


def _unit_rows(x: Tensor) -> Tensor:
    """Rows scaled to unit length (zero rows stay zero), computed in float32 or better."""
    x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    norms = x.square().sum(1, keepdim=True).sqrt()
    return x / norms.clamp_min(torch.finfo(x.dtype).tiny)


@torch.no_grad()
def gram_snapshot(features: Tensor, k: int | None = None) -> Tensor:
    """Cosine Gram ``[k, k]`` of the first ``k`` rows of ``features [m, d]`` (all rows if ``k`` is None).

    Entry ``(i, j)`` is ``cos(x_i, x_j)``; zero rows give zeros. Used for heatmaps of a fixed probe batch.
    """
    if features.dim() != 2:
        raise ValueError(f"features must be [m, d], got {tuple(features.shape)}")
    x = features if k is None else features[:k]
    u = _unit_rows(x)
    return u @ u.T


@torch.no_grad()
def orthogonal_pairs(x: Tensor, eps: float) -> Tensor:
    """Strictly upper-triangular ``[n, n]`` bool mask of the eps-orthogonal pairs of rows of ``x [n, d]``.

    Pair ``(i, j)``, ``i < j``, is eps-orthogonal when ``|cos(x_i, x_j)| < eps``.
    """
    u = _unit_rows(x)
    n = u.shape[0]
    close = (u @ u.T).abs() < eps
    return close & torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)


@torch.no_grad()
def preserved_orthogonal_pairs(teacher: Tensor, student: Tensor, eps: float) -> tuple[int, int]:
    """The paper's geometry-preservation count.

    Args:
        teacher: ``[n, d_t]`` vectors.
        student: ``[n, d_s]`` vectors (row ``i`` is the student's image of teacher row ``i``).
        eps: orthogonality tolerance on ``|cos|``.

    Returns:
        ``(preserved, teacher_total)``: pairs ``i < j`` eps-orthogonal in both, and in the teacher.
    """
    if teacher.shape[0] != student.shape[0]:
        raise ValueError(f"row counts differ: teacher {teacher.shape[0]} vs student {student.shape[0]}")
    ut, us = _unit_rows(teacher), _unit_rows(student)
    n = ut.shape[0]
    preserved = total = 0
    cols = torch.arange(n, device=ut.device)
    for lo in range(0, n, _BLOCK):
        hi = min(lo + _BLOCK, n)
        # Only columns j > i count: build the block's upper-triangular part directly.
        upper = cols.unsqueeze(0) > torch.arange(lo, hi, device=ut.device).unsqueeze(1)
        t_orth = ((ut[lo:hi] @ ut.T).abs() < eps) & upper
        s_orth = (us[lo:hi] @ us.T).abs() < eps
        total += int(t_orth.sum())
        preserved += int((t_orth & s_orth).sum())
    return preserved, total
