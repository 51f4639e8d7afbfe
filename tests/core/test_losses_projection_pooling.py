"""linproj / Projection and the [batch, seq, d] pooling helpers."""

from __future__ import annotations

import pytest
import torch

from geokd_core.losses import Projection, center_and_normalize, linproj, pool, procrustes, valid_tokens


def test_linproj_is_squared_error_of_normalized_matrices() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = (
        torch.randn(30, 5, dtype=torch.float64, generator=g),
        torch.randn(30, 8, dtype=torch.float64, generator=g),
    )
    proj = Projection(5, 8).double()
    a = s - s.mean(0)
    a = a / a.square().sum().sqrt()
    b = t - t.mean(0)
    b = b / b.square().sum().sqrt()
    expect = ((a @ proj.linear.weight.T - b) ** 2).sum()
    assert float(linproj(s, t, proj)) == pytest.approx(float(expect), rel=1e-12)


def test_orthogonal_projection_is_an_isometry_and_its_optimum_is_procrustes() -> None:
    g = torch.Generator().manual_seed(1)
    s, t = (
        torch.randn(40, 3, dtype=torch.float64, generator=g),
        torch.randn(40, 5, dtype=torch.float64, generator=g),
    )
    torch.manual_seed(0)  # the random start decides how fast Adam converges on the Stiefel manifold
    proj = Projection(3, 5, kind="orthogonal").double()
    w = proj.linear.weight  # [5, 3]
    assert torch.allclose(w.T @ w, torch.eye(3, dtype=torch.float64), atol=1e-6)  # built in float32
    opt = torch.optim.Adam(proj.parameters(), lr=0.1)
    for _ in range(120):
        opt.zero_grad()
        loss = linproj(s, t, proj)
        loss.backward()
        opt.step()
    w = proj.linear.weight
    assert torch.allclose(w.T @ w, torch.eye(3, dtype=torch.float64), atol=1e-6)
    assert float(linproj(s, t, proj)) == pytest.approx(float(procrustes(s, t)), abs=1e-3)
    assert float(linproj(s, t, proj)) >= float(procrustes(s, t)) - 1e-6  # never below the optimum


def test_projection_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="orthogonal"):
        Projection(3, 4, kind="diagonal")  # type: ignore[arg-type]


def test_center_and_normalize() -> None:
    x = torch.randn(50, 7) * 100 + 3
    y = center_and_normalize(x)
    assert float(y.square().sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(y.mean(0).abs().max()) < 1e-6
    z = torch.zeros(5, 3, requires_grad=True)
    center_and_normalize(z).sum().backward()
    assert torch.equal(z.grad, torch.zeros(5, 3))
    assert center_and_normalize(x.half()).dtype == torch.float32


def test_valid_tokens_and_pool() -> None:
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    tokens = valid_tokens(hidden, mask)
    assert tokens.tolist() == [[0.0, 1.0], [2.0, 3.0], [6.0, 7.0]]
    assert pool(hidden, mask).tolist() == [[1.0, 2.0], [6.0, 7.0]]
    assert pool(hidden, mask, how="cls").tolist() == [[0.0, 1.0], [6.0, 7.0]]
    assert pool(hidden, torch.zeros(2, 3)).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="mask"):
        valid_tokens(hidden, mask[:, :2])
    with pytest.raises(ValueError, match="pooling"):
        pool(hidden, mask, how="max")  # type: ignore[arg-type]
