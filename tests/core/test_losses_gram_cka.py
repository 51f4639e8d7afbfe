"""gram and cka: against explicit n x n kernels and plain numpy CKA (biased and debiased)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geokd_core.losses import cka, cka_debiased, gram

# both regimes: n*(d_s+d_t) below and above d_s^2+d_t^2+d_s*d_t
SHAPES = [(60, 8, 12), (10, 30, 40), (100, 20, 20), (6, 50, 3)]


def _normalize_np(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    return x / np.sqrt((x**2).sum())


def _gram_ref(s: np.ndarray, t: np.ndarray) -> float:
    a, b = _normalize_np(s), _normalize_np(t)
    return float(((a @ a.T - b @ b.T) ** 2).sum())


def _cka_ref(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. feature-space linear CKA."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _unbiased_center(k: np.ndarray) -> np.ndarray:
    """Kornblith et al.'s ``center_gram(..., unbiased=True)`` (U-centering, Szekely & Rizzo)."""
    k = k.copy()
    n = k.shape[0]
    np.fill_diagonal(k, 0)
    means = k.sum(0) / (n - 2)
    means -= means.sum() / (2 * (n - 1))
    k -= means[:, None]
    k -= means[None, :]
    np.fill_diagonal(k, 0)
    return k


def _cka_debiased_ref(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(0), y - y.mean(0)
    kx, ky = _unbiased_center(x @ x.T), _unbiased_center(y @ y.T)
    return float((kx * ky).sum() / np.sqrt((kx * kx).sum() * (ky * ky).sum()))


def _data(n: int, d_s: int, d_t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n, d_s))
    t = np.concatenate([s[:, : min(d_s, d_t)], rng.standard_normal((n, d_t))], 1)[:, :d_t]
    return s, t + 0.5 * rng.standard_normal((n, d_t))


@pytest.mark.parametrize("n,d_s,d_t", SHAPES)
def test_gram_matches_explicit_kernels(n: int, d_s: int, d_t: int) -> None:
    s, t = _data(n, d_s, d_t)
    got = float(gram(torch.from_numpy(s), torch.from_numpy(t)))
    assert got == pytest.approx(_gram_ref(s, t), abs=1e-12)
    assert 0.0 <= got <= 2.0
    got32 = float(gram(torch.from_numpy(s).float(), torch.from_numpy(t).float()))
    assert got32 == pytest.approx(got, abs=1e-5)


@pytest.mark.parametrize("n,d_s,d_t", SHAPES)
def test_cka_matches_numpy(n: int, d_s: int, d_t: int) -> None:
    s, t = _data(n, d_s, d_t, seed=1)
    ts, tt = torch.from_numpy(s), torch.from_numpy(t)
    assert float(cka(ts, tt)) == pytest.approx(1.0 - _cka_ref(s, t), abs=1e-12)
    assert float(cka(ts, tt, debiased=True)) == pytest.approx(1.0 - _cka_debiased_ref(s, t), abs=1e-10)
    assert float(cka_debiased(ts, tt)) == float(cka(ts, tt, debiased=True))


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_identity_and_invariances(debiased: bool) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 7, dtype=torch.float64, generator=g)
    assert abs(float(cka(x, x, debiased=debiased))) < 1e-12  # CKA(x, x) = 1, also debiased
    y = torch.randn(30, 11, dtype=torch.float64, generator=g)
    q, _ = torch.linalg.qr(torch.randn(7, 7, dtype=torch.float64, generator=g))
    base = float(cka(x, y, debiased=debiased))
    assert float(cka(4.0 * x @ q - 1.0, 0.1 * y, debiased=debiased)) == pytest.approx(base, abs=1e-12)


def test_gram_invariances() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(25, 6, dtype=torch.float64, generator=g)
    y = torch.randn(25, 9, dtype=torch.float64, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=g))
    assert float(gram(2.0 * x @ q + 3.0, y)) == pytest.approx(float(gram(x, y)), abs=1e-12)
    assert abs(float(gram(x, x @ q))) < 1e-12


@pytest.mark.parametrize("fn", [gram, cka, cka_debiased], ids=["gram", "cka", "cka_debiased"])
@pytest.mark.parametrize("n,d_s,d_t", [(9, 3, 5), (5, 8, 10), (16, 3, 4)])
def test_gradcheck_float64(fn, n: int, d_s: int, d_t: int) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(4)
    s = torch.randn(n, d_s, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(n, d_t, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (s, t))  # both differentiable
    t_fixed = t.detach()
    assert torch.autograd.gradcheck(lambda x: fn(x, t_fixed), (s,))  # student-only path


@pytest.mark.parametrize("fn", [gram, cka, cka_debiased], ids=["gram", "cka", "cka_debiased"])
def test_finite_gradients_on_degenerate_inputs(fn) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(5)
    t = torch.randn(12, 20, generator=g)
    base = torch.randn(12, 4, generator=g)
    cases = [torch.randn(12, 30, generator=g), torch.cat([base, base], 1), torch.zeros(12, 5)]
    cases[0][2:5] = 0
    for s in cases:
        s = s.clone().requires_grad_()
        loss = fn(s, t)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
