"""Gram (kernel) loss D_FG^2 = ||s s^T - t t^T||_F^2 (arXiv 2509.25253), in the cheaper space."""

from __future__ import annotations

import torch
from torch import Tensor

from ._fused import GramStudent
from ._normalize import full_precision, normalized_pair, student_and_teacher

__all__ = ["frob2_cross", "gram", "prefer_kernel_space"]


def prefer_kernel_space(n: int, d_s: int, d_t: int) -> bool:
    """True when forming ``n x n`` kernels is cheaper than the ``d x d`` cross-covariances."""
    return n * (d_s + d_t) < d_s * d_s + d_t * d_t + d_s * d_t


def frob2_cross(a: Tensor, b: Tensor) -> Tensor:
    """``||a^T b||_F^2 = <a a^T, b b^T>`` for ``a [n, d_a]``, ``b [n, d_b]``, whichever side is smaller."""
    n, d_a = a.shape
    d_b = b.shape[1]
    if n * (d_a + d_b) < d_a * d_b:
        return ((a @ a.T) * (b @ b.T)).sum()
    return (a.T @ b).square().sum()


@full_precision
def gram(s: Tensor, t: Tensor) -> Tensor:
    """Squared Gram distance ``D_FG^2 = ||K_s - K_t||_F^2`` with ``K = x x^T`` of normalized inputs.

    Both inputs are centered and scaled to unit Frobenius norm, so ``D_FG^2`` lies in ``[0, 2]``.
    When ``n`` is small the ``n x n`` kernels are formed; otherwise the identity
    ``||s^T s||^2 + ||t^T t||^2 - 2 ||s^T t||^2`` avoids them. The teacher-only term needs no grad.

    Args:
        s: ``[n, d_s]`` student features (differentiable).
        t: ``[n, d_t]`` teacher features.

    Returns:
        0-dim tensor.

    Example:
        >>> x = torch.randn(16, 4)
        >>> float(gram(x, torch.cat([x, torch.zeros(16, 2)], 1))) < 1e-6
        True
    """
    n, d_s = s.shape[0], s.shape[-1]
    d_t = t.shape[-1]
    if not (t.requires_grad and torch.is_grad_enabled()):
        s_w, t_hat = student_and_teacher(s, t)
        return GramStudent.apply(s_w, t_hat, prefer_kernel_space(n, d_s, d_t))
    s, t = normalized_pair(s, t)
    if prefer_kernel_space(n, d_s, d_t):
        return (s @ s.T - t @ t.T).square().sum()
    return (s.T @ s).square().sum() + (t.T @ t).square().sum() - 2.0 * (s.T @ t).square().sum()
