"""The teacher cache gives the same targets and the same training as the live teacher (fp16 tolerance).

Why a tolerance: the cache stores fp16, whose rounding error is at most 2^-11 ≈ 4.9e-4 relative
per value (half an ulp of an 11-bit significand). Targets therefore match the live teacher to that
relative error; losses built from them move by the same order, and a few optimiser steps
amplify it only mildly. Everything the cache does not touch (data order, dropout RNG, student
init) is identical, so the runs are otherwise the same computation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from geokd_core.data import load_task_data, make_collator
from geokd_core.models import build_models
from geokd_core.run import run_job
from geokd_core.spec import DataSpec, ModelRef, load_spec
from geokd_core.training.forward import teacher_targets
from geokd_core.training.teacher_cache import build_teacher_cache
from tests.utils.job_specs import distill_spec

FP16_REL = 2.0 ** -11


def _assert_fp16_close(cached: torch.Tensor, live: torch.Tensor) -> None:
    err = (cached - live).abs()
    bound = FP16_REL * live.abs() + 1e-7  # + the smallest fp16 subnormal region near 0
    assert bool((err <= bound).all()), float((err - bound).max())


@pytest.mark.parametrize("granularity", ["token", "pooled"])
def test_cached_targets_equal_live_teacher(bert_teacher: Path, glue_root: Path, tmp_path: Path,
                                           granularity: str) -> None:
    data = load_task_data(DataSpec(source="glue", task="mrpc", path=str(glue_root)), seed=0)
    models = build_models(ModelRef(model=str(bert_teacher)), ModelRef(init_from_teacher={"layers": [0]}),
                          "classification", 2)
    collate = make_collator(models.tokenizer, data.info, 32)
    layers = [2, 4]
    import contextlib
    cache = build_teacher_cache(tmp_path, models.teacher, collate, data.train, layers, granularity, batch_size=8,
                                max_len=32, device=torch.device("cpu"), fingerprint={"x": 1},
                                autocast=contextlib.nullcontext)
    # Batches in another order and grouping than the build pass (different padding lengths).
    for rows in ([5, 0, 17], [31, 30, 2, 9, 11]):
        batch = collate([data.train[i] for i in rows])
        live = teacher_targets(models.teacher, batch, layers, granularity)
        got = cache.lookup(batch["idx"], batch["input_ids"].shape[1], torch.device("cpu"))
        _assert_fp16_close(got.logits, live.logits)
        mask = batch["attention_mask"].bool()
        for c, t in zip(got.feats, live.feats, strict=True):
            assert c.shape == t.shape
            if granularity == "token":  # padding positions are never read by the losses
                c, t = c[mask], t[mask]
            _assert_fp16_close(c, t)
    # Same fingerprint: reopened, not rebuilt (the memmap file is untouched).
    before = (tmp_path / "logits.f16").stat().st_mtime_ns
    again = build_teacher_cache(tmp_path, models.teacher, collate, data.train, layers, granularity, batch_size=8,
                                max_len=32, device=torch.device("cpu"), fingerprint={"x": 1},
                                autocast=contextlib.nullcontext)
    assert (tmp_path / "logits.f16").stat().st_mtime_ns == before and again.meta["complete"]


def test_causal_lm_cache_stores_per_token_logits(gpt2_teacher: Path, instruct_file: Path, tmp_path: Path) -> None:
    import contextlib

    data = load_task_data(DataSpec(source="instruct", path=str(instruct_file)), seed=0)
    models = build_models(ModelRef(model=str(gpt2_teacher)), ModelRef(init_from_teacher={"layers": [0]}), "causal_lm", 1)
    collate = make_collator(models.tokenizer, data.info, 64)
    cache = build_teacher_cache(tmp_path, models.teacher, collate, data.train, [1], "token", batch_size=4,
                                max_len=64, device=torch.device("cpu"), fingerprint={}, autocast=contextlib.nullcontext)
    batch = collate([data.train[i] for i in (3, 1)])
    live = teacher_targets(models.teacher, batch, [1], "token")
    got = cache.lookup(batch["idx"], batch["input_ids"].shape[1], torch.device("cpu"))
    mask = batch["attention_mask"].bool()
    assert got.logits.shape == live.logits.shape and got.logits.dim() == 3
    _assert_fp16_close(got.logits[mask], live.logits[mask])


def test_cached_run_matches_uncached_run(bert_teacher: Path, glue_root: Path, tmp_path: Path) -> None:
    base = distill_spec(bert_teacher, glue_root, loss={"feature": "gram", "alpha": 0.5},
                        train={"max_steps": 4, "log_every": 1})
    plain = run_job(load_spec(base), tmp_path / "plain")
    cached_spec = distill_spec(bert_teacher, glue_root, loss={"feature": "gram", "alpha": 0.5},
                               train={"max_steps": 4, "log_every": 1, "teacher_cache": True})
    cached = run_job(load_spec(cached_spec), tmp_path / "cached")
    assert (tmp_path / "cached" / "teacher_cache" / "meta.json").exists()

    def series(out: Path) -> list[dict[str, float]]:
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return [r["values"] for r in rows if r["type"] == "metric"]

    for a, b in zip(series(tmp_path / "plain"), series(tmp_path / "cached"), strict=True):
        for k in ("train/loss", "train/ce", "train/kd", "train/feature"):
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-6), k
        assert a["train/ce"] == b["train/ce"] or abs(a["train/ce"] - b["train/ce"]) < 1e-4
    assert cached.final_metrics["dev/mcc"] == pytest.approx(plain.final_metrics["dev/mcc"], abs=1e-9)


def test_cached_gradients_match_live_gradients(bert_teacher: Path, glue_root: Path, tmp_path: Path) -> None:
    """One micro-batch through both paths: the student's gradients agree to fp16-level relative error.

    (Weights after several AdamW steps are a poor yardstick: Adam divides by sqrt(v), so for
    coordinates whose gradient is ~0 a tiny target change can move the update by up to lr.)
    """
    from geokd_core.train import attach_teacher_cache, build_engine
    from geokd_core.training.reporter import Reporter

    grads = []
    for cached in (False, True):
        spec = load_spec(distill_spec(bert_teacher, glue_root, loss={"feature": "procrustes", "alpha": 0.7},
                                      train={"teacher_cache": cached}))
        out = tmp_path / str(cached)
        out.mkdir()
        engine = build_engine(spec, out, Reporter([], out))
        if cached:
            attach_teacher_cache(spec, out, engine)
        torch.manual_seed(0)  # same dropout masks in both passes
        engine.micro_step(0)
        grads.append(torch.cat([p.grad.flatten() for p in engine.models.student.parameters() if p.grad is not None]))
    live, cached_g = grads
    rel = float((cached_g - live).norm() / live.norm())
    print(f"relative gradient difference cached vs live: {rel:.2e}")
    assert 0 < rel < 1e-2, rel  # > 0: the cached (fp16) targets were really used
