"""GLUE tasks from a local folder in the original GLUE TSV layout, or from the hub.

Label ids follow the hub's ``glue`` dataset (e.g. RTE 0 = entailment, WNLI 1 = entailment), so a
model fine-tuned on either source predicts the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geokd_core.data.files import read_tsv_rows
from geokd_core.data.types import Example, TaskInfo
from geokd_core.errors import DataError


@dataclass(frozen=True)
class GlueTask:
    """Where a task's columns are: header names, or indices for CoLA which has no header."""

    folder: str
    text_a: str | int
    text_b: str | int | None
    label: str | int
    label_names: tuple[str, ...]  # empty = regression
    hub_text: tuple[str, str | None]
    dev_file: str = "dev.tsv"
    has_header: bool = True
    skip_short_rows: bool = False  # QQP's train.tsv has a few truncated rows; GLUE's processors skip them
    extra_dev: tuple[tuple[str, str], ...] = ()  # (eval set name, file)

    @property
    def regression(self) -> bool:
        return not self.label_names


GLUE: dict[str, GlueTask] = {
    # CoLA: no header; columns source, label, original marker, sentence.
    "cola": GlueTask("CoLA", 3, None, 1, ("unacceptable", "acceptable"), ("sentence", None), has_header=False),
    "sst2": GlueTask("SST-2", "sentence", None, "label", ("negative", "positive"), ("sentence", None)),
    "mrpc": GlueTask(
        "MRPC", "#1 String", "#2 String", "Quality", ("not_equivalent", "equivalent"), ("sentence1", "sentence2")
    ),
    "qqp": GlueTask(
        "QQP", "question1", "question2", "is_duplicate", ("not_duplicate", "duplicate"),
        ("question1", "question2"), skip_short_rows=True,
    ),
    "stsb": GlueTask("STS-B", "sentence1", "sentence2", "score", (), ("sentence1", "sentence2")),
    "mnli": GlueTask(
        "MNLI", "sentence1", "sentence2", "gold_label", ("entailment", "neutral", "contradiction"),
        ("premise", "hypothesis"), dev_file="dev_matched.tsv", extra_dev=(("dev_mismatched", "dev_mismatched.tsv"),),
    ),
    "qnli": GlueTask("QNLI", "question", "sentence", "label", ("entailment", "not_entailment"), ("question", "sentence")),
    "rte": GlueTask("RTE", "sentence1", "sentence2", "label", ("entailment", "not_entailment"), ("sentence1", "sentence2")),
    "wnli": GlueTask("WNLI", "sentence1", "sentence2", "label", ("not_entailment", "entailment"), ("sentence1", "sentence2")),
}


def glue_info(task: str) -> TaskInfo:
    t = GLUE[task]
    if t.regression:
        return TaskInfo("regression", 1, task, [])
    return TaskInfo("classification", len(t.label_names), task, list(t.label_names))


def task_dir(root: str | Path, task: str) -> Path:
    """The folder holding ``task``'s TSVs: ``root/<GLUE folder>`` or ``root`` itself."""
    t = GLUE[task]
    root = Path(root)
    for cand in (root / t.folder, root / task, root / task.upper(), root):
        if (cand / "train.tsv").is_file() or (cand / t.dev_file).is_file():
            return cand
    if not root.exists():
        raise DataError(f"{root}: GLUE folder not found")
    raise DataError(
        f"{root}: no {t.folder}/train.tsv or {t.folder}/{t.dev_file} here (expected the GLUE layout "
        f"<root>/{t.folder}/train.tsv, or the task folder itself)"
    )


def _column_index(path: Path, columns: list[str] | None, col: str | int) -> int:
    if isinstance(col, int):
        return col
    assert columns is not None
    if col not in columns:
        raise DataError(f"{path}:1: missing column {col!r} in the header (found {columns})")
    return columns.index(col)


def _label(t: GlueTask, where: str, raw: str) -> int | float:
    raw = raw.strip()
    if t.regression:
        try:
            return float(raw)
        except ValueError:
            raise DataError(f"{where}: score {raw!r} is not a number") from None
    if raw in t.label_names:
        return t.label_names.index(raw)
    if raw.isdigit() and int(raw) < len(t.label_names):
        return int(raw)
    raise DataError(f"{where}: unknown label {raw!r} (known: {list(t.label_names)} or 0..{len(t.label_names) - 1})")


def read_glue_tsv(path: str | Path, task: str) -> list[Example]:
    """Examples (without ``idx``) of one GLUE TSV file in the original layout."""
    t = GLUE[task]
    path = Path(path)
    columns, rows = read_tsv_rows(path, header=t.has_header)
    ia = _column_index(path, columns, t.text_a)
    ib = None if t.text_b is None else _column_index(path, columns, t.text_b)
    il = _column_index(path, columns, t.label)
    need = max(i for i in (ia, ib, il) if i is not None) + 1
    out: list[Example] = []
    for n, fields in rows:
        if len(fields) < need:
            if t.skip_short_rows:
                continue
            raise DataError(f"{path}:{n}: expected at least {need} tab-separated fields, found {len(fields)}")
        out.append({
            "text_a": fields[ia],
            "text_b": None if ib is None else fields[ib],
            "label": _label(t, f"{path}:{n}", fields[il]),
        })
    return out


def load_glue_local(root: str | Path, task: str) -> tuple[list[Example], list[Example], dict[str, list[Example]]]:
    """``(train, dev, extra eval sets)`` from a GLUE-layout folder. A missing train.tsv gives [].

    QNLI's dev set can be evaluated without its (large) train.tsv, so only a missing dev is fatal.
    """
    t = GLUE[task]
    d = task_dir(root, task)
    if not (d / t.dev_file).is_file():
        raise DataError(f"{d / t.dev_file}: file not found (GLUE {task} needs its dev split)")
    train = read_glue_tsv(d / "train.tsv", task) if (d / "train.tsv").is_file() else []
    dev = read_glue_tsv(d / t.dev_file, task)
    extra = {name: read_glue_tsv(d / f, task) for name, f in t.extra_dev if (d / f).is_file()}
    return train, dev, extra


def _hub_rows(split: Any, t: GlueTask) -> list[Example]:
    a, b = t.hub_text
    return [
        {"text_a": r[a], "text_b": None if b is None else r[b], "label": float(r["label"]) if t.regression else int(r["label"])}
        for r in split
    ]


def load_glue_hub(task: str) -> tuple[list[Example], list[Example], dict[str, list[Example]]]:
    """``(train, dev, extra)`` via ``datasets.load_dataset("glue", task)`` (imported lazily)."""
    try:
        import datasets  # noqa: PLC0415 - optional dependency, only for hub GLUE
    except ImportError:
        raise DataError(
            f"GLUE task {task!r} without `data.path` is loaded from the Hugging Face hub, which needs the "
            "`datasets` package: `pip install datasets`, or set `data.path` to a local GLUE folder "
            "(<root>/<TASK>/train.tsv, dev.tsv)"
        ) from None
    t = GLUE[task]
    try:
        ds = datasets.load_dataset("glue", task)
    except Exception as exc:  # network, cache, or hub errors: all mean "cannot get the data"
        raise DataError(f"could not load GLUE {task!r} from the hub: {exc}") from None
    dev_split = "validation_matched" if task == "mnli" else "validation"
    extra = {"dev_mismatched": _hub_rows(ds["validation_mismatched"], t)} if task == "mnli" else {}
    return _hub_rows(ds["train"], t), _hub_rows(ds[dev_split], t), extra
