"""geokd_core.geometry: metrics vs numpy / the losses, pair counts vs brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geokd_core import geometry
from geokd_core.losses import cka, gram, procrustes


def _pairs_brute(x: np.ndarray, eps: float) -> set[tuple[int, int]]:
    n = x.shape[0]
    out = set()
    for i in range(n):
        for j in range(i + 1, n):
            c = x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
            if abs(c) < eps:
                out.add((i, j))
    return out


def test_distances_are_square_roots_of_losses_and_need_no_grad() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(40, 6, generator=g, requires_grad=True)
    t = torch.randn(40, 9, generator=g)
    dp = geometry.procrustes_distance(s, t)
    assert not dp.requires_grad
    assert float(dp) == pytest.approx(float(procrustes(s, t).detach()) ** 0.5, rel=1e-6)
    assert float(geometry.gram_distance(s, t)) == pytest.approx(float(gram(s, t).detach()) ** 0.5, rel=1e-6)
    assert float(geometry.cka_similarity(s, t)) == pytest.approx(1 - float(cka(s, t).detach()), rel=1e-6)


def test_layer_similarity_matrix() -> None:
    g = torch.Generator().manual_seed(1)
    teacher = [torch.randn(50, 12, generator=g) for _ in range(3)]
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g))
    student = [teacher[2] @ q * 5, torch.randn(50, 7, generator=g)]
    for metric in geometry.SIMILARITY_METRICS:
        m = geometry.layer_similarity_matrix(teacher, student, metric=metric)
        assert m.shape == (3, 2)
        assert float(m[2, 0]) == pytest.approx(1.0, abs=1e-5)  # a rotated copy matches
        assert int(m[:, 0].argmax()) == 2
    m = geometry.layer_similarity_matrix(teacher, student, metric="procrustes")
    assert float(m[0, 1]) == pytest.approx(1 - float(procrustes(student[1], teacher[0])) / 2, abs=1e-5)
    with pytest.raises(ValueError, match="cka"):
        geometry.layer_similarity_matrix(teacher, student, metric="svcca")  # type: ignore[arg-type]


def test_gram_snapshot_is_cosine_gram_of_first_k_rows() -> None:
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 2.0]])
    snap = geometry.gram_snapshot(x, k=3)
    c = 2**-0.5
    assert torch.allclose(snap, torch.tensor([[1.0, c, 0.0], [c, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert geometry.gram_snapshot(x).shape == (4, 4)


def test_orthogonal_pairs_against_brute_force() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 8))
    mask = geometry.orthogonal_pairs(torch.from_numpy(x), 0.2)
    got = {(int(i), int(j)) for i, j in mask.nonzero().tolist()}
    assert got == _pairs_brute(x, 0.2) and len(got) > 0
    assert not mask.tril().any()


def test_preserved_orthogonal_pairs_against_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    teacher = rng.standard_normal((45, 30))
    student = teacher[:, :10] + 0.3 * rng.standard_normal((45, 10))
    t_pairs, s_pairs = _pairs_brute(teacher, 0.15), _pairs_brute(student, 0.15)
    expect = (len(t_pairs & s_pairs), len(t_pairs))
    monkeypatch.setattr(geometry, "_BLOCK", 7)  # exercise the blocked loop with a ragged last block
    got = geometry.preserved_orthogonal_pairs(torch.from_numpy(teacher), torch.from_numpy(student), 0.15)
    assert got == expect and 0 < expect[0] < expect[1]
    assert geometry.preserved_orthogonal_pairs(
        torch.from_numpy(teacher), torch.from_numpy(teacher), 0.15
    ) == (
        len(t_pairs),
        len(t_pairs),
    )
