"""procrustes: against scipy / numpy SVD, invariances, exact and finite gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes

from geokd_core.losses import cka, procrustes

SHAPES = [(50, 8, 12), (10, 30, 40), (200, 20, 20), (20, 20, 30), (12, 12, 30), (7, 3, 2)]


def _normalize_np(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    return x / np.sqrt((x**2).sum())


def _ref_scipy(s: np.ndarray, t: np.ndarray) -> float:
    """min_Q ||s Q - t||^2 over orthogonal Q, the narrower side zero-padded (scipy's solver)."""
    a, b = _normalize_np(s), _normalize_np(t)
    d = max(a.shape[1], b.shape[1])
    a = np.pad(a, ((0, 0), (0, d - a.shape[1])))
    b = np.pad(b, ((0, 0), (0, d - b.shape[1])))
    r, _ = orthogonal_procrustes(a, b)
    return float(((a @ r - b) ** 2).sum())


def _naive_torch(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Autograd through the SVD-based nuclear norm: the naive reference."""
    a, b = s - s.mean(0), t - t.mean(0)
    a, b = a / a.square().sum().sqrt(), b / b.square().sum().sqrt()
    return 2.0 - 2.0 * torch.linalg.matrix_norm(a.T @ b, ord="nuc")


@pytest.mark.parametrize("n,d_s,d_t", SHAPES)
def test_value_matches_scipy_and_numpy_svd(n: int, d_s: int, d_t: int) -> None:
    rng = np.random.default_rng(n + d_s + d_t)
    s, t = rng.standard_normal((n, d_s)), rng.standard_normal((n, d_t))
    got = float(procrustes(torch.from_numpy(s), torch.from_numpy(t)))
    nuc = np.linalg.svd(_normalize_np(s).T @ _normalize_np(t), compute_uv=False).sum()
    assert got == pytest.approx(2.0 - 2.0 * nuc, abs=1e-10)
    assert got == pytest.approx(_ref_scipy(s, t), abs=1e-10)
    assert 0.0 <= got <= 2.0
    # float32 agrees to float32 accuracy
    got32 = float(procrustes(torch.from_numpy(s).float(), torch.from_numpy(t).float()))
    assert got32 == pytest.approx(got, abs=1e-5)


@pytest.mark.parametrize("teacher_grad", [False, True], ids=["student-only", "both"])
@pytest.mark.parametrize("n,d_s,d_t", SHAPES)
def test_gradient_matches_svd_autograd(n: int, d_s: int, d_t: int, teacher_grad: bool) -> None:
    g = torch.Generator().manual_seed(n * d_s)
    s = torch.randn(n, d_s, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(n, d_t, dtype=torch.float64, generator=g, requires_grad=teacher_grad)
    procrustes(s, t).backward()
    s2, t2 = s.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
    _naive_torch(s2, t2).backward()
    pairs = [(s.grad, s2.grad)] + ([(t.grad, t2.grad)] if teacher_grad else [])
    for ours, ref in pairs:
        assert torch.linalg.norm(ours - ref) <= 1e-8 * torch.linalg.norm(ref)


@pytest.mark.parametrize("n,d_s,d_t", [(9, 4, 6), (5, 7, 9), (6, 5, 5)])
def test_gradcheck_float64(n: int, d_s: int, d_t: int) -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(n, d_s, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(n, d_t, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(procrustes, (s, t))  # both differentiable
    t_fixed = t.detach()
    assert torch.autograd.gradcheck(lambda x: procrustes(x, t_fixed), (s,))  # student-only path


def test_invariances_and_zero_iff_rotation() -> None:
    g = torch.Generator().manual_seed(1)
    s = torch.randn(64, 6, dtype=torch.float64, generator=g)
    t = torch.randn(64, 10, dtype=torch.float64, generator=g)
    base = procrustes(s, t)
    q_s, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=g))
    q_t, _ = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64, generator=g))
    moved = procrustes(3.0 * s @ q_s + 5.0, 0.5 * t @ q_t - 2.0)
    assert float(moved) == pytest.approx(float(base), abs=1e-12)
    # s embedded isometrically in a wider space: distance 0
    emb, _ = torch.linalg.qr(torch.randn(10, 6, dtype=torch.float64, generator=g))
    assert abs(float(procrustes(s, s @ emb.T))) < 1e-12
    # symmetric in its arguments
    assert float(procrustes(t, s)) == pytest.approx(float(base), abs=1e-12)


def test_cka_near_zero_but_procrustes_positive() -> None:
    """The paper's point: 1 - CKA ~ 0 while D_P^2 > 0 (CKA squares the spectrum, hiding small dims)."""
    g = torch.Generator().manual_seed(2)
    raw = torch.randn(200, 19, dtype=torch.float64, generator=g)
    q, _ = torch.linalg.qr(raw - raw.mean(0))  # 19 orthonormal, centered columns
    k, delta = 10, 0.3
    shared = q[:, :1]
    s = torch.cat([shared, delta * q[:, 1:k]], 1)
    t = torch.cat([shared, delta * q[:, k : 2 * k - 1]], 1)
    energy = 1.0 + (k - 1) * delta**2
    expect_dp = 2.0 - 2.0 / energy  # only the shared column aligns
    expect_cka = 1.0 - 1.0 / (1.0 + (k - 1) * delta**4)
    assert float(procrustes(s, t)) == pytest.approx(expect_dp, abs=1e-10)
    assert float(cka(s, t)) == pytest.approx(expect_cka, abs=1e-10)
    assert float(cka(s, t)) < 0.07 and float(procrustes(s, t)) > 0.85


def _finite_grad(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    s = s.clone().requires_grad_()
    loss = procrustes(s, t)
    loss.backward()
    assert torch.isfinite(loss)
    assert s.grad is not None and torch.isfinite(s.grad).all()
    return s.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rank_deficient_inputs_have_finite_exact_gradients(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    t = torch.randn(16, 24, generator=g).to(dtype)
    # pooled regime, n < d: differentiable (row spaces match), so equal to the SVD autograd.
    s = torch.randn(16, 40, generator=g).to(dtype)
    ours = _finite_grad(s, t)
    s64 = s.double().requires_grad_()
    _naive_torch(s64, t.double()).backward()
    tol = 1e-8 if dtype == torch.float64 else 1e-3
    assert torch.linalg.norm(ours.double() - s64.grad) <= tol * torch.linalg.norm(s64.grad)
    # zero rows (padding) and an all-zero student
    s_zero_rows = torch.randn(16, 8, generator=g).to(dtype)
    s_zero_rows[3:7] = 0
    _finite_grad(s_zero_rows, t)
    assert float(_finite_grad(torch.zeros(16, 8, dtype=dtype), t).abs().sum()) == 0.0
    assert float(_finite_grad(torch.randn(1, 8, dtype=dtype), t[:1]).abs().sum()) == 0.0


def test_duplicated_columns_give_a_valid_gradient() -> None:
    """Duplicated student columns: a kink; the gradient is finite and exact along smooth directions."""
    g = torch.Generator().manual_seed(4)
    base = torch.randn(40, 5, dtype=torch.float64, generator=g)
    s = torch.cat([base, base[:, :2]], 1)  # columns 5, 6 duplicate 0, 1
    t = torch.randn(40, 9, dtype=torch.float64, generator=g)
    grad = _finite_grad(s, t)
    # a direction that keeps the duplicates equal stays on the smooth manifold
    d_base = torch.randn(40, 5, dtype=torch.float64, generator=g)
    direction = torch.cat([d_base, d_base[:, :2]], 1)
    h = 1e-6
    numeric = (procrustes(s + h * direction, t) - procrustes(s - h * direction, t)) / (2 * h)
    assert float((grad * direction).sum()) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)
    # and the symmetric choice of subgradient: identical columns get identical gradients
    assert torch.allclose(grad[:, 5:], grad[:, :2], atol=1e-12)


def _graded(n: int, d: int, lo: float, g: torch.Generator) -> torch.Tensor:
    """``[n, d]`` with singular values log-spaced from 1 to 10**lo (condition number 10**-lo)."""
    u, _ = torch.linalg.qr(torch.randn(n, d, dtype=torch.float64, generator=g))
    v, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=g))
    return (u * torch.logspace(0, lo, d, dtype=torch.float64)) @ v.T


@pytest.mark.parametrize("case", ["graded", "square"])
def test_ill_conditioned_float32_gradient_matches_float64(case: str) -> None:
    """Squaring M squares its condition number: a plain float32 eigen-route is 8-44 % off here.

    ``square`` is the OPT-like n = d_s case (the centered student is rank-deficient).
    """
    g = torch.Generator().manual_seed(5)
    if case == "graded":
        s, t = _graded(64, 48, -3.0, g), torch.randn(64, 100, dtype=torch.float64, generator=g)
    else:
        s, t = (
            torch.randn(256, 256, dtype=torch.float64, generator=g),
            torch.randn(256, 640, dtype=torch.float64, generator=g),
        )
    g32 = _finite_grad(s.float(), t.float()).double()
    g64 = _finite_grad(s, t)
    assert torch.linalg.norm(g32 - g64) <= 1e-3 * torch.linalg.norm(g64)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_upcast(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(6)
    s, t = torch.randn(64, 16, generator=g).to(dtype), torch.randn(64, 32, generator=g).to(dtype)
    got = procrustes(s.requires_grad_(), t)
    assert got.dtype == torch.float32
    assert float(got.detach()) == pytest.approx(float(procrustes(s.detach().float(), t.float())), abs=1e-5)
    got.backward()
    assert s.grad is not None and s.grad.dtype == dtype and torch.isfinite(s.grad.float()).all()


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="same number of rows"):
        procrustes(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        procrustes(torch.randn(4, 3, 2), torch.randn(4, 3))


@pytest.mark.parametrize(
    "case,branch",
    [("random", "float32"), ("square", "refine"), ("graded", "float64"), ("random64", "float64-input")],
)
@pytest.mark.parametrize("tall", [False, True])
def test_polar_factor_branches_match_numpy_svd(case: str, branch: str, tall: bool) -> None:
    """Every branch of the d-space route returns U V^T and sum(sigma) of numpy's SVD."""
    from geokd_core.losses._polar_d import polar_d

    g = torch.Generator().manual_seed(7)
    if case == "random" or case == "random64":
        M = torch.randn(40, 90, dtype=torch.float64, generator=g)
    elif case == "square":  # the OPT-like spectrum: a few tiny singular values
        s = torch.randn(256, 256, dtype=torch.float64, generator=g)
        M = (s - s.mean(0)).T @ torch.randn(256, 640, dtype=torch.float64, generator=g)
    else:
        M = _graded(48, 48, -3.0, g).T @ torch.randn(48, 100, dtype=torch.float64, generator=g)
    M = M / torch.linalg.matrix_norm(M, ord="nuc")
    M = M.T if tall else M
    u, sig, vt = np.linalg.svd(M.numpy(), full_matrices=False)
    rank = int((sig > sig[0] * 1e-12).sum())
    ref_p = u[:, :rank] @ vt[:rank]
    inp = M if branch == "float64-input" else M.float()
    rank_max = 255 if case == "square" else min(M.shape)
    res = polar_d(inp, rank_max)
    got_p = res.polar().double().numpy()
    assert float(res.nuc) == pytest.approx(float(sig.sum()), rel=1e-6)
    assert np.linalg.norm(got_p - ref_p) <= 1e-4 * np.linalg.norm(ref_p)
    # the factored product used by the gradient equals the explicit one
    x = torch.randn(7, M.shape[1], dtype=inp.dtype, generator=g)
    assert torch.allclose(res.times_PT(x), x @ res.polar().T, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["procrustes", "gram", "cka"])
def test_autocast_does_not_lower_the_loss_precision(name: str) -> None:
    from geokd_core import losses

    g = torch.Generator().manual_seed(8)
    s = torch.randn(128, 16, generator=g, requires_grad=True)
    t = torch.randn(128, 24, generator=g)
    fn = losses.get(name)
    ref = fn(s, t)
    (g_ref,) = torch.autograd.grad(ref, s)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fn(s, t)
    (g_got,) = torch.autograd.grad(got, s)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(ref), abs=1e-6)
    assert torch.allclose(g_got, g_ref, atol=1e-6)
