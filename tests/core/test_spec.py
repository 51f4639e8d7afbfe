"""Every static error path of the job spec names the field and the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from geokd_core.spec import FEATURE_LOSSES, JobSpec, json_schema, load_spec

TEACHER = {"model": "some/teacher"}
GLUE = {"source": "glue", "task": "cola"}


def _base(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": "distill", "teacher": TEACHER, "student": {"init_from_teacher": {"layers": [0, 2]}},
                            "data": GLUE}
    spec.update(over)
    return spec


def _errors(payload: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(payload)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]


def _fails(payload: dict[str, Any], loc: str, reason: str) -> None:
    errs = _errors(payload)
    assert any(loc == loc_ and reason in msg for loc_, msg in errs), errs


def test_minimal_distill_spec_is_valid_and_defaults_apply() -> None:
    spec = JobSpec.model_validate(_base())
    assert spec.version == 1
    assert spec.loss.alpha == 0.5 and spec.loss.layer_map == "uniform"
    assert spec.train.device == "auto" and spec.train.mixed_precision == "no"


@pytest.mark.parametrize(
    ("payload", "loc", "reason"),
    [
        # student/teacher references
        (_base(student={"config": {"num_layers": 2, "hidden_size": 30, "num_heads": 4}}), "student.config",
         "must be divisible by num_heads"),
        (_base(student={"init_from_teacher": {"layers": [-1]}}), "student.init_from_teacher.layers", "must be >= 0"),
        (_base(student={"init_from_teacher": {"layers": [1, 1]}}), "student.init_from_teacher.layers", "unique"),
        (_base(student={"init_from_teacher": {"layers": []}}), "student.init_from_teacher.layers", "at least 1"),
        (_base(student={"model": "a", "config": {"num_layers": 1, "hidden_size": 8, "num_heads": 1}}), "student",
         "exactly one of"),
        (_base(student={}), "student", "exactly one of"),
        (_base(student={"config": {"num_layers": 1, "hidden_size": 8, "num_heads": 1}, "gguf_file": "x.gguf"}),
         "student", "`gguf_file` needs `model`"),
        (_base(student={"config": {"num_layers": 0, "hidden_size": 8, "num_heads": 1}}), "student.config.num_layers",
         "greater than or equal to 1"),
        (_base(teacher={"init_from_teacher": {"layers": [0]}}), "", "`teacher` must name a `model`"),
        # data
        (_base(data={"source": "glue"}), "data", "`task` is required"),
        (_base(data={"source": "glue", "task": "imdb"}), "data", "unknown GLUE task 'imdb'"),
        (_base(data={"source": "file"}), "data", "`path` is required for source=file"),
        (_base(data={"source": "file", "path": "x.tsv"}), "data", "needs `text_columns` and `label_column`"),
        (_base(data={"source": "instruct"}), "data", "`path` (a MiniLLM-format JSONL file) is required"),
        (_base(data={"source": "hub", "task": "cola"}), "data.source", "Input should be 'glue', 'file' or 'instruct'"),
        (_base(data={**GLUE, "max_seq_len": 4}), "data.max_seq_len", "greater than or equal to 8"),
        # loss
        (_base(loss={"feature": "mse"}), "loss.feature", "unknown feature loss 'mse'"),
        (_base(loss={"kd_kind": "tvd"}), "loss.kd_kind", "unknown kd_kind 'tvd'"),
        (_base(loss={"alpha": 1.5}), "loss.alpha", "less than or equal to 1"),
        (_base(loss={"temperature": 0}), "loss.temperature", "greater than 0"),
        (_base(loss={"layer_map": "explicit"}), "loss", "layer_map=explicit needs `pairs`"),
        (_base(loss={"pairs": [[1, 2]]}), "loss", "`pairs` is only used with layer_map=explicit"),
        (_base(loss={"layer_map": "explicit", "pairs": [[-1, 2]]}), "loss", "must be >= 0"),
        (_base(loss={"layer_map": "diagonal"}), "loss.layer_map", "Input should be"),
        (_base(loss={"granularity": "sentence"}), "loss.granularity", "Input should be 'token' or 'pooled'"),
        # train
        (_base(train={"batch_size": 0}), "train.batch_size", "greater than or equal to 1"),
        (_base(train={"lr": 0}), "train.lr", "greater than 0"),
        (_base(train={"warmup_ratio": 1.0}), "train.warmup_ratio", "less than 1"),
        (_base(train={"device": "tpu"}), "train.device", "Input should be 'auto', 'cpu' or 'cuda'"),
        (_base(train={"mixed_precision": "fp8"}), "train.mixed_precision", "Input should be"),
        (_base(train={"max_steps": 0}), "train.max_steps", "greater than or equal to 1"),
        # unknown keys are errors, not silently ignored
        (_base(loss={"aplha": 0.3}), "loss.aplha", "Extra inputs are not permitted"),
        (_base(colour="red"), "colour", "Extra inputs are not permitted"),
        (_base(version=2), "version", "Input should be 1"),
        # kind-specific requirements
        ({"kind": "distill", "teacher": TEACHER, "student": {"model": "s"}}, "", "kind=distill needs `data`"),
        ({"kind": "distill", "student": {"model": "s"}, "data": GLUE}, "", "needs both `teacher` and `student`"),
        ({"kind": "finetune", "data": GLUE}, "", "kind=finetune trains `student`"),
        ({"kind": "finetune", "student": {"model": "s"}, "data": GLUE, "loss": {"feature": "gram"}}, "",
         "`loss.feature` must be null"),
        ({"kind": "evaluate", "data": GLUE}, "", "kind=evaluate needs `student`"),
        ({"kind": "finetune", "student": {"init_from_teacher": {"layers": [0]}}, "data": GLUE}, "",
         "`student.init_from_teacher` needs a `teacher`"),
        ({"kind": "finetune", "student": {"config": {"num_layers": 1, "hidden_size": 8, "num_heads": 1}},
          "data": GLUE}, "", "`student.config` builds on the teacher's architecture"),
        ({"kind": "launch"}, "kind", "Input should be"),
        # synthetic
        ({"kind": "synthetic", "synthetic": {"losses": ["bogus"]}}, "synthetic.losses", "unknown loss(es) ['bogus']"),
        ({"kind": "synthetic", "synthetic": {"losses": []}}, "synthetic.losses", "give at least one loss"),
        ({"kind": "synthetic", "synthetic": {"d_student": 200, "d_teacher": 100}}, "synthetic",
         "d_student must be <= d_teacher"),
        ({"kind": "synthetic", "synthetic": {"eps": 1.0}}, "synthetic.eps", "less than 1"),
    ],
)
def test_invalid_spec_names_field_and_reason(payload: dict[str, Any], loc: str, reason: str) -> None:
    _fails(payload, loc, reason)


def test_synthetic_gets_defaults_and_finetune_can_train_a_teacher_model() -> None:
    spec = JobSpec.model_validate({"kind": "synthetic"})
    assert spec.synthetic is not None and spec.synthetic.losses == list(FEATURE_LOSSES[:3]) + ["linproj", "orthproj"]
    ft = JobSpec.model_validate({"kind": "finetune", "student": TEACHER, "data": GLUE})
    assert ft.teacher is None and ft.loss.feature is None


def test_load_spec_from_yaml_json_and_text(tmp_path: Path) -> None:
    payload = _base(name="x", loss={"feature": "gram", "alpha": 0.3})
    (tmp_path / "s.json").write_text(json.dumps(payload))
    y = tmp_path / "s.yaml"
    y.write_text("kind: distill\nname: x\nteacher: {model: some/teacher}\n"
                 "student: {init_from_teacher: {layers: [0, 2]}}\ndata: {source: glue, task: cola}\n"
                 "loss: {feature: gram, alpha: 0.3}\n")
    a, b = load_spec(tmp_path / "s.json"), load_spec(str(y))
    assert a == b == load_spec(y.read_text()) == load_spec(payload)
    assert a.spec_hash() == load_spec({**payload, "name": "other", "tags": {"k": "v"}}).spec_hash()
    assert a.spec_hash() != load_spec(_base(loss={"feature": "gram", "alpha": 0.4})).spec_hash()


def test_load_spec_rejects_non_mappings_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mapping at the top level"):
        load_spec("- a\n- b\n")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_spec(str(tmp_path / "missing.yaml"))


def test_json_schema_lists_the_contract_fields() -> None:
    schema = json_schema()
    assert schema["title"] == "JobSpec"
    assert {"kind", "teacher", "student", "data", "loss", "train"} <= set(schema["properties"])
    loss = schema["$defs"]["LossSpec"]["properties"]
    assert {"feature", "alpha", "gamma", "kd_kind", "temperature", "layer_map", "granularity"} <= set(loss)
