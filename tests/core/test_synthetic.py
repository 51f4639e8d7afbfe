"""The synthetic experiment: determinism, exact resume, the event stream, counts, the CLI."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from geokd_core.callbacks import Callback, EventCollector, TrainerControl, TrainerState
from geokd_core.errors import SpecError
from geokd_core.events import Event, EventType
from geokd_core.geometry import preserved_orthogonal_pairs
from geokd_core.run import run_job
from geokd_core.spec import JobKind, JobSpec, SyntheticSpec, TrainSpec
from geokd_core.synthetic.checkpoint import load_checkpoint, save_checkpoint
from geokd_core.synthetic.vectors import make_pair

ALL_LOSSES = ["procrustes", "gram", "cka", "linproj", "orthproj"]


def tiny_spec(**syn: Any) -> JobSpec:
    base: dict[str, Any] = {"n": 40, "d_teacher": 10, "d_student": 5, "eps": 0.2, "steps": 12,
                            "lr": 0.05, "log_every": 3, "seeds": [0, 1], "losses": ALL_LOSSES}
    train = syn.pop("train", {})
    return JobSpec(kind=JobKind.SYNTHETIC, synthetic=SyntheticSpec(**{**base, **syn}),
                   train=TrainSpec(gram_probe_size=8, **train))


def read_results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


class StopAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.step == self.step:
            control.should_stop = True


def metric_points(events: list[Any]) -> dict[tuple[str, int], float]:
    return {(name, e.step): v for e in events if e.type == EventType.METRIC for name, v in e.data["values"].items()}


# ---- the data ---------------------------------------------------------------------------------
def test_pair_is_seeded_and_unit_norm() -> None:
    t0, s0 = make_pair(30, 8, 4, seed=3)
    t1, s1 = make_pair(30, 8, 4, seed=3)
    t2, _ = make_pair(30, 8, 4, seed=4)
    assert torch.equal(t0, t1) and torch.equal(s0, s1) and not torch.equal(t0, t2)
    assert t0.shape == (30, 8) and s0.shape == (30, 4)
    np.testing.assert_allclose(t0.norm(dim=1).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(s0.norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_preserved_pairs_on_a_hand_made_example() -> None:
    # Teacher in R^3: e1, e2, e3, (e1+e2)/sqrt2. Orthogonal pairs: (0,1) (0,2) (1,2) (2,3) -> 4.
    r = 2**-0.5
    teacher = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [r, r, 0]])
    # Student in R^2: f1, f2, f1, f2. Orthogonal: (0,1) (0,3) (1,2) (2,3); kept: (0,1) (1,2) (2,3) -> 3.
    student = torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 1]])
    kept, total = preserved_orthogonal_pairs(teacher, student, 0.1)
    assert (int(kept), int(total)) == (3, 4)


def numpy_pair_count(x: np.ndarray, y: np.ndarray, eps: float) -> tuple[int, int]:
    """Independent reference: loop-free numpy over i < j."""
    def cos(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float64) / np.linalg.norm(a, axis=1, keepdims=True)
        return a @ a.T
    iu = np.triu_indices(len(x), 1)
    t = np.abs(cos(x))[iu] < eps
    s = np.abs(cos(y))[iu] < eps
    return int((t & s).sum()), int(t.sum())


def test_reported_counts_match_a_numpy_reference(tmp_path: Path) -> None:
    spec = tiny_spec(losses=["gram"], seeds=[5], steps=1, log_every=1)
    run_job(spec, tmp_path)
    rec = read_results(tmp_path)["runs"][0]
    teacher, student0 = make_pair(40, 10, 5, seed=5)
    t = teacher.numpy() - teacher.numpy().mean(0)  # both sides are measured centered
    kept0, total = numpy_pair_count(t, student0.numpy() - student0.numpy().mean(0), 0.2)
    assert rec["teacher_pairs"] == total == numpy_pair_count(t, t, 0.2)[0]
    assert rec["preserved_pairs"][0] == kept0
    assert 0 < kept0 < total < 40 * 39 // 2


def test_rank_floors_match_closed_forms() -> None:
    # Independent numpy: energies e_i of the centered teacher; k = d_s.
    from geokd_core.synthetic.reference import rank_floor

    teacher, _ = make_pair(60, 12, 5, seed=2)
    t = teacher.double().numpy()
    sv = np.linalg.svd(t - t.mean(0), compute_uv=False)
    e, k = sv**2 / (sv**2).sum(), 5
    lift = (1 - e[:k].sum()) / k
    expected = {
        "procrustes": 2 - 2 * np.sqrt(e[:k].sum()),
        "orthproj": 2 - 2 * np.sqrt(e[:k].sum()),
        "cka": 1 - np.sqrt((e[:k] ** 2).sum() / (e**2).sum()),
        "gram": k * lift**2 + (e[k:] ** 2).sum(),
        "linproj": e[k:].sum(),
    }
    ref = rank_floor(teacher, k, 0.3, list(expected))
    for name, value in expected.items():
        assert ref["floor_loss"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    tc = t - t.mean(0)
    assert ref["teacher_pairs"] == numpy_pair_count(tc, tc, 0.3)[0]
    # The PCA student spans the whole centered teacher when k = d_t: every pair is kept.
    full = rank_floor(teacher, 12, 0.3, ["procrustes"])
    assert full["pca"]["kept"] == full["teacher_pairs"] and full["floor_loss"]["procrustes"] < 1e-5


# ---- determinism and resume ---------------------------------------------------------------------
def test_runs_are_deterministic_per_seed(tmp_path: Path) -> None:
    a = run_job(tiny_spec(), tmp_path / "a")
    b = run_job(tiny_spec(), tmp_path / "b")
    assert a.final_metrics == b.final_metrics
    assert read_results(tmp_path / "a")["runs"] == read_results(tmp_path / "b")["runs"]
    # A run depends on its own seed only, not on what ran before it in the process.
    run_job(tiny_spec(seeds=[1], losses=["orthproj", "linproj"]), tmp_path / "c")
    by_key = {(r["loss"], r["seed"]): r for r in read_results(tmp_path / "a")["runs"]}
    for rec in read_results(tmp_path / "c")["runs"]:
        assert rec == by_key[(rec["loss"], rec["seed"])]
    # Different seeds give different students.
    assert by_key[("gram", 0)]["preserved_pairs"] != by_key[("gram", 1)]["preserved_pairs"]


@pytest.mark.parametrize("stops", [(5,), (12, 31, 100)])
def test_resume_is_exact(tmp_path: Path, stops: tuple[int, ...]) -> None:
    spec = tiny_spec(train={"checkpoint_every": 7})
    full, full_events = EventCollector(), tmp_path / "full"
    reference = run_job(spec, full_events, callbacks=[full])
    out, seen = tmp_path / "resumed", EventCollector()
    for i, stop in enumerate(stops):
        res = run_job(spec, out, callbacks=[seen, StopAtStep(stop)], resume=i > 0)
        assert (res.status, res.step) == ("stopped", stop)
    final = run_job(spec, out, callbacks=[seen], resume=True)
    assert final.status == "completed" and final.final_metrics == reference.final_metrics
    assert read_results(out)["runs"] == read_results(full_events)["runs"]
    # Re-emitted points carry identical values; after de-duplication nothing is missing.
    points: dict[tuple[str, int], float] = {}
    for e in seen.events:
        for name, v in e.data.get("values", {}).items() if e.type == EventType.METRIC else ():
            assert points.setdefault((name, e.step), v) == v
    assert points == metric_points(full.events)


def test_resume_refuses_other_settings_and_completed_job_is_idempotent(tmp_path: Path) -> None:
    run_job(tiny_spec(), tmp_path, callbacks=[StopAtStep(4)])
    with pytest.raises(SpecError, match="different synthetic settings"):
        run_job(tiny_spec(eps=0.3), tmp_path, resume=True)
    first = run_job(tiny_spec(), tmp_path, resume=True)
    again, events = EventCollector(), None
    second = run_job(tiny_spec(), tmp_path, callbacks=[again], resume=True)
    events = again.of_type(EventType.METRIC)
    assert events == [] and second.final_metrics == first.final_metrics and second.status == "completed"


CRASH_SCRIPT = """
import os, signal, sys
from pathlib import Path
from geokd_core.callbacks import Callback
from geokd_core.run import run_job
from geokd_core.spec import JobSpec

