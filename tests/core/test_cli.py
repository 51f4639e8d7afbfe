"""``geokd run`` / ``geokd spec schema|validate`` through typer's test runner, and the shipped examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from geokd_core.cli import core_commands
from geokd_core.spec import json_schema, load_spec
from tests.utils.job_specs import distill_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    core_commands.register(app)
    return app


def _write(path: Path, payload: dict) -> Path:
    path.write_text(yaml.safe_dump(payload))
    return path


def test_spec_schema_prints_the_json_schema(cli: typer.Typer) -> None:
    res = CliRunner().invoke(cli, ["spec", "schema"])
    assert res.exit_code == 0 and json.loads(res.stdout) == json_schema()


def test_spec_validate_reports_each_field(cli: typer.Typer, tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.yaml", {"kind": "distill", "teacher": {"model": "t"}, "student": {"model": "s"},
                                         "data": {"source": "glue", "task": "imdb"},
                                         "loss": {"feature": "mse", "alpha": 2}})
    res = CliRunner().invoke(cli, ["spec", "validate", str(bad)])
    assert res.exit_code == 1
    assert "data: unknown GLUE task 'imdb'" in res.output
    assert "loss.feature: unknown feature loss 'mse'" in res.output
    assert "loss.alpha: Input should be less than or equal to 1" in res.output
    missing = CliRunner().invoke(cli, ["spec", "validate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_spec_validate_runs_preflight(cli: typer.Typer, bert_teacher: Path, glue_root: Path, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.yaml", distill_spec(bert_teacher, glue_root))
    ok = CliRunner().invoke(cli, ["spec", "validate", str(good)])
    assert ok.exit_code == 0 and "valid (distill job 'tiny-distill'" in ok.output
    gone = _write(tmp_path / "gone.yaml", distill_spec(tmp_path / "no-teacher", glue_root))
    res = CliRunner().invoke(cli, ["spec", "validate", str(gone)])
    assert res.exit_code == 1 and "teacher.model" in res.output
    assert CliRunner().invoke(cli, ["spec", "validate", "--no-preflight", str(gone)]).exit_code == 0


def test_run_trains_prints_a_summary_and_resumes(cli: typer.Typer, bert_teacher: Path, glue_root: Path,
                                                 tmp_path: Path) -> None:
    spec = _write(tmp_path / "job.yaml", distill_spec(bert_teacher, glue_root, train={"max_steps": 2}))
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", str(spec), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "status: completed at step 2" in res.output and "dev/mcc" in res.output
    assert (out / "student" / "README.md").exists()
    again = CliRunner().invoke(cli, ["run", str(spec), "--out", str(out), "--resume"])
    assert again.exit_code == 0 and "status: completed at step 2" in again.output


def test_run_reports_engine_errors_readably(cli: typer.Typer, bert_teacher: Path, glue_root: Path,
                                            tmp_path: Path) -> None:
    # Valid schema, but the 4-layer teacher has no block 9: a SpecError at run time, exit 1.
    payload = distill_spec(bert_teacher, glue_root, loss={"layer_map": "explicit", "pairs": [[1, 9]]})
    res = CliRunner().invoke(cli, ["run", str(_write(tmp_path / "j.yaml", payload)), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "error: loss.pairs: teacher layer 9 out of range 0..4" in res.output


@pytest.mark.parametrize("name", ["finetune_cola_baseline.yaml", "glue_distill_cola.yaml",
                                  "instruct_distill_tiny_lm.yaml"])
def test_examples_are_valid_specs(name: str) -> None:
    spec = load_spec(EXAMPLES / name)
    assert spec.version == 1 and spec.data is not None
