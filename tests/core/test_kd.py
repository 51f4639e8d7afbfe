"""kd: against hand-written KL / JS / skew-KL formulas, masking and T^2 scaling."""

from __future__ import annotations

import pytest
import torch

from geokd_core.losses import kd
from geokd_core.spec import KD_KINDS


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return (p * (p.log() - q.log())).sum(-1)


def _hand(s: torch.Tensor, t: torch.Tensor, temp: float, kind: str, lam: float) -> torch.Tensor:
    """Per-position reference, T^2 included, with explicit probabilities."""
    p = torch.exp(t / temp) / torch.exp(t / temp).sum(-1, keepdim=True)
    q = torch.exp(s / temp) / torch.exp(s / temp).sum(-1, keepdim=True)
    if kind == "forward_kl":
        per = _kl(p, q)
    elif kind == "reverse_kl":
        per = _kl(q, p)
    elif kind == "js":
        m = (p + q) / 2
        per = (_kl(p, m) + _kl(q, m)) / 2
    elif kind == "skew_forward_kl":
        per = _kl(p, lam * p + (1 - lam) * q)
    else:
        per = _kl(q, (1 - lam) * p + lam * q)
    return temp**2 * per


def _logits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(2, 5, 11, dtype=torch.float64, generator=g), 3 * torch.randn(
        2, 5, 11, dtype=torch.float64, generator=g
    )


@pytest.mark.parametrize("kind", KD_KINDS)
@pytest.mark.parametrize("temp", [1.0, 2.5])
def test_matches_hand_formula_value_and_gradient(kind: str, temp: float) -> None:
    s, t = _logits()
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    got = kd(s1, t, temperature=temp, kind=kind, skew_lambda=0.3)
    ref = _hand(s2, t, temp, kind, 0.3).mean()
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    got.backward()
    ref.backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-12)


def test_temperature_divides_logits_not_probabilities() -> None:
    """NNI's bug divides softmax outputs by T; the contract is T^2 KL(softmax(t/T) || softmax(s/T))."""
    s, t = _logits(1)
    temp = 4.0
    got = float(kd(s, t, temperature=temp))
    p, q = torch.softmax(t / temp, -1), torch.softmax(s / temp, -1)
    assert got == pytest.approx(float(temp**2 * _kl(p, q).mean()), rel=1e-12)
    buggy_p, buggy_q = torch.softmax(t, -1) / temp, torch.softmax(s, -1) / temp
    buggy = float(temp**2 * (buggy_p * (buggy_p.log() - buggy_q.log())).sum(-1).mean())
    assert abs(got - buggy) > 0.1 * abs(got)


@pytest.mark.parametrize("kind", KD_KINDS)
def test_mask_averages_over_valid_positions(kind: str) -> None:
    s, t = _logits(2)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 0, 1, 0, 1]], dtype=torch.bool)
    per = _hand(s, t, 2.0, kind, 0.1)
    expect = per[mask].mean()
    s_req = s.clone().requires_grad_()
    got = kd(s_req, t, temperature=2.0, kind=kind, mask=mask)
    assert float(got.detach()) == pytest.approx(float(expect), rel=1e-12)
    got.backward()
    assert float(s_req.grad[~mask].abs().max()) == 0.0  # padding gets no gradient
    # 0/1 float masks behave the same as bool masks
    assert float(kd(s, t, 2.0, kind, mask=mask.double())) == pytest.approx(float(got.detach()), rel=1e-12)


def test_zero_when_equal_and_nonnegative() -> None:
    s, t = _logits(3)
    for kind in KD_KINDS:
        assert abs(float(kd(t, t, 2.0, kind))) < 1e-12
        assert float(kd(s, t, 2.0, kind)) > 0


def test_extreme_logits_stay_finite() -> None:
    s = torch.tensor([[1e4, -1e4, 0.0, float("-inf")]], requires_grad=True)
    t = torch.tensor([[-1e4, 1e4, 0.0, float("-inf")]])
    for kind in KD_KINDS:
        loss = kd(s, t, 1.0, kind, mask=torch.ones(1))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
        s.grad = None


def test_all_masked_is_zero_and_bad_arguments_raise() -> None:
    s, t = _logits(4)
    assert float(kd(s, t, mask=torch.zeros(2, 5))) == 0.0
    with pytest.raises(ValueError, match="forward_kl"):
        kd(s, t, kind="tv")
    with pytest.raises(ValueError, match="temperature"):
        kd(s, t, temperature=0.0)
    with pytest.raises(ValueError, match="mask"):
        kd(s, t, mask=torch.ones(5, 2))
    with pytest.raises(ValueError, match="shapes"):
        kd(s, t[..., :3])
