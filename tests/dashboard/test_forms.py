"""dashboard.forms: form values → specs the real JobSpec accepts; pydantic errors → form fields."""

from __future__ import annotations

import pydantic
import pytest

from dashboard import forms
from geokd_core.spec import JobSpec


def test_alpha_grid_is_the_papers() -> None:
    assert forms.ALPHA_GRID == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def test_default_form_is_a_valid_synthetic_demo() -> None:
    spec, errors, seeds = forms.build_spec({})
    assert errors == {} and seeds == [0, 1]
    parsed = JobSpec.model_validate(spec)
    assert parsed.kind == "synthetic" and parsed.synthetic is not None and parsed.synthetic.seeds == [0, 1]
    assert set(spec) == {"name", "kind", "synthetic"}  # only the sections the kind uses


@pytest.mark.parametrize("source", ["config", "init_from_teacher", "model"])
def test_distill_form_is_valid_for_every_student_source(source: str) -> None:
    values = {"kind": "distill", "teacher.model": "prajjwal1/bert-tiny", "ui.student_source": source,
              "student.model": "org/student", "loss.feature": forms.NO_FEATURE, "ui.seeds": "3, 4"}
    spec, errors, seeds = forms.build_spec(values)
    assert errors == {} and seeds == [3, 4]
    parsed = JobSpec.model_validate(spec)
    assert parsed.loss.feature is None and parsed.train.seed == 3
    assert [JobSpec.model_validate(forms.with_seed(spec, s, 2)).name for s in seeds] == [
        "demo-synthetic-s3", "demo-synthetic-s4"]


def test_explicit_pairs_and_parse_errors() -> None:
    spec, errors, _ = forms.build_spec({"kind": "distill", "teacher.model": "t", "loss.layer_map": "explicit",
                                        "loss.pairs": "1:2, 2:4"})
    assert spec["loss"]["pairs"] == [[1, 2], [2, 4]] and errors == {}
    assert JobSpec.model_validate(spec).loss.pairs == [(1, 2), (2, 4)]
    _, errors, _ = forms.build_spec({"kind": "distill", "loss.layer_map": "explicit", "loss.pairs": "1-2",
                                     "ui.seeds": "0, x"})
    assert errors == {"loss.pairs": ["'1-2' is not `student:teacher`"], "ui.seeds": ["'x' is not an integer"]}


def test_sweep_one_job_per_alpha_and_seed() -> None:
    base, _, _ = forms.build_spec({"kind": "distill", "teacher.model": "t", "name": "sw"})
    specs = forms.sweep_specs(base, forms.ALPHA_GRID, [0, 1, 2])
    assert len(specs) == 18
    assert sorted({(s["loss"]["alpha"], s["train"]["seed"]) for s in specs}) == [
        (a, s) for a in forms.ALPHA_GRID for s in (0, 1, 2)]
    assert len({s["name"] for s in specs}) == 18 and specs[4]["name"] == "sw-a0.2-s1"
    assert specs[4]["tags"] == {"sweep": "sw", "alpha": "0.2", "seed": "1"}
    assert all(JobSpec.model_validate(s) for s in specs)
    assert base["loss"]["alpha"] == 0.5  # the base spec is not modified


def _pydantic_problems(spec: dict) -> list[dict]:
    with pytest.raises(pydantic.ValidationError) as info:
        JobSpec.model_validate(spec)
    # FastAPI reports body errors with a leading "body".
    return [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in info.value.errors()]


def test_validation_errors_land_on_their_fields() -> None:
    spec, _, _ = forms.build_spec({"synthetic.d_student": 100, "synthetic.d_teacher": 8})
    errors = forms.errors_by_path(_pydantic_problems(spec))
    assert list(errors) == ["synthetic"]
    assert forms.messages_for(errors, "synthetic") == ["d_student must be <= d_teacher (the student is the smaller model)"]

    bad, _, _ = forms.build_spec({"kind": "distill", "teacher.model": "t", "loss.alpha": 1.5})
    errors = forms.errors_by_path(_pydantic_problems(bad))
    assert forms.messages_for(errors, "loss.alpha") == ["Input should be less than or equal to 1"]
    assert forms.unclaimed(errors, ["loss.alpha"]) == []
    assert forms.unclaimed(errors, ["name"]) == ["loss.alpha: Input should be less than or equal to 1"]


def test_nested_locs_belong_to_their_field_and_root_errors_to_none() -> None:
    errors = forms.errors_by_path([{"loc": ["body", "loss", "pairs", 0, 1], "msg": "bad"},
                                   {"loc": ["body"], "msg": "Value error, kind=distill needs `data`"}])
    assert forms.messages_for(errors, "loss.pairs") == ["bad"]
    assert forms.messages_for(errors, "loss.pair") == []  # a prefix of the name is not a parent path
    assert forms.unclaimed(errors, ["loss.pairs"]) == ["kind=distill needs `data`"]
    assert forms.unclaimed(errors, [], exact=["", "loss"]) == ["loss.pairs.0.1: bad"]  # exact: not the children


def test_idempotency_key_depends_on_spec_and_nonce() -> None:
    spec = {"name": "a", "kind": "synthetic"}
    assert forms.idempotency_key(spec, "n1") == forms.idempotency_key(dict(reversed(spec.items())), "n1")
    assert forms.idempotency_key(spec, "n1") != forms.idempotency_key(spec, "n2")
    assert forms.idempotency_key(spec, "n1") != forms.idempotency_key({**spec, "name": "b"}, "n1")


def test_yaml_round_trip_and_errors() -> None:
    spec, _, _ = forms.build_spec({})
    assert forms.from_yaml(forms.to_yaml(spec)) == spec
    with pytest.raises(ValueError, match="YAML"):
        forms.from_yaml("a: [1, 2")
    with pytest.raises(ValueError, match="mapping"):
        forms.from_yaml("- 1\n- 2")


def test_parse_int_list() -> None:
    assert forms.parse_int_list(" 0, 1;2 ,") == [0, 1, 2]
    assert forms.parse_int_list("") == []
