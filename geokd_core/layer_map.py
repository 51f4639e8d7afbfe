"""Which student layer is aligned with which teacher layer.

Layers are hidden-state indices as returned by ``output_hidden_states``: 0 is the embedding
output, 1..L the transformer blocks. A mapping is a list of ``(student_layer, teacher_layer)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from geokd_core.errors import SpecError

Pair = tuple[int, int]


def pair_key(pair: Pair) -> str:
    """The series/layer key of a pair, e.g. ``s3-t6``."""
    return f"s{pair[0]}-t{pair[1]}"


def uniform_pairs(n_student: int, n_teacher: int) -> list[Pair]:
    """Student block i ↔ teacher block i·k (k = L_t / L_s, floored), so the last blocks meet.

    >>> uniform_pairs(3, 6)
    [(1, 2), (2, 4), (3, 6)]
    """
    return [(i, (i * n_teacher) // n_student) for i in range(1, n_student + 1) if (i * n_teacher) // n_student >= 1]


def last_pairs(n_student: int, n_teacher: int) -> list[Pair]:
    """Only the last blocks."""
    return [(n_student, n_teacher)]


def check_pairs(pairs: Sequence[Pair], n_student: int, n_teacher: int) -> list[Pair]:
    """Validate explicit pairs against the models' depths.

    Raises:
        SpecError: an index is outside ``0..L`` of its model.
    """
    for s, t in pairs:
        if not 0 <= s <= n_student:
            raise SpecError(f"loss.pairs: student layer {s} out of range 0..{n_student}")
        if not 0 <= t <= n_teacher:
            raise SpecError(f"loss.pairs: teacher layer {t} out of range 0..{n_teacher}")
    return [(int(s), int(t)) for s, t in pairs]


def suggest_pairs(similarity: torch.Tensor) -> list[Pair]:
    """Monotone assignment of every student block to a teacher block maximising total similarity.

    Args:
        similarity: ``[L_t, L_s]`` similarity of teacher block j+1 and student block i+1 (higher =
            more alike), e.g. CKA from ``geometry.layer_similarity_matrix`` without the embeddings.

    Returns:
        ``[(i, j_i)]`` for i = 1..L_s with j_1 < j_2 < ... (strictly increasing when L_t >= L_s,
        non-decreasing otherwise), the maximiser of sum_i similarity[j_i - 1, i - 1] found by
        dynamic programming.
    """
    sim = similarity.detach().double().cpu()
    n_t, n_s = sim.shape
    strict = n_t >= n_s
    neg = float("-inf")
    # best[i][j]: best total for student blocks 0..i with block i on teacher block j.
    best = [[neg] * n_t for _ in range(n_s)]
    back = [[-1] * n_t for _ in range(n_s)]
    for j in range(n_t):
        best[0][j] = float(sim[j, 0])
    for i in range(1, n_s):
        run_val, run_arg = neg, -1  # max over allowed predecessors, swept with j
        for j in range(n_t):
            prev = j - 1 if strict else j
            if prev >= 0 and best[i - 1][prev] > run_val:
                run_val, run_arg = best[i - 1][prev], prev
            if run_arg >= 0:
                best[i][j] = run_val + float(sim[j, i])
                back[i][j] = run_arg
    j = max(range(n_t), key=lambda c: best[n_s - 1][c])
    chosen = [0] * n_s
    for i in range(n_s - 1, -1, -1):
        chosen[i] = j
        j = back[i][j]
    return [(i + 1, chosen[i] + 1) for i in range(n_s)]


def resolve_pairs(kind: str, n_student: int, n_teacher: int, explicit: Sequence[Pair] = (),
                  similarity: torch.Tensor | None = None) -> list[Pair]:
    """The mapping for ``loss.layer_map`` (``similarity`` is needed for ``suggest``)."""
    if kind == "uniform":
        return uniform_pairs(n_student, n_teacher)
    if kind == "last":
        return last_pairs(n_student, n_teacher)
    if kind == "explicit":
        return check_pairs(explicit, n_student, n_teacher)
    if kind == "suggest":
        if similarity is None:
            raise ValueError("layer_map=suggest needs the teacher x student similarity matrix")
        return suggest_pairs(similarity)
    raise SpecError(f"unknown layer_map {kind!r}")
