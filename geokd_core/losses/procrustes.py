"""Procrustes loss D_P^2 (arXiv 2509.25253) with an exact envelope (Danskin) gradient."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._fused import ProcrustesStudent
from ._normalize import full_precision, normalized_pair, student_and_teacher
from ._polar_d import polar_d
from ._polar_n import polar_n
from ._spectral import prefer_kernel_route

__all__ = ["nuclear_cross", "procrustes"]


class _NuclearCross(torch.autograd.Function):
    """``||s^T t||_*`` whose backward is the envelope gradient ``(t P^T, s P)``, P = polar(s^T t).

    Never backpropagates through an SVD: P is computed once without grad, so the gradient is exact
    (where the norm is differentiable) and finite for rank-deficient inputs, where it is the
    symmetric subgradient supported on the numerically nonzero singular directions.
    """

    @staticmethod
    def forward(ctx: Any, s: Tensor, t: Tensor, centered: bool) -> Tensor:  # type: ignore[override]
        n, d_s = s.shape
        d_t = t.shape[1]
        rank_max = min(n - 1 if centered else n, d_s, d_t)
        need_s, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if prefer_kernel_route(n, d_s, d_t):
            res = polar_n(s, t, rank_max, need_s, need_t)
            ctx.route = "n"
            ctx.save_for_backward(s, t, res.G_s if need_s else None, res.G_t if need_t else None)
            return res.nuc
        res_d = polar_d(s.T @ t, rank_max)
        ctx.route = "d"
        ctx.polar = res_d  # holds only tensors computed without grad
        ctx.save_for_backward(s, t)
        return res_d.nuc

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        if ctx.route == "n":
            s, t, G_s, G_t = ctx.saved_tensors
            gs = grad * (G_s @ s) if G_s is not None else None
            gt = grad * (G_t @ t) if G_t is not None else None
            return gs, gt, None
        s, t = ctx.saved_tensors
        polar = ctx.polar
        gs = grad * polar.times_PT(t) if ctx.needs_input_grad[0] else None
        gt = grad * polar.times_P(s) if ctx.needs_input_grad[1] else None
        return gs, gt, None


def nuclear_cross(s: Tensor, t: Tensor, centered: bool = True) -> Tensor:
    """``||s^T t||_*`` for ``s [n, d_s]``, ``t [n, d_t]`` with the envelope gradient.

    Args:
        s: ``[n, d_s]`` matrix (same dtype as ``t``).
        t: ``[n, d_t]`` matrix.
        centered: the rows of ``s`` and ``t`` sum to zero, so their rank is at most ``n - 1``.
    """
    return _NuclearCross.apply(s, t, centered)


@full_precision
def procrustes(s: Tensor, t: Tensor) -> Tensor:
    """Squared Procrustes distance ``D_P^2 = tr K_s + tr K_t - 2 ||s^T t||_*`` (in ``[0, 2]``).

    Both inputs are centered and scaled to unit Frobenius norm first; ``D_P^2`` is then the
    smallest ``||s Q - t||_F^2`` over orthogonal ``Q`` (the smaller side zero-padded), and 0 iff the
    two representations agree up to rotation, translation and isotropic scale.

    Args:
        s: ``[n, d_s]`` student features (differentiable).
        t: ``[n, d_t]`` teacher features; ``d_s != d_t`` is allowed.

    Returns:
        0-dim tensor in the work dtype (float32, or float64 for float64 inputs).

    Example:
        >>> x = torch.randn(32, 8)
        >>> q, _ = torch.linalg.qr(torch.randn(8, 8))
        >>> float(procrustes(x, 3 * x @ q + 1)) < 1e-5
        True
    """
    if not (t.requires_grad and torch.is_grad_enabled()):
        s_w, t_hat = student_and_teacher(s, t)
        return ProcrustesStudent.apply(s_w, t_hat)
    s_hat, t_hat = normalized_pair(s, t)
    nuc = nuclear_cross(s_hat, t_hat, centered=True)
    return s_hat.square().sum() + t_hat.square().sum() - 2.0 * nuc
