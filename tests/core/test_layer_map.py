"""Layer mappings: uniform / last / explicit / suggest (checked against brute force)."""

from __future__ import annotations

import itertools

import pytest
import torch

from geokd_core.errors import SpecError
from geokd_core.layer_map import check_pairs, pair_key, resolve_pairs, suggest_pairs, uniform_pairs


def test_uniform_maps_every_kth_teacher_layer() -> None:
    assert uniform_pairs(3, 6) == [(1, 2), (2, 4), (3, 6)]
    assert uniform_pairs(4, 12) == [(1, 3), (2, 6), (3, 9), (4, 12)]
    assert uniform_pairs(2, 2) == [(1, 1), (2, 2)]
    # Not divisible: floors, and the last student block still meets the last teacher block.
    assert uniform_pairs(5, 12)[-1] == (5, 12)


def test_last_and_explicit() -> None:
    assert resolve_pairs("last", 3, 6) == [(3, 6)]
    assert resolve_pairs("explicit", 3, 6, [(0, 0), (3, 5)]) == [(0, 0), (3, 5)]
    with pytest.raises(SpecError, match="teacher layer 7 out of range 0..6"):
        check_pairs([(1, 7)], 3, 6)
    with pytest.raises(SpecError, match="student layer 4 out of range 0..3"):
        check_pairs([(4, 1)], 3, 6)


def _brute_force(sim: torch.Tensor, strict: bool) -> float:
    n_t, n_s = sim.shape
    best = float("-inf")
    for js in itertools.product(range(n_t), repeat=n_s):
        ok = all((a < b) if strict else (a <= b) for a, b in itertools.pairwise(js))
        if ok:
            best = max(best, sum(float(sim[j, i]) for i, j in enumerate(js)))
    return best


@pytest.mark.parametrize("shape", [(6, 3), (4, 4), (5, 2), (2, 3)])
def test_suggest_is_the_best_monotone_assignment(shape: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(sum(shape))
    for _ in range(5):
        sim = torch.rand(shape, generator=g)
        pairs = suggest_pairs(sim)
        n_t, n_s = shape
        strict = n_t >= n_s
        assert [s for s, _ in pairs] == list(range(1, n_s + 1))
        ts = [t for _, t in pairs]
        assert all((a < b) if strict else (a <= b) for a, b in itertools.pairwise(ts))
        total = sum(float(sim[t - 1, s - 1]) for s, t in pairs)
        assert total == pytest.approx(_brute_force(sim, strict))


def test_suggest_follows_a_clear_diagonal() -> None:
    sim = torch.full((6, 3), 0.1)
    sim[1, 0], sim[3, 1], sim[5, 2] = 0.9, 0.9, 0.9
    assert resolve_pairs("suggest", 3, 6, similarity=sim) == [(1, 2), (2, 4), (3, 6)]
    assert pair_key((3, 6)) == "s3-t6"
