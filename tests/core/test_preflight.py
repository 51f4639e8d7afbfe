"""geokd_core.preflight.check: every problem a run would hit, found before it starts, by field."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

import geokd_core.run
from geokd_core.preflight import DIM_FREE_LOSSES, PROJECTED_LOSSES, check, needs_equal_dims
from geokd_core.spec import FEATURE_LOSSES, JobSpec
from tests.utils.glue_fixtures import write_custom, write_glue, write_instruct


def _save_config(path: Path, cfg: Any, arch: str | None) -> str:
    """Only config.json: preflight reads configs, never weights."""
    cfg.architectures = [arch] if arch else None
    cfg.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("preflight")
    bert = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    write_glue(root / "glue", ("rte", "stsb"), n_train=12, n_dev=6)
    return {
        "glue": str(root / "glue"),
        "instruct": str(write_instruct(root / "instruct.jsonl", n=12)),
        "custom": str(write_custom(root / "custom.tsv", n=12)),
        "teacher": _save_config(root / "teacher", BertConfig(num_labels=2, **bert), BertForSequenceClassification.__name__),
        "teacher3": _save_config(root / "teacher3", BertConfig(num_labels=3, **bert), BertForSequenceClassification.__name__),
        "base": _save_config(root / "base", BertConfig(**bert), "BertModel"),
        "student": _save_config(root / "student", BertConfig(**{**bert, "num_hidden_layers": 2, "hidden_size": 16}), "BertForSequenceClassification"),
        "student_vocab": _save_config(root / "sv", BertConfig(vocab_size=999, **bert), "BertForSequenceClassification"),
        "gpt2": _save_config(root / "gpt2", GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=128), GPT2LMHeadModel.__name__),
    }


def _spec(world: dict[str, str], **over: Any) -> JobSpec:
    base: dict[str, Any] = {
        "kind": "distill",
        "teacher": {"model": world["teacher"]},
        "student": {"init_from_teacher": {"layers": [0, 2]}},
        "data": {"task": "rte", "path": world["glue"], "max_seq_len": 32},
        "loss": {"feature": "procrustes"},
    }
    for key, value in over.items():
        # data/loss/train are patched field by field; teacher/student are replaced whole.
        merge = key in ("data", "loss", "train") and isinstance(value, dict)
        base[key] = {**base.get(key, {}), **value} if merge else value
    return JobSpec.model_validate(base)


def _locs(problems: list) -> list[list]:
    return [p.loc for p in problems]


def test_a_good_spec_has_no_problems(world: dict[str, str]) -> None:
    assert check(_spec(world)) == []
    assert check(_spec(world, student={"model": world["student"]}, loss={"feature": "gram", "layer_map": "explicit", "pairs": [[2, 4], [0, 0]]})) == []
    assert check(JobSpec.model_validate({"kind": "synthetic"})) == []


def test_roots_are_enforced(world: dict[str, str], tmp_path: Path) -> None:
    problems = check(_spec(world), data_roots=[tmp_path], model_roots=[tmp_path])
    assert _locs(problems) == [["data", "path"], ["teacher", "model"]]
    glue_root = Path(world["glue"]).parent
    relative = _spec(world, data={"path": "glue"})
    assert check(relative, data_roots=[glue_root], model_roots=[glue_root]) == []


def test_layer_mapping_and_init_layers_out_of_range(world: dict[str, str]) -> None:
    spec = _spec(world, student={"init_from_teacher": {"layers": [0, 4]}}, loss={"layer_map": "explicit", "pairs": [[1, 5], [3, 1]]})
    problems = check(spec)
    assert _locs(problems) == [["student", "init_from_teacher", "layers"], ["loss", "pairs", 0], ["loss", "pairs", 1]]
    assert "teacher has 4 layers" in problems[0].msg
    assert "teacher layer 5 out of range 0..4" in problems[1].msg and "student layer 3 out of range 0..2" in problems[2].msg


def test_task_and_head_mismatches(world: dict[str, str]) -> None:
    p = check(_spec(world, teacher={"model": world["teacher3"]}))
    assert _locs(p) == [["teacher", "model"]] and "3 labels, the data has 2" in p[0].msg
    p = check(_spec(world, kind="finetune", teacher=None, student={"model": world["teacher3"]}, loss={"feature": None}))
    assert _locs(p) == [["student", "model"]] and "student's classification head has 3 labels" in p[0].msg
    # STS-B is regression: one output.
    assert _locs(check(_spec(world, data={"task": "stsb"}))) == [["teacher", "model"]]
    p = check(_spec(world, kind="finetune", teacher=None, student={"model": world["gpt2"]}, loss={"feature": None}))
    assert _locs(p) == [["student", "model"]] and "is a causal LM" in p[0].msg
    instruct = {"source": "instruct", "path": world["instruct"], "task": None, "max_seq_len": 32}
    p = check(_spec(world, data=instruct))
    assert _locs(p) == [["teacher", "model"]] and "not a causal LM" in p[0].msg
    assert check(_spec(world, teacher={"model": world["gpt2"]}, student={"init_from_teacher": {"layers": [0]}}, data=instruct)) == []
    # A teacher without a trained head cannot give logit KD, but can give features only.
    assert "no trained classification head" in check(_spec(world, teacher={"model": world["base"]}))[0].msg
    assert check(_spec(world, teacher={"model": world["base"]}, loss={"alpha": 1.0})) == []


def test_max_seq_len_and_vocab(world: dict[str, str]) -> None:
    p = check(_spec(world, data={"max_seq_len": 128}))
    assert _locs(p) == [["data", "max_seq_len"]] and "max_position_embeddings (64)" in p[0].msg
    p = check(_spec(world, student={"model": world["student_vocab"]}))
    assert _locs(p) == [["loss", "granularity"]]
    assert check(_spec(world, student={"model": world["student_vocab"]}, loss={"granularity": "pooled"})) == []


def test_dims_table_covers_every_registered_loss() -> None:
    assert set(FEATURE_LOSSES) == DIM_FREE_LOSSES | PROJECTED_LOSSES
    assert not any(needs_equal_dims(f) for f in FEATURE_LOSSES) and needs_equal_dims("mse")


def test_data_problems(world: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    custom = {"source": "file", "task": None, "path": world["custom"], "text_columns": ["sentence"], "label_column": "label"}
    p = check(_spec(world, data=custom))
    assert _locs(p) == [["data", "path"]] and "missing column 'sentence'" in p[0].msg
    missing = check(_spec(world, data={"path": str(tmp_path / "none")}))
    assert _locs(missing) == [["data", "path"]] and "does not exist" in missing[0].msg
    monkeypatch.setitem(sys.modules, "datasets", None)
    hub = check(_spec(world, data={"path": None}))
    assert _locs(hub) == [["data", "path"]] and "pip install datasets" in hub[0].msg
    write_glue(tmp_path, ("rte",))
    (tmp_path / "RTE" / "train.tsv").unlink()
    p = check(_spec(world, data={"path": str(tmp_path)}))
    assert _locs(p) == [["data", "path"]] and "no training rows" in p[0].msg


def test_unreadable_model_config(world: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    p = check(_spec(world, teacher={"model": str(tmp_path)}))
    assert ["teacher", "model"] in _locs(p) and "cannot load a model config" in p[0].msg
    # An uncached hub id cannot be checked offline: not a problem here (the run downloads it).
    assert check(_spec(world, teacher={"model": "nobody/not-cached-model"})) == []


def test_dry_run_runs_one_tiny_step_through_run_job(world: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[JobSpec, Path]] = []

    def fake_run_job(spec: JobSpec, out_dir: Path, *args: Any, **kwargs: Any) -> None:
        seen.append((spec, Path(out_dir)))
        assert Path(out_dir).is_dir()
        if spec.loss.temperature == 3.0:
            raise RuntimeError("boom at step 1")

    monkeypatch.setitem(sys.modules, "geokd_core.train", types.ModuleType("geokd_core.train"))
    monkeypatch.setattr(geokd_core.run, "run_job", fake_run_job, raising=False)
    assert check(_spec(world), dry_run=True) == []
    spec = seen[0][0]
    assert (spec.train.max_steps, spec.data.max_train_examples, spec.train.batch_size) == (1, 4, 4)
    assert not seen[0][1].exists()  # the temp dir is cleaned up
    p = check(_spec(world, loss={"temperature": 3.0}), dry_run=True)
    assert _locs(p) == [["dry_run"]] and p[0].msg == "RuntimeError: boom at step 1"
    # Nothing runs when static checks already failed.
    n = len(seen)
    check(_spec(world, data={"max_seq_len": 128}), dry_run=True)
    assert len(seen) == n


def test_dry_run_is_skipped_without_an_engine(world: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "geokd_core.train", None)  # import → ImportError
    assert check(_spec(world), dry_run=True) == []


def test_gguf_teacher_config_is_read(world: dict[str, str], tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    w = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    w.add_block_count(3)
    w.add_embedding_length(64)
    w.add_context_length(256)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(100)
    w.add_tensor("token_embd.weight", np.zeros((100, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    teacher = {"model": str(tmp_path), "gguf_file": "m.gguf"}
    instruct = {"source": "instruct", "path": world["instruct"], "task": None, "max_seq_len": 32}
    assert check(_spec(world, teacher=teacher, data=instruct)) == []
    p = check(_spec(world, teacher=teacher, data=instruct, student={"init_from_teacher": {"layers": [0, 3]}}))
    assert _locs(p) == [["student", "init_from_teacher", "layers"]] and "0..2" in p[0].msg
    p = check(_spec(world, teacher=teacher))  # a llama with GLUE data
    assert _locs(p) == [["teacher", "model"]] and "causal LM" in p[0].msg


def test_real_dry_run_through_the_engine(bert_teacher: Path, glue_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("geokd_core.train", reason="the training engine (geokd_core.train) is not there yet")
    from tests.core.conftest import distill_spec

    real = geokd_core.run.run_job
    results: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(geokd_core.run, "run_job", spy)
    spec = JobSpec.model_validate(distill_spec(bert_teacher, glue_root, train={"max_steps": 50, "batch_size": 16}))
    assert check(spec, dry_run=True) == []
    assert len(results) == 1 and results[0].step == 1
