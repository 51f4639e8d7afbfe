"""Nuclear norm and polar factor of ``M = s^T t`` without an SVD backward (no autograd here).

Two routes, picked by a flop estimate:

* d-space: eigendecompose the smaller Gram ``M M^T`` (or ``M^T M``); ``P = (M M^T)^{+1/2} M``.
* n-space (``n`` below the feature sizes): with ``A = K_s^{1/2}``, ``X = A K_t A`` (``n x n``),
  ``||M||_* = tr X^{1/2}`` and the envelope gradients are ``t P^T = K_t A X^{+1/2} A^+ s`` and
  ``s P = A X^{+1/2} A t`` - nothing ``d x d`` is ever formed.

Squaring ``M`` squares its condition number, so a float32 eigendecomposition is only trusted when
the retained spectrum is well conditioned; otherwise the decomposition is redone in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# A float32 eigen-route is trusted when every retained eigenvalue of the squared Gram is at least
# this fraction of the largest one (condition number of M <= ~30): the polar-factor error then
# stays ~eps32 * kappa^2 < 1e-4.  Below it, float64.
_COND32 = 1e-3
# Roughly what one eigh costs, in multiply-adds per n^3 (used only to pick a route).
_EIGH_COST = 10.0


@dataclass
class PolarD:
    """d-space result: ``nuc = ||M||_*`` and the polar factor ``P`` (same shape as ``M``)."""

    nuc: Tensor
    P: Tensor


@dataclass
class PolarN:
    """n-space result: ``nuc`` and the ``n x n`` maps with ``t P^T = G_s s`` and ``s P = G_t t``."""

    nuc: Tensor
    G_s: Tensor | None
    G_t: Tensor | None


def prefer_kernel_route(n: int, d_s: int, d_t: int) -> bool:
    """True when the ``n x n`` route is cheaper than the ``d x d`` one (flop estimate)."""
    a, b = min(d_s, d_t), max(d_s, d_t)
    cost_d = 2.0 * n * d_s * d_t + 2.0 * a * a * b + _EIGH_COST * a**3
    cost_n = n * n * (2.0 * d_s + d_t) + (2 * _EIGH_COST + 5.0) * n**3
    return cost_n < cost_d


def _eig_psd(G: Tensor, rank_max: int) -> tuple[Tensor, Tensor, bool]:
    """Eigenpairs of a PSD matrix that are numerically nonzero; ``ok`` is False if ill-conditioned.

    The ``size - rank_max`` smallest eigenvalues are structurally zero (e.g. centering removes one
    rank) and are dropped without looking at them. Of the rest, values below
    ``size * eps * lambda_max`` are numerical zeros.

    Returns:
        ``(lam [k], U [size, k], ok)`` with the kept eigenvalues ascending.
    """
    size = G.shape[0]
    lam, U = torch.linalg.eigh(G)
    drop = max(size - rank_max, 0)
    lam, U = lam[drop:], U[:, drop:]
    lam_max = lam[-1].clamp_min(0) if lam.numel() else G.new_zeros(())
    eps = torch.finfo(G.dtype).eps
    keep = lam > lam_max * (size * eps) if float(lam_max) > 0 else torch.zeros_like(lam, dtype=torch.bool)
    lam, U = lam[keep], U[:, keep]
    ok = True
    if G.dtype != torch.float64 and lam.numel():
        # Something kept but tiny, or something dropped that float64 might resolve: both mean the
        # float32 answer cannot be trusted to 1e-3.
        ok = bool(lam[0] >= lam_max * _COND32) and int(keep.sum()) == keep.numel()
    return lam, U, ok


def polar_d(M: Tensor, rank_max: int) -> PolarD:
    """Nuclear norm and polar factor of ``M [a, b]`` from the eigendecomposition of its smaller Gram.

    Args:
        M: ``[a, b]`` matrix (no grad).
        rank_max: an upper bound on ``rank(M)`` known from the shapes (e.g. ``n - 1`` after centering).
    """
    with torch.no_grad():
        out_dtype = M.dtype
        for dtype in (M.dtype, torch.float64):
            Mw = M.to(dtype)
            wide = Mw.shape[0] <= Mw.shape[1]
            G = Mw @ Mw.T if wide else Mw.T @ Mw
            lam, U, ok = _eig_psd(G, rank_max)
            if ok or dtype == torch.float64:
                break
        if lam.numel() == 0:
            return PolarD(nuc=M.new_zeros(()), P=torch.zeros_like(M))
        sig = lam.sqrt()
        W = (U / sig) @ U.T  # (M M^T)^{+1/2} on the kept subspace
        P = W @ Mw if wide else Mw @ W
        return PolarD(nuc=sig.sum().to(out_dtype), P=P.to(out_dtype))


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
        for dtype in (s.dtype, torch.float64):
            sw, tw = s.to(dtype), t.to(dtype)
            Ks, Kt = sw @ sw.T, tw @ tw.T
            lam_s, E, ok_s = _eig_psd(Ks, rank_max)
            if lam_s.numel() == 0:
                return PolarN(nuc=s.new_zeros(()), G_s=torch.zeros_like(Ks).to(out_dtype) if need_s else None,
                              G_t=torch.zeros_like(Ks).to(out_dtype) if need_t else None)
            r_s = lam_s.sqrt()
            EA = E * r_s.sqrt()  # A = EA @ EA^T = K_s^{1/2}
            A = EA @ EA.T
            X = A @ Kt @ A
            mu, V, ok_x = _eig_psd(X, rank_max)
            if (ok_s and ok_x) or dtype == torch.float64:
                break
        if mu.numel() == 0:
            zeros = torch.zeros_like(Ks).to(out_dtype)
            return PolarN(nuc=s.new_zeros(()), G_s=zeros if need_s else None, G_t=zeros if need_t else None)
        sig = mu.sqrt()
        Xih = (V / sig) @ V.T  # X^{+1/2}
        G_s = G_t = None
        if need_s:
            A_pinv = (E / r_s) @ E.T  # (K_s^{1/2})^+
            G_s = (Kt @ A @ Xih @ A_pinv).to(out_dtype)
        if need_t:
            G_t = (A @ Xih @ A).to(out_dtype)
        return PolarN(nuc=sig.sum().to(out_dtype), G_s=G_s, G_t=G_t)
