"""geokd_core.paths: every local path of a spec must lie under the allowed roots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from geokd_core.errors import SpecError
from geokd_core.paths import (
    Problem,
    looks_like_hub_id,
    resolve_under_roots,
    resolved_spec,
    spec_path_problems,
)
from geokd_core.spec import JobSpec


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path, Path]:
    data, models, outside = tmp_path / "data", tmp_path / "models", tmp_path / "outside"
    for d in (data / "glue" / "RTE", models / "bert", outside):
        d.mkdir(parents=True)
    (data / "train.jsonl").write_text("{}\n")
    (outside / "secret.tsv").write_text("x\n")
    return data, models, outside


def test_resolve_relative_absolute_and_missing(roots: tuple[Path, Path, Path]) -> None:
    data, _, _ = roots
    assert resolve_under_roots("glue", [data]) == (data / "glue").resolve()
    assert resolve_under_roots(str(data / "train.jsonl"), [data]) == (data / "train.jsonl").resolve()
    assert resolve_under_roots("glue/RTE/../RTE", [data]) == (data / "glue" / "RTE").resolve()
    with pytest.raises(SpecError, match="'nope.tsv' does not exist under"):
        resolve_under_roots("nope.tsv", [data])


def test_dotdot_escape_is_refused(roots: tuple[Path, Path, Path]) -> None:
    data, _, outside = roots
    with pytest.raises(SpecError, match="outside the allowed roots"):
        resolve_under_roots("../outside/secret.tsv", [data])
    with pytest.raises(SpecError, match="outside the allowed roots"):
        resolve_under_roots(str(data / ".." / "outside" / "secret.tsv"), [data])
    with pytest.raises(SpecError, match="outside the allowed roots"):
        resolve_under_roots("/etc/passwd", [data])
    # Unrestricted (local CLI): only existence matters.
    assert resolve_under_roots(str(outside / "secret.tsv"), None) == (outside / "secret.tsv").resolve()


def test_symlink_escape_is_refused(roots: tuple[Path, Path, Path]) -> None:
    data, _, outside = roots
    os.symlink(outside / "secret.tsv", data / "link.tsv")
    os.symlink(outside, data / "linkdir")
    with pytest.raises(SpecError, match="outside the allowed roots"):
        resolve_under_roots("link.tsv", [data])
    with pytest.raises(SpecError, match="outside the allowed roots"):
        resolve_under_roots(str(data / "linkdir" / "secret.tsv"), [data])
    # A link that stays inside the root is fine.
    os.symlink(data / "train.jsonl", data / "inside.jsonl")
    assert resolve_under_roots("inside.jsonl", [data]) == (data / "train.jsonl").resolve()


def test_looks_like_hub_id() -> None:
    assert all(map(looks_like_hub_id, ["bert-base-uncased", "prajjwal1/bert-tiny", "facebook/opt-125m", "a.b_c"]))
    bad = ["", "/abs/path", "./rel", "../up", "~/x", "a/b/c", "org/../x", "a--b", "x y", "org/"]
    assert not any(map(looks_like_hub_id, bad))


def _spec(data: dict, teacher: str = "org/teacher", student: str | None = None) -> JobSpec:
    st = {"model": student} if student else {"init_from_teacher": {"layers": [0]}}
    return JobSpec.model_validate({"kind": "distill", "teacher": {"model": teacher}, "student": st, "data": data})


def test_spec_path_problems_name_each_field(roots: tuple[Path, Path, Path]) -> None:
    data, models, outside = roots
    spec = _spec(
        {"source": "instruct", "path": "train.jsonl", "eval_path": "../outside/secret.tsv",
         "eval_sets": {"dolly": "missing.jsonl", "ok": "train.jsonl"}},
        teacher=str(outside), student="bert",
    )
    problems = spec_path_problems(spec, data_roots=[data], model_roots=[models])
    locs = [p.loc for p in problems]
    assert locs == [["data", "eval_path"], ["data", "eval_sets", "dolly"], ["teacher", "model"]]
    assert "outside the allowed roots" in problems[0].msg and "does not exist" in problems[1].msg
    assert Problem(["x"], "y").to_dict() == {"loc": ["x"], "msg": "y"}


def test_hub_ids_pass_and_gguf_names_stay_inside(roots: tuple[Path, Path, Path]) -> None:
    data, models, _ = roots
    ok = _spec({"task": "rte", "path": "glue"}, teacher="org/teacher", student="bert")
    assert spec_path_problems(ok, data_roots=[data], model_roots=[models]) == []
    assert spec_path_problems(_spec({"task": "rte"}), data_roots=[data], model_roots=[models]) == []
    bad = JobSpec.model_validate({"kind": "finetune", "student": {"model": "bert", "gguf_file": "../x.gguf"}, "data": {"task": "rte"}})
    assert [p.loc for p in spec_path_problems(bad, data_roots=[data], model_roots=[models])] == [["student", "gguf_file"]]
    missing = JobSpec.model_validate({"kind": "finetune", "student": {"model": "bert", "gguf_file": "m.gguf"}, "data": {"task": "rte"}})
    assert [p.loc for p in spec_path_problems(missing, data_roots=[data], model_roots=[models])] == [["student", "gguf_file"]]
    (models / "bert" / "m.gguf").write_bytes(b"GGUF")
    assert spec_path_problems(missing, data_roots=[data], model_roots=[models]) == []


def test_resolved_spec_makes_paths_absolute(roots: tuple[Path, Path, Path]) -> None:
    data, models, _ = roots
    spec = _spec({"task": "rte", "path": "glue"}, teacher="org/teacher", student="bert")
    out = resolved_spec(spec, data_roots=[data], model_roots=[models])
    assert out.data.path == str((data / "glue").resolve()) and out.student.model == str((models / "bert").resolve())
    assert out.teacher.model == "org/teacher" and spec.data.path == "glue"
    with pytest.raises(SpecError, match="data.path"):
        resolved_spec(_spec({"task": "rte", "path": "../outside"}), data_roots=[data], model_roots=[models])


def test_paths_module_imports_no_torch() -> None:
    code = "import sys, geokd_core.paths; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
