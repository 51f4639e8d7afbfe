"""The synthetic experiment's data: a teacher of near-orthogonal unit vectors and a random student.

Teacher (the over-parameterized regime, n >> d): ``n`` i.i.d. standard Gaussian vectors in
``d_teacher`` dimensions, each scaled to unit norm. Their pairwise cosines concentrate around 0
with standard deviation ~1/sqrt(d), so most pairs are eps-orthogonal (|cos| < eps); e.g. with
n=1000, d=100, eps=0.1 about 68 % of the 499,500 pairs are (P(|Z| < eps * sqrt(d))). We keep the
plain Gaussian draw on purpose: pushing more pairs under eps by optimising the vectors was tried and
barely helps at these sizes (the Welch bound sqrt((n-d)/(d(n-1))) ~ 0.095 already sits at eps), and
the exact count is reported for every seed instead.

Student initialisation: i.i.d. random unit vectors in ``d_student`` dimensions, drawn from the same
generator right after the teacher, so one seed fixes both.
"""

from __future__ import annotations

import torch

from geokd_core import geometry


def random_unit_vectors(n: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` i.i.d. uniformly random unit vectors.

    Args:
        n: number of vectors.
        d: dimension.
        generator: the seeded source of randomness (the global RNG is never touched).

    Returns:
        ``[n, d]`` float32 tensor with unit-norm rows.
    """
    x = torch.randn(n, d, generator=generator, dtype=torch.float32)
    # A sum of squares, not vector_norm: the latter lost accuracy in this torch build (NOTES.md).
    return x / x.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)


def make_pair(n: int, d_teacher: int, d_student: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher and the student's initial value for one seed.

    Returns:
        ``(teacher [n, d_teacher], student_init [n, d_student])``, both float32.
    """
    gen = torch.Generator().manual_seed(seed)
    teacher = random_unit_vectors(n, d_teacher, gen)
    student = random_unit_vectors(n, d_student, gen)
    return teacher, student


def center_rows(x: torch.Tensor) -> torch.Tensor:
    """Subtract the mean row: ``[n, d] -> [n, d]``."""
    return x - x.mean(dim=0, keepdim=True)


def count_preserved(teacher: torch.Tensor, student: torch.Tensor, eps: float) -> tuple[int, int]:
    """``(kept, teacher_total)``: eps-orthogonal teacher pairs that stay eps-orthogonal in the student.

    Both sides are centered first. Every loss centers its inputs, so the mean row is a gauge
    freedom no loss sees (and Adam's per-coordinate steps can move the student's a little); a
    student at zero loss equals the *centered* teacher up to rotation and scale. Counting on raw
    teacher vectors would cost even a perfect student ~1.4 % of the pairs at the default sizes
    (measured), because the teacher's mean row (norm ~1/sqrt(n)) shifts cosines near eps.

    Args:
        teacher: ``[n, d_t]``; student: ``[n, d_s]``; eps: tolerance on ``|cos|``.
    """
    kept, total = geometry.preserved_orthogonal_pairs(center_rows(teacher), center_rows(student), eps)
    return int(kept), int(total)
