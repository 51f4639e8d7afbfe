"""Atomic checkpoints for exact resume: weights, optimiser, scheduler, projections, RNG, step.

The data order needs no storage of its own: batches are drawn from a per-epoch permutation
seeded by ``(seed, epoch)``, and the position in it follows from the step (see
``geokd_core.training.batches``), so the step alone restores it.

Layout: ``checkpoints/last/state.pt`` (+ ``meta.json`` for humans). A new checkpoint is written
to a temporary folder first and then swapped in by renames, so a crash mid-write leaves the
previous checkpoint intact (``last.old`` is read when ``last`` is missing).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAST = "last"


def rng_state() -> dict[str, Any]:
    """Every random generator the loop touches (python, numpy, torch CPU and CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ckpt_dir: Path, payload: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``payload`` (torch-serialisable) atomically to ``ckpt_dir/last``; returns that path."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final, old = ckpt_dir / LAST, ckpt_dir / f"{LAST}.old"
    tmp = ckpt_dir / f".{LAST}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with open(tmp / "state.pt", "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    for name in (LAST, f"{LAST}.old"):
        p = ckpt_dir / name
        if (p / "state.pt").exists():
            return p
    return None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    # weights_only=False: the payload holds python/numpy RNG states (our own file, never user input).
    return torch.load(path / "state.pt", map_location=map_location, weights_only=False)
