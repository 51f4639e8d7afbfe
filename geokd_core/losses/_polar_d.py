"""Feature-space (``d x d``) route: polar factor of ``M = s^T t`` from its smaller Gram.

float32 input: eigendecompose the float32 Gram. Eigen-directions with a large eigenvalue are
accurate; the ``k`` small ones are refined in float64 (:func:`_refine_small`), or, when ``k`` is a
large share, everything is redone in float64. The polar factor is kept factored,
``P = W M + U_S Z_S``, so a gradient ``t P^T`` can be formed in the cheaper association.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._spectral import COND32, eig_psd, eigh_single_thread, gram_rows

# The refinement pays ~4 a b k float64 multiply-adds for k small directions; past this share of
# a it is cheaper to redo the whole eigendecomposition in float64.
_MAX_REFINE_SHARE = 0.25


@dataclass
class PolarD:
    """Polar factor of ``M [d_s, d_t]``, kept factored in the "wide" orientation ``Mw [a, b]``, a <= b.

    ``Mw = M`` if ``wide`` else ``M^T``; ``Pw = W Mw + U_S Z_S`` (``U_S``/``Z_S`` may be None) and
    ``P = Pw`` or ``Pw^T``; or ``Pw`` itself when it was formed directly. ``nuc = ||M||_*``.
    """

    nuc: Tensor
    wide: bool
    Mw: Tensor
    W: Tensor | None = None
    U_S: Tensor | None = None
    Z_S: Tensor | None = None
    Pw: Tensor | None = None

    def polar(self) -> Tensor:
        """The polar factor ``P`` with the shape of ``M``."""
        if self.Pw is not None:
            return self.Pw if self.wide else self.Pw.T
        assert self.W is not None
        Pw = self.W @ self.Mw
        if self.U_S is not None and self.Z_S is not None:
            Pw = Pw + self.U_S @ self.Z_S
        return Pw if self.wide else Pw.T

    def times_PT(self, x: Tensor) -> Tensor:
        """``x P^T`` for ``x [n, d_t]`` (the student gradient ``t P^T``), cheapest association."""
        n, b = x.shape[0], self.Mw.shape[1]
        if self.W is None:
            return x @ self.polar().T
        if self.wide:  # P^T = Mw^T W + Z_S^T U_S^T
            out = (x @ self.Mw.T) @ self.W if n < b else x @ (self.W @ self.Mw).T
            if self.U_S is not None and self.Z_S is not None:
                out = out + (x @ self.Z_S.T) @ self.U_S.T
            return out
        # not wide: P^T = Pw = W Mw + U_S Z_S, x is [n, a]
        out = (x @ self.W) @ self.Mw if n < b else x @ (self.W @ self.Mw)
        if self.U_S is not None and self.Z_S is not None:
            out = out + (x @ self.U_S) @ self.Z_S
        return out

    def times_P(self, x: Tensor) -> Tensor:
        """``x P`` for ``x [n, d_s]`` (the teacher gradient ``s P``)."""
        return x @ self.polar()


def polar_d(M: Tensor, rank_max: int) -> PolarD:
    """Nuclear norm and (factored) polar factor of ``M [a, b]`` (no grad).

    Args:
        M: ``[d_s, d_t]`` matrix.
        rank_max: an upper bound on ``rank(M)`` known from the shapes (e.g. ``n - 1`` after centering).
    """
    with torch.no_grad():
        wide = M.shape[0] <= M.shape[1]
        Mw = M if wide else M.T
        a = Mw.shape[0]
        if M.dtype == torch.float64:
            nuc, W = _inv_sqrt_f64(Mw, rank_max)
            return PolarD(nuc=nuc, wide=wide, Mw=Mw, W=W)
        lam, U = eigh_single_thread(gram_rows(Mw))
        lam_max = float(lam[-1])
        if lam_max <= 0.0:
            return PolarD(nuc=M.new_zeros(()), wide=wide, Mw=Mw, W=M.new_zeros(a, a))
        k = int((lam < COND32 * lam_max).sum())
        if k == 0:  # well conditioned: float32 is accurate
            sig = lam.sqrt()
            return PolarD(nuc=sig.sum(), wide=wide, Mw=Mw, W=(U / sig) @ U.T)
        if k <= _MAX_REFINE_SHARE * a:
            return _refine_small(Mw, lam, U, k, rank_max, wide)
        nuc, W = _inv_sqrt_f64(Mw, rank_max)
        # W has entries up to 1/sigma_min: multiply in float64, hand back the float32 polar factor.
        return PolarD(nuc=nuc.to(M.dtype), wide=wide, Mw=Mw, Pw=(W @ Mw.double()).to(M.dtype))


def _inv_sqrt_f64(Mw: Tensor, rank_max: int) -> tuple[Tensor, Tensor]:
    """float64 ``(||Mw||_*, (Mw Mw^T)^{+1/2})`` for ``Mw [a, b]``, ``a <= b``."""
    Mw = Mw.double()
    lam, U, _ = eig_psd(Mw @ Mw.T, rank_max)
    if lam.numel() == 0:
        return Mw.new_zeros(()), Mw.new_zeros(Mw.shape[0], Mw.shape[0])
    sig = lam.sqrt()
    return sig.sum(), (U / sig) @ U.T


def _refine_small(Mw: Tensor, lam: Tensor, U: Tensor, k: int, rank_max: int, wide: bool) -> PolarD:
    """Mixed precision: keep the float32 eigenpairs with large eigenvalues, redo the ``k`` small ones.

    A float32 eigendecomposition is exact for ``G + E`` with ``||E|| ~ eps32 lambda_max``. The
    polar factor's error in an eigen-pair direction ``(i, j)`` is ``~E_ij / (s_i (s_i + s_j))``,
    so only directions with a small singular value ``s_i`` are at risk. Their span ``Q_S`` is
    accurate to first order; the exact float64 Gram restricted to it, with the coupling to the
    large directions eliminated to second order (a Schur complement), gives float64 eigenpairs:

        Y = G Q_S (two thin float64 products),  E = Q_L^T Y,
        H = Q_S^T Y - E^T diag(1 / lambda_L) E,  H = V diag(theta) V^T,
        U_S = Q_S V - Q_L diag(1 / lambda_L) E V.

    Cost: ``~4 a b k`` float64 multiply-adds instead of a full float64 eigendecomposition.
    """
    a = Mw.shape[0]
    M64 = Mw.double()
    Q_S = U[:, :k].double()
    Q_L, lam_L = U[:, k:], lam[k:]
    Q_L64 = Q_L.double()
    Y = M64 @ (M64.T @ Q_S)  # G Q_S in float64, [a, k]
    E = Q_L64.T @ Y  # coupling to the large directions, [a - k, k]
    E_scaled = E / lam_L.double().unsqueeze(1)
    H = Q_S.T @ Y - E.T @ E_scaled
    theta, V = eigh_single_thread((H + H.T) / 2)
    U_S = Q_S @ V - Q_L64 @ (E_scaled @ V)
    # Structural zeros (rank bound) are the smallest; then drop float64 numerical zeros.
    drop = max(a - rank_max, 0)
    theta, U_S = theta[drop:], U_S[:, drop:]
    keep = theta > float(lam_L[-1]) * a * torch.finfo(torch.float64).eps
    theta, U_S = theta[keep], U_S[:, keep]
    sig_L, sig_S = lam_L.sqrt(), theta.sqrt()
    nuc = sig_L.double().sum() + sig_S.sum()
    W = (Q_L / sig_L) @ Q_L.T  # large part: float32 is accurate
    # Small part: 1 / sig_S amplifies rounding, so Z_S = diag(1/sig_S) U_S^T M in float64.
    Z_S = (U_S.T @ M64) / sig_S.unsqueeze(1)
    return PolarD(nuc=nuc.to(Mw.dtype), wide=wide, Mw=Mw, W=W, U_S=U_S.to(Mw.dtype), Z_S=Z_S.to(Mw.dtype))
