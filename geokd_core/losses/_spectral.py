"""Shared spectral helpers for the nuclear-norm routes (no autograd here).

Two routes compute ``||s^T t||_*`` and its envelope gradient, picked by a flop estimate:
:mod:`._polar_d` eigendecomposes the smaller ``d x d`` Gram of ``M = s^T t``; :mod:`._polar_n`
works with ``n x n`` kernels when ``n`` is below the feature sizes.

Squaring ``M`` squares its condition number, so a float32 eigendecomposition is only trusted when
the spectrum is well conditioned; the rest is refined or redone in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

# A float32 eigen-route is trusted for eigenvalues of the squared Gram of at least this fraction
# of the largest one (singular values >= ~3 % of the largest): the polar-factor error there stays
# ~eps32 / _COND32 < 1e-4. Smaller ones are refined in float64.
COND32 = 1e-3
# Below this many rows a Gram block is one plain matrix product.
_SYRK_MIN = 384
# Roughly what one eigh costs, in multiply-adds per size^3 (used only to pick a route).
_EIGH_COST = 10.0


def prefer_kernel_route(n: int, d_s: int, d_t: int) -> bool:
    """True when the ``n x n`` route is cheaper than the ``d x d`` one (flop estimate)."""
    a, b = min(d_s, d_t), max(d_s, d_t)
    cost_d = 2.0 * n * d_s * d_t + 2.0 * a * a * b + _EIGH_COST * a**3
    cost_n = n * n * (2.0 * d_s + d_t) + (2 * _EIGH_COST + 5.0) * n**3
    return cost_n < cost_d


def gram_rows(A: Tensor, out: Tensor | None = None) -> Tensor:
    """``A A^T`` for ``A [a, b]``, multiplying only the blocks on and above the diagonal.

    Recursive 2 x 2 split down to ``_SYRK_MIN`` rows: 5/8 of the multiply-adds of a plain
    ``A @ A.T`` after two levels (PyTorch exposes no symmetric rank-k product).
    """
    a = A.shape[0]
    if out is None:
        out = torch.empty(a, a, dtype=A.dtype, device=A.device)
    if a < _SYRK_MIN:
        out.copy_(A @ A.T)
        return out
    h = a // 2
    gram_rows(A[:h], out[:h, :h])
    gram_rows(A[h:], out[h:, h:])
    off = A[:h] @ A[h:].T
    out[:h, h:] = off
    out[h:, :h] = off.T
    return out


def eigh_single_thread(G: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.linalg.eigh`` run on one intra-op thread on CPU (other devices unchanged).

    Why: these eigendecompositions are small (d <= a few thousand) and latency-bound. Measured in a
    training step on the 2-core dev machine with the other core busy: one Procrustes call on
    1673 x 384 token features took 551 ms with 2 OpenMP threads and 34 ms with 1; an idle machine
    gains little from the second thread. The caller's thread count is restored afterwards.
    """
    threads = torch.get_num_threads()
    if G.device.type != "cpu" or threads == 1:
        return torch.linalg.eigh(G)
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(G)
    finally:
        torch.set_num_threads(threads)


def eig_psd(G: Tensor, rank_max: int) -> tuple[Tensor, Tensor, bool]:
    """Eigenpairs of a PSD matrix that are numerically nonzero; ``ok`` is False if ill-conditioned.

    The ``size - rank_max`` smallest eigenvalues are structurally zero (e.g. centering removes one
    rank) and are dropped without looking at them. Of the rest, values below
    ``size * eps * lambda_max`` are numerical zeros.

    Returns:
        ``(lam [k], U [size, k], ok)`` with the kept eigenvalues ascending; ``ok`` is False for a
        float32 decomposition with a kept eigenvalue below ``COND32 * lambda_max`` or a dropped one
        (float64 might resolve it).
    """
    size = G.shape[0]
    lam, U = eigh_single_thread(G)
    drop = max(size - rank_max, 0)
    lam, U = lam[drop:], U[:, drop:]
    if lam.numel() == 0 or float(lam[-1]) <= 0.0:
        return lam[:0], U[:, :0], True
    lam_max = float(lam[-1])
    keep = lam > lam_max * size * torch.finfo(G.dtype).eps
    ok = True
    if G.dtype != torch.float64:
        ok = bool(keep.all()) and float(lam[0]) >= lam_max * COND32
    return lam[keep], U[:, keep], ok
