"""Small GLUE-layout TSV folders, instruct JSONL and custom files, with the real files' quirks.

Everything is generated (deterministic per seed) and written to a directory the test owns:

- CoLA: no header, 4 columns (source, label, marker, sentence), ``*`` marker on unacceptable rows,
  and dev.tsv without a trailing newline.
- MRPC: a UTF-8 BOM before the ``Quality`` header.
- Bare, unbalanced ``"`` characters inside sentences (read with QUOTE_NONE or rows break).
- STS-B: 10 columns and scores in mixed formats (``5.000``, ``0``, ``1.5333``, ``2.11111111111111``).
- RTE/QNLI/MNLI: string labels; MNLI dev is ``dev_matched.tsv`` (+ ``dev_mismatched.tsv``).
- Instruct (MiniLLM format): ``prompt``/``output`` rows; ``list_outputs=True`` writes sinst-style lists.

Labels are learnable: a sentence holds a cue word for its class, so a tiny model can fit it.
:func:`glue_rows` returns the rows a folder holds, as the loader should read them (a reference).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

GLUE_FOLDERS = {
    "cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "qqp": "QQP", "stsb": "STS-B",
    "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI",
}
_LABELS = {
    "cola": ["unacceptable", "acceptable"], "sst2": ["negative", "positive"],
    "mrpc": ["not_equivalent", "equivalent"], "qqp": ["not_duplicate", "duplicate"],
    "mnli": ["entailment", "neutral", "contradiction"], "qnli": ["entailment", "not_entailment"],
    "rte": ["entailment", "not_entailment"], "wnli": ["not_entailment", "entailment"],
}
# Class cue words: a sentence of class k contains _CUES[k].
_CUES = ["great", "awful", "maybe"]
_NOUNS = ["film", "cat", "river", "plan", "song", "city", "book", "team"]
_STSB_FORMATS = ["5.000", "0", "1.5333", "2.11111111111111", "3.8", "4.750", "0.500", "2"]
_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)


def _sentence(rng: random.Random, cue: str, i: int) -> str:
    noun = rng.choice(_NOUNS)
    # Every third row carries a bare, unbalanced quote, like MRPC's `"the witness",` fragments.
    quote = ' he said "' if i % 3 == 0 else ""
    return f"the {noun} was {cue} , really{quote} {i}"


def glue_rows(task: str, split: str, n: int, seed: int = 0) -> list[tuple[str, str | None, int | float]]:
    """The ``(text_a, text_b, label)`` rows :func:`write_glue` writes for ``task``/``split``."""
    rng = random.Random(f"{task}-{split}-{seed}")
    rows: list[tuple[str, str | None, int | float]] = []
    for i in range(n):
        if task == "stsb":
            score = float(_STSB_FORMATS[i % len(_STSB_FORMATS)])
            cue = _CUES[0] if score >= 2.5 else _CUES[1]
            rows.append((_sentence(rng, cue, i), f"a {rng.choice(_NOUNS)} {cue} {i}", score))
            continue
        k = i % len(_LABELS[task])
        a = _sentence(rng, _CUES[k], i)
        b = None if task in ("cola", "sst2") else f"the {rng.choice(_NOUNS)} is {_CUES[k]} {i}"
        rows.append((a, b, k))
    return rows


def _stsb_raw(i: int) -> str:
    return _STSB_FORMATS[i % len(_STSB_FORMATS)]


def _lines(task: str, split: str, rows: list[tuple[str, str | None, int | float]]) -> list[str]:
    names = _LABELS.get(task, [])
    if task == "cola":
        return [f"gj04\t{y}\t{'' if y else '*'}\t{a}" for a, _, y in rows]
    if task == "sst2":
        return ["sentence\tlabel", *(f"{a} \t{y}" for a, _, y in rows)]
    if task == "mrpc":
        return ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String", *(f"{y}\t{100 + i}\t{200 + i}\t{a}\t{b}" for i, (a, b, y) in enumerate(rows))]
    if task == "qqp":
        return ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", *(f"{i}\t{2 * i}\t{2 * i + 1}\t{a}\t{b}\t{y}" for i, (a, b, y) in enumerate(rows))]
    if task == "stsb":
        head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
        return [head, *(f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t{a}\t{b}\t{_stsb_raw(i)}" for i, (a, b, _) in enumerate(rows))]
    if task == "mnli":
        extra = "\tlabel2\tlabel3\tlabel4\tlabel5" if split != "train" else ""
        head = f"index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1{extra}\tgold_label"
        votes = "\t" + "\t".join(["x"] * 4) if split != "train" else ""
        return [head, *(f"{i}\t{i}\t{i}n\tfiction\t( {a} )\t( {b} )\t(ROOT {a})\t(ROOT {b})\t{a}\t{b}\t{names[y]}{votes}\t{names[y]}" for i, (a, b, y) in enumerate(rows))]
    text_b = {"qnli": ("question", "sentence")}.get(task, ("sentence1", "sentence2"))
    lab = (lambda y: names[y]) if task in ("qnli", "rte") else str
    return [f"index\t{text_b[0]}\t{text_b[1]}\tlabel", *(f"{i}\t{a}\t{b}\t{lab(y)}" for i, (a, b, y) in enumerate(rows))]


def write_glue(
    root: str | Path,
    tasks: tuple[str, ...] = ("cola", "sst2", "mrpc", "stsb", "rte", "wnli", "qnli", "mnli", "qqp"),
    *,
    n_train: int = 32,
    n_dev: int = 16,
    seed: int = 0,
) -> Path:
    """Write ``root/<GLUE folder>/{train,dev}.tsv`` for each task; returns ``root``."""
    root = Path(root)
    for task in tasks:
        d = root / GLUE_FOLDERS[task]
        d.mkdir(parents=True, exist_ok=True)
        dev_files = ["dev_matched.tsv", "dev_mismatched.tsv"] if task == "mnli" else ["dev.tsv"]
        for split, fname, n in [("train", "train.tsv", n_train), *[(f.removesuffix(".tsv"), f, n_dev) for f in dev_files]]:
            text = "\n".join(_lines(task, split, glue_rows(task, split, n, seed)))
            # CoLA dev has no trailing newline on its last line (the real file's quirk).
            end = "" if (task == "cola" and split == "dev") else "\n"
            (d / fname).write_bytes((text + end).encode("utf-8"))
    return root


def instruct_rows(n: int, *, list_outputs: bool = False, seed: int = 0) -> list[dict]:
    """MiniLLM-format rows: instruction, input, output (a list when ``list_outputs``), prompt."""
    rng = random.Random(f"instruct-{seed}")
    rows = []
    for i in range(n):
        noun = rng.choice(_NOUNS)
        instruction = f"Describe the {noun} number {i} in one \"short\" sentence."
        answer = f"The {noun} number {i} is {rng.choice(_CUES)}."
        output: str | list[str] = [answer, f"It is a {noun}."] if list_outputs else answer
        rows.append({"instruction": instruction, "input": "", "output": output, "prompt": _PROMPT.format(instruction=instruction)})
    return rows


def write_instruct(path: str | Path, n: int = 20, *, list_outputs: bool = False, seed: int = 0) -> Path:
    """Write MiniLLM-format JSONL (one object per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in instruct_rows(n, list_outputs=list_outputs, seed=seed):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def custom_rows(n: int, *, labels: str = "strings", seed: int = 0) -> list[dict]:
    """Rows ``{"text", "pair", "label"}``; labels "strings" (pos/neg/mid), "ints" (0..2) or "floats"."""
    rng = random.Random(f"custom-{seed}")
    names = ["pos", "neg", "mid"]
    rows = []
    for i in range(n):
        k = i % 3
        label: str | int | float = {"strings": names[k], "ints": k, "floats": round(k * 1.25 + 0.1, 2)}[labels]
        rows.append({"text": _sentence(rng, _CUES[k], i), "pair": f"about {rng.choice(_NOUNS)} {i}", "label": label})
    return rows


def write_custom(path: str | Path, n: int = 24, *, labels: str = "strings", seed: int = 0) -> Path:
    """Write a custom file with columns text, pair, label; the format follows the suffix (.tsv/.csv/.jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = custom_rows(n, labels=labels, seed=seed)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "pair", "label"])
            w.writerows([r["text"], r["pair"], r["label"]] for r in rows)
    else:
        path.write_text("text\tpair\tlabel\n" + "".join(f"{r['text']}\t{r['pair']}\t{r['label']}\n" for r in rows), encoding="utf-8")
    return path
