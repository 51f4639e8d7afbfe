"""Kernel (``n x n``) route for ``||s^T t||_*`` when there are fewer rows than features.

With ``A = K_s^{1/2}`` and ``X = A K_t A``: ``||s^T t||_* = tr X^{1/2}``, and the envelope gradients
are ``t P^T = K_t A X^{+1/2} A^+ s`` and ``s P = A X^{+1/2} A t``; nothing ``d x d`` is formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._spectral import eig_psd

# At or below this many rows the kernels are tiny: go straight to float64 (cheaper than a float32
# attempt plus a fallback, and accurate for rank-deficient inputs).
_ALWAYS_F64_ROWS = 256


@dataclass
class PolarN:
    """n-space result: ``nuc`` and the ``n x n`` maps with ``t P^T = G_s s`` and ``s P = G_t t``."""

    nuc: Tensor
    G_s: Tensor | None
    G_t: Tensor | None


def polar_n(s: Tensor, t: Tensor, rank_max: int, need_s: bool, need_t: bool) -> PolarN:
    """Nuclear norm of ``s^T t`` and the envelope-gradient maps, computed in ``n x n`` space.

    Args:
        s: ``[n, d_s]`` centered, normalized student features (no grad).
        t: ``[n, d_t]`` centered, normalized teacher features (no grad).
        rank_max: upper bound on the ranks of ``s`` and ``t``.
        need_s / need_t: which gradient maps to build.
    """
    with torch.no_grad():
        out_dtype = s.dtype
        first = torch.float64 if s.shape[0] <= _ALWAYS_F64_ROWS else s.dtype
        for dtype in (first, torch.float64):
            sw, tw = s.to(dtype), t.to(dtype)
            Ks, Kt = sw @ sw.T, tw @ tw.T
            lam_s, E, ok_s = eig_psd(Ks, rank_max)
            if lam_s.numel() == 0:  # all-zero student
                return _zero(Ks, out_dtype, need_s, need_t)
            r_s = lam_s.sqrt()
            EA = E * r_s.sqrt()  # A = EA @ EA^T = K_s^{1/2}
            A = EA @ EA.T
            X = A @ Kt @ A
            mu, V, ok_x = eig_psd(X, rank_max)
            if (ok_s and ok_x) or dtype == torch.float64:
                break
        if mu.numel() == 0:  # s^T t = 0
            return _zero(Ks, out_dtype, need_s, need_t)
        sig = mu.sqrt()
        Xih = (V / sig) @ V.T  # X^{+1/2}
        G_s = G_t = None
        if need_s:
            A_pinv = (E / r_s) @ E.T  # (K_s^{1/2})^+
            G_s = (Kt @ A @ Xih @ A_pinv).to(out_dtype)
        if need_t:
            G_t = (A @ Xih @ A).to(out_dtype)
        return PolarN(nuc=sig.sum().to(out_dtype), G_s=G_s, G_t=G_t)


def _zero(K: Tensor, dtype: torch.dtype, need_s: bool, need_t: bool) -> PolarN:
    zeros = torch.zeros_like(K, dtype=dtype)
    return PolarN(nuc=zeros.new_zeros(()), G_s=zeros if need_s else None, G_t=zeros if need_t else None)
