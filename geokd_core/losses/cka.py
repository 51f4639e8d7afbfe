"""Linear CKA loss ``1 - CKA`` (Kornblith et al. 2019), biased or debiased HSIC."""

from __future__ import annotations

import torch
from torch import Tensor

from ._fused import CkaStudent
from ._normalize import full_precision, normalized_pair, student_and_teacher
from .gram import frob2_cross, prefer_kernel_space

__all__ = ["cka", "cka_debiased", "cka_similarity_value"]

# Guards the square root of a product of (possibly negative, for the unbiased estimator) HSICs.
_TINY = 1e-30


def _hsic_unbiased(a: Tensor, b: Tensor, cross: Tensor) -> Tensor:
    """Unbiased HSIC (Song et al. 2012, eq. 5) of linear kernels ``a a^T``, ``b b^T``, up to 1/(n(n-3)).

    Computed from ``cross = ||a^T b||_F^2`` and row statistics, without forming ``n x n`` kernels:
    ``tr(K~L~) = tr(KL) - sum_i k_ii l_ii``, ``1^T K~ 1 = ||a^T 1||^2 - tr K``,
    ``K~ 1 = a (a^T 1) - diag K``.
    """
    n = a.shape[0]
    ka, kb = a.square().sum(1), b.square().sum(1)  # diagonals of the kernels
    ca, cb = a.sum(0), b.sum(0)
    ones_a = ca.square().sum() - ka.sum()
    ones_b = cb.square().sum() - kb.sum()
    row_a, row_b = a @ ca - ka, b @ cb - kb
    trace = cross - (ka * kb).sum()
    return trace + ones_a * ones_b / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (row_a * row_b).sum()


def cka_similarity_value(s: Tensor, t: Tensor, debiased: bool = False) -> Tensor:
    """Linear CKA in ``[0, 1]`` of already centered ``s [n, d_s]`` and ``t [n, d_t]`` (differentiable)."""
    st = frob2_cross(s, t)
    ss = frob2_cross(s, s)
    tt = frob2_cross(t, t)
    if debiased:
        if s.shape[0] < 4:
            raise ValueError("debiased CKA needs at least 4 rows (the unbiased HSIC divides by n - 3)")
        st, ss, tt = _hsic_unbiased(s, t, st), _hsic_unbiased(s, s, ss), _hsic_unbiased(t, t, tt)
    return st / (ss * tt).clamp_min(_TINY).sqrt()


@full_precision
def cka(s: Tensor, t: Tensor, debiased: bool = False) -> Tensor:
    """``1 - CKA(s, t)`` with linear kernels on centered inputs.

    CKA = HSIC(K_s, K_t) / sqrt(HSIC(K_s, K_s) HSIC(K_t, K_t)). ``debiased=True`` uses the unbiased
    HSIC estimator of Song et al. (2012) as in Nguyen et al. (2021); then ``CKA(x, x) = 1`` still,
    but the value can fall slightly outside ``[0, 1]`` for unrelated inputs.

    Args:
        s: ``[n, d_s]`` student features (differentiable).
        t: ``[n, d_t]`` teacher features.
        debiased: use the unbiased HSIC (needs ``n >= 4``).

    Returns:
        0-dim tensor.

    Example:
        >>> import torch
        >>> x = torch.randn(20, 5)
        >>> abs(float(cka(x, 2 * x + 3))) < 1e-6
        True
    """
    if not debiased and not (t.requires_grad and torch.is_grad_enabled()):
        s_w, t_hat = student_and_teacher(s, t)
        n, d_s, d_t = s_w.shape[0], s_w.shape[1], t_hat.shape[1]
        return CkaStudent.apply(s_w, t_hat, prefer_kernel_space(n, d_s, d_t))
    s, t = normalized_pair(s, t)
    return 1.0 - cka_similarity_value(s, t, debiased=debiased)


def cka_debiased(s: Tensor, t: Tensor) -> Tensor:
    """``1 - CKA`` with the unbiased HSIC estimator; see :func:`cka`."""
    return cka(s, t, debiased=True)
