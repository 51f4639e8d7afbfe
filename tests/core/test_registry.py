"""Registry: names equal the spec's, clear errors, make_feature_loss modules for every name."""

from __future__ import annotations

import pytest
import torch

import geokd_core.losses as losses
from geokd_core.spec import FEATURE_LOSSES


def test_available_equals_spec() -> None:
    assert losses.available() == FEATURE_LOSSES


@pytest.mark.parametrize("name", ["procrustes", "gram", "cka", "cka_debiased"])
def test_get_returns_the_pure_function(name: str) -> None:
    fn = losses.get(name)
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(20, 4, generator=g), torch.randn(20, 6, generator=g)
    expected = {
        "procrustes": losses.procrustes,
        "gram": losses.gram,
        "cka": lambda a, b: losses.cka(a, b),
        "cka_debiased": lambda a, b: losses.cka(a, b, debiased=True),
    }[name]
    assert float(fn(s, t)) == float(expected(s, t))


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(KeyError) as err:
        losses.get("procrustez")
    for name in FEATURE_LOSSES:
        assert name in str(err.value)
    with pytest.raises(KeyError, match="make_feature_loss"):
        losses.get("linproj")
    with pytest.raises(KeyError, match="cka_debiased"):
        losses.make_feature_loss("nope", 4, 6)


@pytest.mark.parametrize("name", FEATURE_LOSSES)
def test_make_feature_loss_trains_every_name(name: str) -> None:
    torch.manual_seed(0)
    t = torch.randn(64, 6)
    s = torch.randn(64, 4, requires_grad=True)
    module = losses.make_feature_loss(name, 4, 6)
    params = list(module.parameters())
    assert (len(params) > 0) == (name in ("linproj", "orthproj"))
    opt = torch.optim.Adam([s, *params], lr=0.05)
    first = float(module(s, t).detach())
    for _ in range(25):
        opt.zero_grad()
        loss = module(s, t)
        loss.backward()
        opt.step()
    assert float(module(s, t)) < first  # the loss and its gradient point the same way
    # state round-trips (what the engine checkpoints)
    clone = losses.make_feature_loss(name, 4, 6)
    clone.load_state_dict(module.state_dict())
    assert float(clone(s, t)) == pytest.approx(float(module(s, t)), rel=1e-6)


def test_feature_loss_flattens_batch_and_checks_widths() -> None:
    module = losses.make_feature_loss("gram", 4, 6)
    s, t = torch.randn(2, 5, 4), torch.randn(2, 5, 6)
    assert float(module(s, t)) == pytest.approx(float(losses.gram(s.reshape(10, 4), t.reshape(10, 6))))
    with pytest.raises(ValueError, match="widths"):
        module(torch.randn(10, 5), torch.randn(10, 6))
