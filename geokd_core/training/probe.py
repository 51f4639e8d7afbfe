"""Geometry of a fixed probe batch: layer similarity, per-pair alignment metrics, Gram snapshots.

The probe batch (the first ``gram_probe_size`` training examples) never changes during a run,
so its metrics are comparable across steps. Each example is represented by the masked mean of
its token states (``[k, d]`` per layer), which is what a ``k x k`` Gram snapshot needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from geokd_core.layer_map import Pair, pair_key
from geokd_core.training.objective import reduce_features

# |cos| below this counts as "orthogonal" for the preserved-pairs metric (the paper's eps).
PRESERVE_EPS = 0.1
# Cap on token rows used for the layer-similarity matrix (CKA cost grows with rows²).
MAX_SIMILARITY_ROWS = 2048


@torch.no_grad()
def all_hidden(model: torch.nn.Module, batch: Mapping[str, Any], autocast: Callable[[], Any]) -> list[torch.Tensor]:
    """Every hidden state (``L + 1`` tensors ``[b, L_seq, d]``, float32) in eval mode."""
    was_training = model.training
    model.eval()
    try:
        with autocast():
            out = model(**{k: v for k, v in batch.items() if k not in ("labels", "idx")}, output_hidden_states=True)
    finally:
        model.train(was_training)
    return [h.float() for h in out.hidden_states]


def pooled(hidden: Sequence[torch.Tensor], mask: torch.Tensor) -> list[torch.Tensor]:
    """``[b, L, d]`` per layer → ``[b, d]`` masked means."""
    return [reduce_features(h, mask, "pooled") for h in hidden]


def token_rows(hidden: Sequence[torch.Tensor], mask: torch.Tensor, cap: int = MAX_SIMILARITY_ROWS) -> list[torch.Tensor]:
    """``[b, L, d]`` per layer → the first ``cap`` valid token rows ``[n, d]`` (same rows per layer)."""
    return [reduce_features(h, mask, "token")[:cap] for h in hidden]


def layer_similarity(t_hidden: Sequence[torch.Tensor], s_hidden: Sequence[torch.Tensor],
                     mask: torch.Tensor) -> torch.Tensor:
    """``[L_t + 1, L_s + 1]`` CKA between every teacher and student hidden state (token rows)."""
    from geokd_core import geometry

    return geometry.layer_similarity_matrix(token_rows(t_hidden, mask), token_rows(s_hidden, mask))


def alignment_metrics(t_pooled: Sequence[torch.Tensor], s_pooled: Sequence[torch.Tensor],
                      pairs: Sequence[Pair]) -> dict[str, float]:
    """``align/<pair>/{procrustes,cka,gram,preserved_pairs}`` on the probe's pooled features."""
    from geokd_core import geometry

    out: dict[str, float] = {}
    for s_i, t_j in pairs:
        s, t = s_pooled[s_i].double(), t_pooled[t_j].double()
        key = f"align/{pair_key((s_i, t_j))}"
        out[f"{key}/procrustes"] = float(geometry.procrustes_distance(s, t))
        out[f"{key}/cka"] = float(geometry.cka_similarity(s, t))
        out[f"{key}/gram"] = float(geometry.gram_distance(s, t))
        kept, total = geometry.preserved_orthogonal_pairs(t, s, PRESERVE_EPS)
        if int(total) > 0:
            out[f"{key}/preserved_pairs"] = float(kept) / float(total)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def gram_snapshots(t_pooled: Sequence[torch.Tensor], s_pooled: Sequence[torch.Tensor],
                   pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    """Payloads of ``gram`` events: ``{"layer": "s3-t6", "teacher": [[..]], "student": [[..]]}``."""
    from geokd_core import geometry

    snaps = []
    for s_i, t_j in pairs:
        t, s = t_pooled[t_j], s_pooled[s_i]
        k = t.shape[0]
        snaps.append({
            "layer": pair_key((s_i, t_j)),
            "teacher": geometry.gram_snapshot(t, k).tolist(),
            "student": geometry.gram_snapshot(s, k).tolist(),
        })
    return snaps


class Probe:
    """The fixed probe batch and the teacher's (constant) hidden states on it."""

    def __init__(self, batch: Mapping[str, Any], teacher: torch.nn.Module | None, autocast: Callable[[], Any]) -> None:
        self.batch = batch
        self.mask = batch["attention_mask"]
        self.autocast = autocast
        self.t_hidden = all_hidden(teacher, batch, autocast) if teacher is not None else None
        self.t_pooled = pooled(self.t_hidden, self.mask) if self.t_hidden is not None else None

    def student_hidden(self, student: torch.nn.Module) -> list[torch.Tensor]:
        return all_hidden(student, self.batch, self.autocast)

    def similarity(self, student: torch.nn.Module) -> torch.Tensor:
        assert self.t_hidden is not None
        return layer_similarity(self.t_hidden, self.student_hidden(student), self.mask)

    def measure(self, student: torch.nn.Module, pairs: Sequence[Pair],
                with_grams: bool) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Alignment metrics (and Gram snapshots when ``with_grams``) of the current student."""
        assert self.t_pooled is not None
        s_pooled = pooled(self.student_hidden(student), self.mask)
        metrics = alignment_metrics(self.t_pooled, s_pooled, pairs)
        grams = gram_snapshots(self.t_pooled, s_pooled, pairs) if with_grams else []
        return metrics, grams

