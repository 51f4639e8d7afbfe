"""End-to-end runs of distill / finetune / evaluate on tiny models and a few dozen GLUE-layout rows."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from geokd_core.callbacks import Callback, EventCollector, StopWhen, TrainerControl, TrainerState
from geokd_core.events import EventType
from geokd_core.run import run_job
from geokd_core.spec import load_spec
from tests.utils.job_specs import distill_spec
from tests.utils.tiny_models import make_llama_gguf


class HookRecorder(Callback):
    """Records the order of hooks and events."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _rec(self, name: str) -> None:
        self.calls.append(name)

    def on_train_begin(self, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._rec("train_begin")

    def on_step_end(self, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._rec(f"step_end:{state.step}")

    def on_train_end(self, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._rec("train_end")

    def on_event(self, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._rec(f"event:{kw['event'].type.value}")


def test_distill_end_to_end(bert_teacher: Path, glue_root: Path, tmp_path: Path) -> None:
    spec = load_spec(distill_spec(bert_teacher, glue_root, train={"gram_every": 3, "gram_probe_size": 8}))
    col, rec = EventCollector(), HookRecorder()
    teacher_before = AutoModelForSequenceClassification.from_pretrained(bert_teacher).state_dict()
    result = run_job(spec, tmp_path, callbacks=[col, rec])
    assert result.status == "completed" and result.step == 6

    # Hooks: begin, one step_end per optimiser step, end; layer similarity before any metric.
    steps = [c for c in rec.calls if c.startswith("step_end")]
    assert steps == [f"step_end:{i}" for i in range(1, 7)]
    assert rec.calls.index("event:layer_similarity") < rec.calls.index("event:metric")
    assert rec.calls[-1] == "train_end"

    sim = col.of_type(EventType.LAYER_SIMILARITY)[0].data
    assert sim["metric"] == "cka" and len(sim["matrix"]) == 5 and len(sim["matrix"][0]) == 3
    assert sim["teacher_layers"] == [0, 1, 2, 3, 4] and sim["student_layers"] == [0, 1, 2]

    # Metric events: every loss term, lr, throughput and per-pair alignment; L = γCE + αF + (1−α)KD.
    metrics = col.of_type(EventType.METRIC)
    assert [e.step for e in metrics] == [2, 4, 6]
    for e in metrics:
        v = e.data["values"]
        assert v["train/loss"] == pytest.approx(1.0 * v["train/ce"] + 0.5 * v["train/feature"] + 0.5 * v["train/kd"],
                                                rel=1e-6)
        assert v["train/kd"] >= 0 and v["train/feature"] > 0 and v["train/examples_per_s"] > 0
        for pair in ("s1-t2", "s2-t4"):  # uniform: student block i ↔ teacher block 2i
            assert 0 <= v[f"align/{pair}/cka"] <= 1 + 1e-9
            assert 0 <= v[f"align/{pair}/procrustes"] <= 2 ** 0.5 + 1e-9
            assert f"align/{pair}/gram" in v
    assert metrics[-1].data["values"]["train/lr"] == pytest.approx(0.0)  # linear decay to 0

    grams = col.of_type(EventType.GRAM)
    assert sorted({g.step for g in grams}) == [0, 3, 6]
    assert {g.data["layer"] for g in grams} == {"s1-t2", "s2-t4"}
    g = grams[0].data
    assert len(g["teacher"]) == 8 and len(g["student"][0]) == 8
    assert g["teacher"][0][0] == pytest.approx(1.0)  # cosine Gram: unit diagonal

    progress = col.of_type(EventType.PROGRESS)
    assert progress[-1].data["step"] == 6 and progress[-1].data["total_steps"] == 6
    evals = col.of_type(EventType.EVAL)
    assert evals[-1].data["split"] == "dev" and evals[-1].data["task"] == "cola" and "mcc" in evals[-1].data["metrics"]
    arts = {e.data["name"]: Path(e.data["path"]) for e in col.of_type(EventType.ARTIFACT)}
    assert set(arts) == {"student", "model_card", "results"}
    assert col.of_type(EventType.CHECKPOINT)[-1].data["path"] == str(tmp_path / "checkpoints" / "last")

    # Outputs: a loadable student (+ tokenizer), a model card, results.json, metrics.jsonl.
    student = AutoModelForSequenceClassification.from_pretrained(arts["student"])
    assert student.config.num_hidden_layers == 2 and student.config.hidden_size == 16
    assert (arts["student"] / "tokenizer.json").exists()
    card = arts["model_card"].read_text()
    for needle in ("dev/mcc", "seed: `3`", "torch:", "transformers:", "feature: procrustes", "git SHA"):
        assert needle in card
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "completed" and results["metrics"]["dev/mcc"] == result.final_metrics["dev/mcc"]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["type"] == "metric"] == [2, 4, 6]

    # The teacher was frozen: its weights are exactly those on disk.
    # (the engine loaded its own copy; this checks nothing wrote back to the directory either)
    after = AutoModelForSequenceClassification.from_pretrained(bert_teacher).state_dict()
    assert all(torch.equal(teacher_before[k], after[k]) for k in teacher_before)


def test_feature_only_training_aligns_the_student(bert_teacher: Path, glue_root: Path, tmp_path: Path) -> None:
    """alpha=1, gamma=0: only the Procrustes term trains, so the probe's Procrustes distance falls."""
    spec = load_spec(distill_spec(bert_teacher, glue_root, loss={"alpha": 1.0, "gamma": 0.0},
                                  train={"max_steps": 8, "log_every": 1, "lr": 3e-3}))
    col = EventCollector()
    run_job(spec, tmp_path, callbacks=[col])
    d = [e.data["values"]["align/s2-t4/procrustes"] for e in col.of_type(EventType.METRIC)]
    f = [e.data["values"]["train/feature"] for e in col.of_type(EventType.METRIC)]
    assert d[-1] < d[0] and f[-1] < f[0]
    assert all(e.data["values"]["train/ce"] > 0 for e in col.of_type(EventType.METRIC))  # logged, not weighted


def test_finetune_is_ce_only_and_evaluate_reproduces_its_dev_metrics(bert_teacher: Path, glue_root: Path,
                                                                     tmp_path: Path) -> None:
    spec = load_spec({
        "kind": "finetune", "name": "ft", "student": {"model": str(bert_teacher)},
        "data": {"source": "glue", "task": "mrpc", "path": str(glue_root), "max_seq_len": 24, "holdout_examples": 4},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "log_every": 1, "device": "cpu", "gram_every": 1},
    })
    col = EventCollector()
    res = run_job(spec, tmp_path / "ft", callbacks=[col])
    assert res.status == "completed" and res.step == 4  # 28 train rows (4 held out) / batch 8
    for e in col.of_type(EventType.METRIC):
        v = e.data["values"]
        assert v["train/kd"] == 0 and v["train/feature"] == 0 and v["train/loss"] == pytest.approx(v["train/ce"])
        assert not any(k.startswith("align/") for k in v)
    assert not col.of_type(EventType.LAYER_SIMILARITY) and not col.of_type(EventType.GRAM)
    splits = {e.data["split"] for e in col.of_type(EventType.EVAL)}
    assert splits == {"dev", "holdout"}
    assert {"dev/accuracy", "dev/f1", "holdout/accuracy"} <= set(res.final_metrics)

    ev = load_spec({"kind": "evaluate", "student": {"model": str(res.artifacts["student"])},
                    "data": spec.data.model_dump(), "train": {"device": "cpu", "batch_size": 8}})
    col2 = EventCollector()
    out = run_job(ev, tmp_path / "ev", callbacks=[col2])
    assert out.status == "completed"
    for k in ("dev/accuracy", "dev/f1", "holdout/accuracy"):
        assert out.final_metrics[k] == pytest.approx(res.final_metrics[k])
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["metrics"] == out.final_metrics


def test_regression_distill_with_projection_and_pooled_features(bert_teacher: Path, tmp_path: Path,
                                                                glue_root: Path) -> None:
    """STS-B: MSE CE and MSE KD; linproj's projection is trained (its weights move) and pooled rows are used."""
    from tests.utils.tiny_models import make_bert_dir

    teacher = make_bert_dir(tmp_path / "reg_teacher", num_layers=2, hidden=32, num_labels=1)
    spec = load_spec(distill_spec(teacher, glue_root, data={"task": "stsb"}, loss={"feature": "linproj",
                                  "granularity": "pooled", "layer_map": "last"}, train={"max_steps": 3, "log_every": 1}))
    res = run_job(spec, tmp_path / "out")
    assert res.status == "completed" and {"dev/pearson", "dev/spearman"} <= set(res.final_metrics)
    state = torch.load(tmp_path / "out" / "checkpoints" / "last" / "state.pt", weights_only=False)
    proj = {k: v for k, v in state["objective"].items() if "proj" in k}
    assert proj and state["pairs"] == [(2, 2)]
    # The projection parameters are in the optimiser (AdamW state exists for every parameter).
    n_params = sum(len(g["params"]) for g in state["optimizer"]["param_groups"])
    assert len(state["optimizer"]["state"]) == n_params


def test_instruction_distill_on_a_causal_lm(gpt2_teacher: Path, instruct_file: Path, tmp_path: Path) -> None:
    spec = load_spec({
        "kind": "distill", "name": "lm",
        "teacher": {"model": str(gpt2_teacher)},
        "student": {"config": {"num_layers": 1, "hidden_size": 16, "num_heads": 2}},
        "data": {"source": "instruct", "path": str(instruct_file), "max_seq_len": 64, "max_new_tokens": 4,
                 "max_eval_examples": 4},
        "loss": {"feature": "cka", "alpha": 0.2, "kd_kind": "skew_reverse_kl", "layer_map": "last"},
        "train": {"max_steps": 2, "batch_size": 4, "log_every": 1, "device": "cpu", "gram_every": 2,
                  "gram_probe_size": 4},
    })
    col = EventCollector()
    res = run_job(spec, tmp_path, callbacks=[col])
    assert res.status == "completed"
    v = col.of_type(EventType.METRIC)[0].data["values"]
    assert v["train/kd"] > 0 and v["train/ce"] > 0 and "align/s1-t2/cka" in v
    assert "dev/rougeL" in res.final_metrics
    assert {g.data["layer"] for g in col.of_type(EventType.GRAM)} == {"s1-t2"}


def test_distill_from_a_gguf_teacher(instruct_file: Path, tmp_path: Path) -> None:
    """`teacher: {model: DIR, gguf_file: NAME}` runs end to end: the GGUF's tokenizer feeds both
    models, the student is cut from the dequantized teacher, and a geometry loss trains it."""
    pytest.importorskip("gguf", reason="GGUF teachers need the optional `gguf` package (geokd[gguf])")
    make_llama_gguf(tmp_path / "teacher")
    spec = load_spec({
        "kind": "distill", "name": "gguf",
        "teacher": {"model": str(tmp_path / "teacher"), "gguf_file": "tiny-llama.gguf"},
        "student": {"init_from_teacher": {"layers": [0]}},
        "data": {"source": "instruct", "path": str(instruct_file), "max_seq_len": 64, "max_new_tokens": 4,
                 "max_eval_examples": 4},
        "loss": {"feature": "procrustes", "alpha": 0.5, "layer_map": "last"},
        "train": {"max_steps": 2, "batch_size": 4, "log_every": 1, "device": "cpu"},
    })
    col = EventCollector()
    res = run_job(spec, tmp_path / "run", callbacks=[col])
    assert res.status == "completed", res
    v = col.of_type(EventType.METRIC)[0].data["values"]
    assert v["train/kd"] > 0 and v["train/feature"] > 0 and math.isfinite(v["train/loss"])
    assert "dev/rougeL" in res.final_metrics


def test_suggest_finds_the_copied_teacher_layer(bert_teacher: Path, glue_root: Path, tmp_path: Path) -> None:
    """A student initialised from teacher block 1 reproduces teacher hidden state 2: CKA 1, and suggest picks it."""
    spec = load_spec(distill_spec(bert_teacher, glue_root, student={"init_from_teacher": {"layers": [1, 3]}},
                                  loss={"layer_map": "suggest", "feature": "gram"}, train={"max_steps": 1}))
    col = EventCollector()
    run_job(spec, tmp_path, callbacks=[col])
    m = col.of_type(EventType.LAYER_SIMILARITY)[0].data["matrix"]
    # float32 CKA of identical features: 1 up to rounding.
    assert m[2][1] == pytest.approx(1.0, abs=1e-4) and m[0][0] == pytest.approx(1.0, abs=1e-4)
    assert max(range(5), key=lambda j: m[j][1]) == 2
    msg = [e.data["message"] for e in col.of_type(EventType.LOG) if "layer pairs" in e.data["message"]][0]
    assert msg.split(": ")[1].startswith("s1-t2, s2-t")


def test_should_stop_writes_a_checkpoint_and_reports_stopped(bert_teacher: Path, glue_root: Path,
                                                             tmp_path: Path) -> None:
    spec = load_spec(distill_spec(bert_teacher, glue_root))
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    col = EventCollector()
    res = run_job(spec, tmp_path, callbacks=[StopWhen(stop), col])
    assert res.status == "stopped" and res.step == 2
    assert (tmp_path / "checkpoints" / "last" / "state.pt").exists()
    assert col.of_type(EventType.CHECKPOINT) and not col.of_type(EventType.ARTIFACT)
    assert not (tmp_path / "student").exists()


class StopOnEvent(Callback):
    """Cancels from ``on_event`` (as the service's sink does when the API reports a cancel)."""

    def on_event(self, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if kw["event"].type == EventType.LAYER_SIMILARITY:
            control.should_stop = True


def test_cancel_before_the_first_step_then_resume(bert_teacher: Path, glue_root: Path, tmp_path: Path) -> None:
    spec = load_spec(distill_spec(bert_teacher, glue_root, train={"max_steps": 2}))
    res = run_job(spec, tmp_path, callbacks=[StopOnEvent()])
    assert res.status == "stopped" and res.step == 0
    assert (tmp_path / "checkpoints" / "last" / "state.pt").exists()
    done = run_job(spec, tmp_path, resume=True)
    assert done.status == "completed" and done.step == 2
