"""Smoke test of bench/losses.py at a tiny shape (no timing assertions: speed lives in bench/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import losses as bench_losses


def test_bench_writes_rows_with_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(bench_losses.SHAPES, "pooled", (12, 6, 10))
    out = tmp_path / "losses.json"
    threads = torch.get_num_threads()
    code = bench_losses.main(
        [
            "--shapes",
            "pooled",
            "--losses",
            "procrustes",
            "gram",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--threads",
            "0",  # keep torch's thread count: main() must not change it for the rest of the session
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert torch.get_num_threads() == threads
    payload = json.loads(out.read_text())
    assert {"OMP_WAIT_POLICY", "torch_num_threads", "torch_version"} <= set(payload["environment"])
    rows = {row["loss"]: row for row in payload["results"]}
    assert set(rows) == {"naive", "procrustes", "gram"}
    for row in rows.values():
        assert row["median_s"] > 0 and row["ratio_floor"] > 0
        assert row["grad_rel_err_f32_vs_f64"] < 1e-3
