"""Atomic checkpoints of the synthetic experiment (``out_dir/checkpoints/last``).

A checkpoint is a directory holding ``state.pt`` (tensors: teacher, student, loss-module and
optimizer state dicts, the seed generator's state) and ``meta.json`` (the cursor: which run,
which step; the metric history so far; the hash of the synthetic spec it belongs to). It is
written to a temporary sibling directory, marked complete, then renamed over ``last``; a crash
between the two renames of a replacement leaves the complete new directory behind, which
``load_checkpoint`` picks up, so a reader never sees a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

_DONE = "COMPLETE"


def checkpoint_root(out_dir: Path) -> Path:
    return out_dir / "checkpoints"


def save_checkpoint(out_dir: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write one checkpoint atomically and return the path of ``checkpoints/last``.

    Args:
        out_dir: the job's output directory.
        tensors: anything ``torch.load(weights_only=True)`` can read back (tensors, state dicts).
        meta: JSON-serialisable progress; must contain ``"global_step"``.
    """
    root = checkpoint_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-last-", dir=root))
    torch.save(tensors, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps(meta))
    (tmp / _DONE).write_text(str(meta["global_step"]))
    _fsync_dir(tmp)
    final = root / "last"
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=".old-last-", dir=root))
        os.replace(final, old / "last")
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    _remove_leftovers(root)
    return final


def load_checkpoint(out_dir: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Read the latest complete checkpoint: ``(tensors, meta)``, or ``None`` when there is none."""
    path = _latest_complete(checkpoint_root(out_dir))
    if path is None:
        return None
    tensors = torch.load(path / "state.pt", weights_only=True)
    meta = json.loads((path / "meta.json").read_text())
    return tensors, meta


def _latest_complete(root: Path) -> Path | None:
    if (root / "last" / _DONE).exists():
        return root / "last"
    if not root.is_dir():
        return None
    # `last` is missing only if a crash hit between the two renames: take the newest complete copy.
    candidates = [p for p in root.rglob(_DONE) if p.parent.is_dir()]
    if not candidates:
        return None
    best = max(candidates, key=lambda p: int(p.read_text() or 0))
    return best.parent


def _remove_leftovers(root: Path) -> None:
    for p in root.iterdir():
        if p.name.startswith((".tmp-last-", ".old-last-")) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; durability is best effort there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
