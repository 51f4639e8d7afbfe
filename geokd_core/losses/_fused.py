"""Student-only fast paths: normalization, loss and envelope gradient in one autograd node.

Used when the teacher needs no gradient (the distillation case). The student is centered and
scaled inside the node; its backward applies the normalization Jacobian in closed form,
``grad_s = r (h - <h, s_hat> s_hat)`` for an upstream ``h`` that is already column-centered,
instead of replaying half a dozen element-wise autograd nodes over ``[n, d]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._normalize import _TINY, center_scale, full_precision
from ._polar_d import polar_d
from ._polar_n import polar_n
from ._spectral import gram_rows, prefer_kernel_route


class ProcrustesStudent(torch.autograd.Function):
    """``D_P^2(s, t_hat)`` with ``t_hat`` already centered and unit-norm (no grad)."""

    @staticmethod
    def forward(ctx: Any, s: Tensor, t_hat: Tensor) -> Tensor:  # type: ignore[override]
        s_c, r = center_scale(s)
        n, d_s = s.shape
        d_t = t_hat.shape[1]
        rank_max = min(n - 1, d_s, d_t)
        ctx.r = r
        if prefer_kernel_route(n, d_s, d_t):
            res = polar_n(s_c * r, t_hat, rank_max, need_s=True, need_t=False)
            ctx.route, ctx.G_s = "n", res.G_s
            nuc = res.nuc
        else:
            polar = polar_d((s_c.T @ t_hat) * r, rank_max)
            ctx.route, ctx.polar = "d", polar
            nuc = polar.nuc
        ctx.nu = float(nuc)
        ctx.save_for_backward(s_c, t_hat)
        # ||s_hat||^2 and ||t_hat||^2 are exactly 1 (or 0 for an all-constant input)
        t_nonzero = float(t_hat[0].abs().sum() + t_hat[-1].abs().sum()) > 0 or bool(t_hat.any())
        return (float(r > 0) + float(t_nonzero)) - 2.0 * nuc

    @staticmethod
    @full_precision
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:  # type: ignore[override]
        s_c, t_hat = ctx.saved_tensors
        r = ctx.r
        # upstream in s_hat-space: h = -2 t_hat P^T; <h, s_hat> = -2 nu.
        tp = (ctx.G_s @ s_c) * r if ctx.route == "n" else ctx.polar.times_PT(t_hat)
        # grad_s = r (h + 2 nu s_hat) = -2 r (t_hat P^T - nu r s_c)
        out = tp.sub_(s_c, alpha=ctx.nu * r)
        return out.mul_(grad * (-2.0 * r)), None


class GramStudent(torch.autograd.Function):
    """``D_FG^2(s, t_hat)`` with ``t_hat`` already centered and unit-norm (no grad)."""

    @staticmethod
    def forward(ctx: Any, s: Tensor, t_hat: Tensor, kernel: bool) -> Tensor:  # type: ignore[override]
        s_c, r = center_scale(s)
        ctx.r, ctx.kernel = r, kernel
        if kernel:  # n x n: D = K_s - K_t
            D = (s_c @ s_c.T) * (r * r) - t_hat @ t_hat.T
            ctx.save_for_backward(s_c, D)
            return D.square().sum()
        A = gram_rows(s_c.T) * (r * r)  # s_hat^T s_hat
        B = gram_rows(t_hat.T)  # teacher only
        M = (s_c.T @ t_hat) * r
        a2, m2 = A.square().sum(), M.square().sum()
        ctx.c = float(a2 - m2)
        ctx.save_for_backward(s_c, t_hat, A, M)
        return a2 + B.square().sum() - 2.0 * m2

    @staticmethod
    @full_precision
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:  # type: ignore[override]
        r = ctx.r
        if ctx.kernel:
            s_c, D = ctx.saved_tensors
            # h = 4 D s_hat, <h, s_hat> = 4 <D, K_s>; grad_s = 4 r^2 (D - c I) s_c
            c = float((D * (s_c @ s_c.T)).sum()) * r * r
            out = torch.addmm(s_c, D, s_c, beta=-c)
            return out.mul_(grad * (4.0 * r * r)), None, None
        s_c, t_hat, A, M = ctx.saved_tensors
        # h = 4 (s_hat A - t_hat M^T), <h, s_hat> = 4 (||A||^2 - ||M||^2) = 4 c
        # grad_s = 4 r (s_hat (A - c I) - t_hat M^T)
        A_shift = (A - ctx.c * torch.eye(A.shape[0], dtype=A.dtype, device=A.device)) * r
        out = torch.addmm(s_c @ A_shift, t_hat, M.T, alpha=-1.0)
        return out.mul_(grad * (4.0 * r)), None, None


class CkaStudent(torch.autograd.Function):
    """``1 - CKA(s, t_hat)`` (linear, biased HSIC) with ``t_hat`` centered and unit-norm (no grad).

    CKA is scale-invariant, so ``<grad CKA, s_hat> = 0`` and the normalization Jacobian is just ``r``:
    ``grad_s = r (2 / sqrt(a2 b2)) (t_hat M^T - (m2 / a2) s_hat A)`` (``A = s_hat^T s_hat``,
    ``M = s_hat^T t_hat``, ``a2 = ||A||^2``, ``b2 = ||t_hat^T t_hat||^2``, ``m2 = ||M||^2``).
    """

    @staticmethod
    def forward(ctx: Any, s: Tensor, t_hat: Tensor, kernel: bool) -> Tensor:  # type: ignore[override]
        s_c, r = center_scale(s)
        ctx.r, ctx.kernel = r, kernel
        if kernel:
            Ks, Kt = (s_c @ s_c.T) * (r * r), t_hat @ t_hat.T
            a2, b2, m2 = Ks.square().sum(), Kt.square().sum(), (Ks * Kt).sum()
            saved: tuple[Tensor, ...] = (s_c, Ks, Kt)
        else:
            A = gram_rows(s_c.T) * (r * r)
            M = (s_c.T @ t_hat) * r
            a2, b2, m2 = A.square().sum(), gram_rows(t_hat.T).square().sum(), M.square().sum()
            saved = (s_c, t_hat, A, M)
        ctx.a2, ctx.b2, ctx.m2 = float(a2), float(b2), float(m2)
        ctx.save_for_backward(*saved)
        if ctx.a2 <= _TINY or ctx.b2 <= _TINY:  # a constant input has no geometry: CKA = 0
            return a2.new_ones(())
        return 1.0 - m2 / (a2 * b2).sqrt()

    @staticmethod
    @full_precision
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:  # type: ignore[override]
        r, a2, b2, m2 = ctx.r, ctx.a2, ctx.b2, ctx.m2
        if a2 <= _TINY or b2 <= _TINY:
            return torch.zeros_like(ctx.saved_tensors[0]), None, None
        if ctx.kernel:
            s_c, Ks, Kt = ctx.saved_tensors
            # (K_t - (m2/a2) K_s) s_hat
            out = (Kt - Ks * (m2 / a2)) @ s_c * r
        else:
            s_c, t_hat, A, M = ctx.saved_tensors
            out = torch.addmm(s_c @ (A * (-r * m2 / a2)), t_hat, M.T)
        # loss = 1 - CKA: d loss / d s = -r (2 / sqrt(a2 b2)) (...)
        return out.mul_(grad * (-2.0 * r / (a2 * b2) ** 0.5)), None, None