spec, out, kill_at = JobSpec.model_validate_json(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
log = open(sys.argv[4], "a")

class Sink(Callback):
    def on_event(self, state, control, **kw):
        log.write(kw["event"].model_dump_json() + "\\n")
        log.flush()

    def on_step_end(self, state, control, **kw):
        if state.step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

run_job(spec, out, callbacks=[Sink()], resume=True)
"""


def test_sigkill_mid_job_then_resume(tmp_path: Path) -> None:
    spec = tiny_spec(train={"checkpoint_every": 7})
    full = EventCollector()
    run_job(spec, tmp_path / "full", callbacks=[full])
    out, log = tmp_path / "job", tmp_path / "events.jsonl"
    # Killed after step 45's metrics went out; the last checkpoint is at step 42, so steps 43-45 are
    # recomputed and the point at 45 (metrics every 3 steps) is sent a second time.
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, spec.model_dump_json(), str(out), "45", str(log)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    resumed = EventCollector()
    run_job(spec, out, callbacks=[resumed], resume=True)
    killed = [Event.model_validate_json(line) for line in log.read_text().splitlines()]
    assert max(e.step for e in killed) == 45 and min(e.step for e in resumed.of_type(EventType.METRIC)) == 45
    points: dict[tuple[str, int], float] = {}
    for key, v in itertools.chain(metric_points(killed).items(), metric_points(resumed.events).items()):
        assert points.setdefault(key, v) == v
    assert points == metric_points(full.events)
    assert read_results(out)["runs"] == read_results(tmp_path / "full")["runs"]


def test_checkpoint_survives_a_crash_between_renames(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, {"x": torch.zeros(1)}, {"global_step": 3})
    save_checkpoint(tmp_path, {"x": torch.ones(1)}, {"global_step": 5})
    root = tmp_path / "checkpoints"
    # State after a crash between the two renames: the old `last` moved aside, the new one complete
    # but still under its temporary name; plus a half-written directory without its marker.
    os.replace(root / "last", root / ".tmp-last-new")
    (root / ".old-last-a").mkdir()
    shutil.copytree(root / ".tmp-last-new", root / ".old-last-a" / "last")
    (root / ".old-last-a" / "last" / "COMPLETE").write_text("3")
    (root / ".tmp-last-partial").mkdir()
    (root / ".tmp-last-partial" / "meta.json").write_text('{"global_step": 9}')
    tensors, meta = load_checkpoint(tmp_path)
    assert meta["global_step"] == 5 and torch.equal(tensors["x"], torch.ones(1))
    assert load_checkpoint(tmp_path / "nothing-here") is None


# ---- events -------------------------------------------------------------------------------------
def test_event_stream(tmp_path: Path) -> None:
    col = EventCollector()
    spec = tiny_spec(train={"checkpoint_every": 10})
    result = run_job(spec, tmp_path, callbacks=[col])
    kinds = {e.type for e in col.events}
    assert {EventType.METRIC, EventType.PROGRESS, EventType.GRAM, EventType.CHECKPOINT,
            EventType.ARTIFACT, EventType.LOG} <= kinds
    steps = [e.step for e in col.events]
    assert steps == sorted(steps) and steps[-1] == result.step == 10 * 12
    pattern = re.compile(r"synthetic/(\w+)/seed(\d+)/(loss|preserved_pairs|preserved_fraction)$")
    series: dict[str, list[int]] = {}
    for e in col.of_type(EventType.METRIC):
        for name in e.data["values"]:
            m = pattern.match(name)
            assert m and m[1] in ALL_LOSSES and int(m[2]) in (0, 1)
            series.setdefault(name, []).append(e.step)
    assert len(series) == 10 * 3
    # Run r (loss-major order) logs its init at r*12 and every 3 steps through (r+1)*12.
    for r, (loss, seed) in enumerate(itertools.product(ALL_LOSSES, (0, 1))):
        assert series[f"synthetic/{loss}/seed{seed}/loss"] == [r * 12 + i for i in range(0, 13, 3)]
    ckpt_steps = [e.step for e in col.of_type(EventType.CHECKPOINT)]
    assert ckpt_steps == sorted(set(range(10, 121, 10)) | set(range(12, 121, 12)))
    grams = col.of_type(EventType.GRAM)
    assert {g.data["layer"] for g in grams} == {f"{loss}/seed{s}" for loss in ALL_LOSSES for s in (0, 1)}
    t = np.array(grams[0].data["teacher"])
    s = np.array(grams[0].data["student"])
    assert t.shape == s.shape == (8, 8)
    np.testing.assert_allclose(np.diag(t), 1.0, atol=1e-5)
    np.testing.assert_allclose(t, t.T, atol=1e-6)
    progress = col.of_type(EventType.PROGRESS)
    assert all(p.data["total_steps"] == 120 and p.data["step"] == p.step for p in progress)
    assert {a.data["name"] for a in col.of_type(EventType.ARTIFACT)} == {
        "results.json", "results.md", "preserved_pairs.png"}
    assert set(result.final_metrics) == {f"{loss}/{k}" for loss in ALL_LOSSES
                                         for k in ("final_loss", "preserved_pairs", "preserved_fraction")}


# ---- CLI ----------------------------------------------------------------------------------------
def cli_app() -> Any:
    import typer

    from geokd_core.cli import synthetic_cmd

    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # keeps `synthetic` a subcommand, as under `geokd`
        """geokd (test)."""

    synthetic_cmd.register(app)
    return app


def test_cli_help() -> None:
    from typer.testing import CliRunner

    res = CliRunner().invoke(cli_app(), ["synthetic", "--help"])
    assert res.exit_code == 0
    for flag in ("--n", "--d-teacher", "--d-student", "--eps", "--steps", "--seeds", "--losses", "--out"):
        assert flag in res.output


def test_cli_tiny_run_writes_outputs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    out = tmp_path / "syn"
    args = ["synthetic", "--n", "24", "--d-teacher", "8", "--d-student", "4", "--eps", "0.3", "--steps", "6",
            "--log-every", "2", "--seeds", "0,1", "--losses", "gram,cka", "--out", str(out)]
    res = CliRunner().invoke(cli_app(), args)
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {"results.json", "results.md", "preserved_pairs.png"}
    assert (out / "preserved_pairs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = read_results(out)
    assert data["config"]["n"] == 24 and set(data["summary"]) == {"gram", "cka"}
    assert "| gram |" in (out / "results.md").read_text() and "gram" in res.output
    bad = CliRunner().invoke(cli_app(), ["synthetic", "--losses", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown loss" in bad.output
