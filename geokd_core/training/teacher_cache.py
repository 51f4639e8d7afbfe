"""Precomputed teacher outputs for the training set (fp16, memory-mapped on disk).

The teacher is frozen and deterministic (eval mode), so its logits and mapped-layer features
for an example never change: computing them once makes every later epoch cost only the student.
Rows are keyed by the example's ``idx`` (the collator passes it through). Token-level features
are stored at ``max_len`` positions; a batch padded to ``L_b <= max_len`` reads the first
``L_b`` (positions past an example's length are padding and are masked out by the losses).

fp16 keeps ~3 significant digits (relative rounding error ≤ 2^-11 ≈ 4.9e-4), so losses computed
from the cache match the uncached path to about that relative tolerance, not bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geokd_core.errors import DataError
from geokd_core.training.forward import teacher_targets, to_device
from geokd_core.training.objective import TeacherTargets


class TeacherCache:
    """Read access to a built cache; build one with :func:`build_teacher_cache`."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = root
        self.meta = meta
        self.row_of = {int(k): int(v) for k, v in meta["rows"].items()}
        self.logits = np.memmap(root / "logits.f16", dtype=np.float16, mode="r", shape=tuple(meta["logits_shape"]))
        self.feats = [
            np.memmap(root / f"feat{i}.f16", dtype=np.float16, mode="r", shape=tuple(shape))
            for i, shape in enumerate(meta["feat_shapes"])
        ]

    def lookup(self, idx: torch.Tensor, seq_len: int, device: torch.device) -> TeacherTargets:
        """Teacher targets of the examples ``idx`` (``[b]``) for a batch padded to ``seq_len``."""
        rows = np.asarray([self.row_of[int(i)] for i in idx.tolist()])
        token_level = self.meta["token_level"]

        def take(arr: np.memmap, per_token: bool) -> torch.Tensor:
            block = arr[rows, :seq_len] if per_token else arr[rows]
            return torch.from_numpy(np.ascontiguousarray(block)).to(device=device, dtype=torch.float32)

        return TeacherTargets(
            logits=take(self.logits, self.meta["logits_per_token"]),
            feats=[take(f, token_level) for f in self.feats],
        )


def _open_existing(root: Path, fingerprint: dict[str, Any]) -> TeacherCache | None:
    meta_path = root / "meta.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("fingerprint") != fingerprint or not meta.get("complete"):
        return None
    return TeacherCache(root, meta)


def build_teacher_cache(
    root: Path,
    teacher: torch.nn.Module,
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]],
    examples: Sequence[dict[str, Any]],
    layers: Sequence[int],
    granularity: str,
    *,
    batch_size: int,
    max_len: int,
    device: torch.device,
    fingerprint: dict[str, Any],
    autocast: Callable[[], Any],
) -> TeacherCache:
    """Run the teacher once over ``examples`` and store its outputs under ``root``.

    An existing cache with the same ``fingerprint`` (teacher, data, layers, ...) is reused, so a
    resumed run does not recompute it.
    """
    found = _open_existing(root, fingerprint)
    if found is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").unlink(missing_ok=True)  # a half-rebuilt cache must never look complete
    n = len(examples)
    token_level = granularity == "token"
    logits_mm: np.memmap | None = None
    feat_mms: list[np.memmap] = []
    meta: dict[str, Any] = {"fingerprint": fingerprint, "token_level": token_level, "complete": False,
                            "rows": {str(ex["idx"]): r for r, ex in enumerate(examples)}}
    for start in range(0, n, batch_size):
        batch = to_device(collate(list(examples[start:start + batch_size])), device)
        seq_len = batch["input_ids"].shape[1]
        if seq_len > max_len:
            raise DataError(f"teacher cache: a batch of length {seq_len} exceeds max_seq_len {max_len}")
        with autocast():
            tt = teacher_targets(teacher, batch, layers, granularity)
        logits_per_token = tt.logits.dim() == 3
        if logits_mm is None:
            lshape = (n, max_len, *tt.logits.shape[2:]) if logits_per_token else (n, *tt.logits.shape[1:])
            logits_mm = np.memmap(root / "logits.f16", dtype=np.float16, mode="w+", shape=lshape)
            for i, f in enumerate(tt.feats):
                fshape = (n, max_len, f.shape[-1]) if token_level else (n, f.shape[-1])
                feat_mms.append(np.memmap(root / f"feat{i}.f16", dtype=np.float16, mode="w+", shape=fshape))
            meta.update(logits_shape=list(lshape), feat_shapes=[list(m.shape) for m in feat_mms],
                        logits_per_token=logits_per_token)
        stop = start + tt.logits.shape[0]
        if logits_per_token:
            logits_mm[start:stop, :seq_len] = tt.logits.cpu().numpy()
        else:
            logits_mm[start:stop] = tt.logits.cpu().numpy()
        for mm, f in zip(feat_mms, tt.feats, strict=True):
            if token_level:
                mm[start:stop, :seq_len] = f.cpu().numpy()
            else:
                mm[start:stop] = f.cpu().numpy()
    if logits_mm is None:
        raise DataError("teacher cache: the training set is empty")
    for mm in (logits_mm, *feat_mms):
        mm.flush()
    meta["complete"] = True
    (root / "meta.json").write_text(json.dumps(meta))
    return TeacherCache(root, meta)
