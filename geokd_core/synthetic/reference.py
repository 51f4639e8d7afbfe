"""The best a d_s-dimensional student can do, loss by loss (k = d_s < d_t).

Write the centered, unit-Frobenius teacher as ``t = U S V^T`` with energies ``e_i = s_i^2``
(sum 1). Up to rotation and scale the exact minimisers over all ``[n, k]`` students are:

- ``procrustes``, ``cka`` and ``orthproj`` (whose minimum over an orthogonal map is procrustes):
  the PCA truncation ``U_k S_k`` (Cauchy-Schwarz on the top-k spectrum);
- ``gram``: ``U_k diag(sqrt(e_i + c))`` with ``c = (1 - sum_{i<=k} e_i) / k``: the student's Gram
  must have trace 1, so the best rank-k approximation is lifted uniformly (a slightly flatter
  spectrum than PCA's);
- free ``linproj``: ANY ``U_k B`` with B invertible (floor: the energy outside the top k), which
  is why it need not keep the teacher's angles.

Reporting the floors says whether a final loss is "near zero" or merely at what d_s < d_t allows;
the pairs the two optimal students keep are the reference counts for geometry-preserving losses.
"""

from __future__ import annotations

from typing import Any

import torch

from geokd_core import losses
from geokd_core.synthetic.vectors import center_rows, count_preserved, make_pair


def pca_student(teacher: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s* [n, k], energy [min(n, d)])``: the rank-k truncation and the normalized spectrum.

    ``energy`` holds ``sigma_i^2 / sum sigma^2`` of the centered teacher, in decreasing order.
    """
    u, sv, _ = torch.linalg.svd(center_rows(teacher).double(), full_matrices=False)
    energy = sv.square() / sv.square().sum()
    return (u[:, :k] * sv[:k]).to(teacher.dtype), energy


def gram_student(teacher: torch.Tensor, k: int) -> torch.Tensor:
    """The minimiser ``[n, k]`` of ``gram`` over rank-k students (the trace-1 lifted truncation)."""
    u, sv, _ = torch.linalg.svd(center_rows(teacher).double(), full_matrices=False)
    energy = sv.square() / sv.square().sum()
    lift = (1.0 - energy[:k].sum()) / k
    return (u[:, :k] * (energy[:k] + lift).sqrt()).to(teacher.dtype)


@torch.no_grad()
def rank_floor(teacher: torch.Tensor, d_student: int, eps: float, loss_names: list[str]) -> dict[str, Any]:
    """Loss floor of every loss and the pairs kept by the optimal rank-``d_student`` students.

    Returns:
        ``{"teacher_pairs": int, "pca": {"kept", "fraction"}, "gram_optimum": {"kept", "fraction"},
        "floor_loss": {loss: float | None}}`` (None for ``cka_debiased``, whose optimum is not
        derived here).
    """
    s_pca, energy = pca_student(teacher, d_student)
    s_gram = gram_student(teacher, d_student)
    kept: dict[str, dict[str, float]] = {}
    total = 0
    for key, student in (("pca", s_pca), ("gram_optimum", s_gram)):
        k, total = count_preserved(teacher, student, eps)
        kept[key] = {"kept": k, "fraction": k / max(total, 1)}
    floors: dict[str, float | None] = {}
    for name in loss_names:
        if name == "linproj":
            floors[name] = float(energy[d_student:].sum())
        elif name == "cka_debiased":
            floors[name] = None
        else:
            fn = "procrustes" if name == "orthproj" else name
            best = s_gram if name == "gram" else s_pca
            floors[name] = float(losses.make_feature_loss(fn, d_student, teacher.shape[1])(best, teacher))
    return {"teacher_pairs": total, **kept, "floor_loss": floors}


def rank_floors(n: int, d_teacher: int, d_student: int, eps: float, seeds: list[int],
                loss_names: list[str]) -> dict[str, dict[str, Any]]:
    """``rank_floor`` for the teacher of every seed, keyed by ``str(seed)`` (JSON-friendly)."""
    return {
        str(seed): rank_floor(make_pair(n, d_teacher, d_student, seed)[0], d_student, eps, loss_names)
        for seed in seeds
    }
