"""geokd_core.data: GLUE layout quirks, custom files, instruct JSONL, splits, errors, collators."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch

from geokd_core.data import IGNORE_INDEX, TaskInfo, fit_prompt_output, load_task_data, make_collator
from geokd_core.errors import DataError
from geokd_core.spec import DataSpec
from tests.utils.glue_fixtures import (
    custom_rows,
    glue_rows,
    instruct_rows,
    write_custom,
    write_glue,
    write_instruct,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_glue(tmp_path_factory.mktemp("glue"), n_train=30, n_dev=12)


def _expected(task: str, split: str, n: int) -> list[tuple]:
    return [(a, b, y) for a, b, y in glue_rows(task, split, n)]


def _got(rows: list[dict]) -> list[tuple]:
    return [(r["text_a"].rstrip(" "), r["text_b"], r["label"]) for r in rows]


# ---- GLUE layout ------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"])
def test_glue_local_reads_every_row_as_written(glue_dir: Path, task: str) -> None:
    data = load_task_data(DataSpec(task=task, path=str(glue_dir)))
    assert _got(data.train) == _expected(task, "train", 30)
    dev_split = "dev_matched" if task == "mnli" else "dev"
    assert _got(data.eval) == _expected(task, dev_split, 12)
    assert data.info.task == task
    assert [r["idx"] for r in data.train] == list(range(30))


def test_cola_has_no_header_and_dev_no_trailing_newline(glue_dir: Path) -> None:
    raw = (glue_dir / "CoLA" / "dev.tsv").read_bytes()
    assert not raw.endswith(b"\n") and not raw.startswith(b"sentence")
    data = load_task_data(DataSpec(task="cola", path=str(glue_dir)))
    assert len(data.eval) == 12  # the first row is data, the last unterminated line is read too
    assert data.info.label_names == ["unacceptable", "acceptable"]


def test_mrpc_bom_header_is_understood(glue_dir: Path) -> None:
    assert (glue_dir / "MRPC" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbfQuality")
    data = load_task_data(DataSpec(task="mrpc", path=str(glue_dir / "MRPC")))  # the task folder itself
    assert data.train[0]["text_b"] == glue_rows("mrpc", "train", 30)[0][1]


def test_bare_quotes_stay_inside_one_field(glue_dir: Path) -> None:
    data = load_task_data(DataSpec(task="rte", path=str(glue_dir)))
    quoted = [r for r in data.train if '"' in r["text_a"]]
    assert quoted and all(r["text_a"].endswith(f'he said " {r["idx"]}') for r in quoted)
    assert len(data.train) == 30  # csv's default quoting would have swallowed rows


def test_stsb_mixed_float_formats(glue_dir: Path) -> None:
    data = load_task_data(DataSpec(task="stsb", path=str(glue_dir)))
    assert data.info == TaskInfo("regression", 1, "stsb", [])
    assert [r["label"] for r in data.train[:4]] == [5.0, 0.0, 1.5333, 2.11111111111111]
    assert all(isinstance(r["label"], float) for r in data.train)


def test_rte_string_labels_follow_hub_ids(glue_dir: Path) -> None:
    data = load_task_data(DataSpec(task="rte", path=str(glue_dir)))
    assert data.info.label_names == ["entailment", "not_entailment"]
    text = (glue_dir / "RTE" / "train.tsv").read_text().splitlines()[1:]
    assert [data.info.label_names[r["label"]] for r in data.train] == [line.split("\t")[3] for line in text]


def test_mnli_mismatched_dev_becomes_an_eval_set(glue_dir: Path) -> None:
    data = load_task_data(DataSpec(task="mnli", path=str(glue_dir), max_eval_examples=5))
    assert data.info.num_labels == 3
    assert list(data.eval_sets) == ["dev_mismatched"] and len(data.eval_sets["dev_mismatched"]) == 5
    assert len(data.eval) == 5


def test_missing_train_tsv_gives_empty_train(tmp_path: Path) -> None:
    write_glue(tmp_path, ("qnli",))
    (tmp_path / "QNLI" / "train.tsv").unlink()
    data = load_task_data(DataSpec(task="qnli", path=str(tmp_path)))
    assert data.train == [] and len(data.eval) == 16


def test_glue_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_task_data(DataSpec(task="rte", path=str(tmp_path / "nope")))
    with pytest.raises(DataError, match=r"RTE/train\.tsv"):
        load_task_data(DataSpec(task="rte", path=str(tmp_path)))
    write_glue(tmp_path, ("rte", "sst2"))
    dev = tmp_path / "RTE" / "dev.tsv"
    dev.write_text(dev.read_text().replace("not_entailment", "contradiction", 1))
    with pytest.raises(DataError, match=r"dev\.tsv:\d+: unknown label 'contradiction'"):
        load_task_data(DataSpec(task="rte", path=str(tmp_path)))
    train = tmp_path / "SST-2" / "train.tsv"
    lines = train.read_text().splitlines()
    train.write_text("\n".join([*lines[:3], "a sentence without a label", *lines[3:]]) + "\n")
    with pytest.raises(DataError, match=r"train\.tsv:4: expected at least 2"):
        load_task_data(DataSpec(task="sst2", path=str(tmp_path)))


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    write_glue(tmp_path, ("sst2",))
    train = tmp_path / "SST-2" / "train.tsv"
    train.write_bytes(train.read_bytes().replace(b"river", b"riv\xffr", 1))
    line = next(i for i, t in enumerate(train.read_bytes().split(b"\n"), 1) if b"\xff" in t)
    with pytest.raises(DataError, match=rf"train\.tsv:{line}: not valid UTF-8"):
        load_task_data(DataSpec(task="sst2", path=str(tmp_path)))


# ---- hub --------------------------------------------------------------------------------------
def test_hub_without_datasets_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets → ImportError
    with pytest.raises(DataError, match="pip install datasets.*data.path"):
        load_task_data(DataSpec(task="sst2"))


def test_hub_rows_are_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    def load_dataset(name: str, task: str) -> dict:
        calls.append((name, task))
        row = {"premise": "p", "hypothesis": "h", "label": 2, "idx": 0}
        return {"train": [row] * 6, "validation_matched": [row] * 3, "validation_mismatched": [row] * 2}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    data = load_task_data(DataSpec(task="mnli"))
    assert calls == [("glue", "mnli")]
    assert data.train[0] == {"idx": 0, "text_a": "p", "text_b": "h", "label": 2}
    assert (len(data.train), len(data.eval), len(data.eval_sets["dev_mismatched"])) == (6, 3, 2)


def test_hub_failure_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(name: str, task: str) -> dict:
        raise ConnectionError("offline")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(DataError, match="could not load GLUE 'cola' from the hub: offline"):
        load_task_data(DataSpec(task="cola"))


# ---- splits -----------------------------------------------------------------------------------
def test_subsets_are_seeded_and_holdout_never_touches_dev(glue_dir: Path) -> None:
    spec = DataSpec(task="sst2", path=str(glue_dir), max_train_examples=10, holdout_examples=5, max_eval_examples=7)
    a, b, c = load_task_data(spec, seed=1), load_task_data(spec, seed=1), load_task_data(spec, seed=2)
    assert a.train == b.train and a.holdout == b.holdout and a.train != c.train
    assert (len(a.train), len(a.holdout), len(a.eval)) == (10, 5, 7)
    texts = lambda rows: {r["text_a"] for r in rows}  # noqa: E731
    assert not texts(a.train) & texts(a.holdout)
    dev_all = texts(load_task_data(DataSpec(task="sst2", path=str(glue_dir))).eval)
    assert texts(a.eval) <= dev_all and not texts(a.holdout) & dev_all
    # The holdout does not depend on how many training rows are kept.
    d = load_task_data(spec.model_copy(update={"max_train_examples": 3}), seed=1)
    assert d.holdout == a.holdout and texts(d.train) <= texts(a.train)
    assert [r["idx"] for r in a.holdout] == list(range(5))


def test_holdout_larger_than_train_is_refused(glue_dir: Path) -> None:
    with pytest.raises(DataError, match="cannot give 0 eval \\+ 30 holdout"):
        load_task_data(DataSpec(task="cola", path=str(glue_dir), holdout_examples=30))


# ---- custom files -----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_custom_file_string_labels_sorted(tmp_path: Path, suffix: str) -> None:
    path = write_custom(tmp_path / f"train{suffix}", n=24)
    ev = write_custom(tmp_path / f"dev{suffix}", n=9, seed=1)
    spec = DataSpec(source="file", path=str(path), eval_path=str(ev), text_columns=["text", "pair"], label_column="label")
    data = load_task_data(spec)
    assert data.info == TaskInfo("classification", 3, None, ["mid", "neg", "pos"])
    want = [(r["text"], r["pair"], ["mid", "neg", "pos"].index(r["label"])) for r in custom_rows(24)]
    assert [(r["text_a"], r["text_b"], r["label"]) for r in data.train] == want
    assert len(data.eval) == 9


def test_custom_int_and_float_labels(tmp_path: Path) -> None:
    ints = write_custom(tmp_path / "i.csv", labels="ints")
    floats = write_custom(tmp_path / "f.jsonl", labels="floats")
    d = load_task_data(DataSpec(source="file", path=str(ints), text_columns=["text"], label_column="label", num_labels=4))
    assert d.info == TaskInfo("classification", 4, None, ["0", "1", "2", "3"])
    assert d.train[0]["text_b"] is None
    r = load_task_data(DataSpec(source="file", path=str(floats), text_columns=["text"], label_column="label"))
    assert r.info.task_type == "regression" and {x["label"] for x in r.train} <= {0.1, 1.35, 2.6}
    # Without eval_path, eval is a held part of train (10 % by default, at least 1).
    assert len(r.eval) == 2 and len(r.train) == 22


def test_custom_file_errors(tmp_path: Path) -> None:
    train = write_custom(tmp_path / "t.jsonl")
    base = {"source": "file", "path": str(train), "text_columns": ["text"], "label_column": "label"}
    with pytest.raises(DataError, match=r"t\.jsonl:1: missing column 'sentence'"):
        load_task_data(DataSpec(**{**base, "text_columns": ["sentence"]}))
    bad_eval = tmp_path / "e.jsonl"
    bad_eval.write_text(json.dumps({"text": "x", "label": "pos"}) + "\n" + json.dumps({"text": "y", "label": "huh"}) + "\n")
    with pytest.raises(DataError, match=r"e\.jsonl:2: unknown label 'huh'"):
        load_task_data(DataSpec(**base, eval_path=str(bad_eval)))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        load_task_data(DataSpec(**{**base, "path": str(tmp_path / "empty.csv")}))
    (tmp_path / "broken.jsonl").write_text('{"text": "a", "label": 1}\n{"text": \n')
    with pytest.raises(DataError, match=r"broken\.jsonl:2: invalid JSON"):
        load_task_data(DataSpec(**{**base, "path": str(tmp_path / "broken.jsonl")}))
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_task_data(DataSpec(**{**base, "path": str(tmp_path / "nope.csv")}))
    with pytest.raises(DataError, match="is a directory"):
        load_task_data(DataSpec(**{**base, "path": str(tmp_path)}))
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="unsupported file type '.parquet'"):
        load_task_data(DataSpec(**{**base, "path": str(tmp_path / "x.parquet")}))
    with pytest.raises(DataError, match=r"outside 0\.\.1"):
        load_task_data(DataSpec(**{**base, "path": str(write_custom(tmp_path / "i.tsv", labels="ints")), "num_labels": 2}))


# ---- instruct ---------------------------------------------------------------------------------
def test_instruct_train_held_dev_and_sinst_list_outputs(tmp_path: Path) -> None:
    train = write_instruct(tmp_path / "train.jsonl", n=20)
    sinst = write_instruct(tmp_path / "sinst.jsonl", n=6, list_outputs=True)
    spec = DataSpec(source="instruct", path=str(train), eval_sets={"sinst": str(sinst)}, max_eval_examples=4)
    data = load_task_data(spec)
    assert data.info == TaskInfo("causal_lm", 1, None, [])
    assert (len(data.train), len(data.eval), len(data.eval_sets["sinst"])) == (16, 4, 4)
    rows = {r["prompt"]: r["output"] for r in instruct_rows(20)}
    assert all(rows[r["prompt"]] == r["output"] for r in data.train + data.eval)
    assert not {r["prompt"] for r in data.train} & {r["prompt"] for r in data.eval}
    assert all(isinstance(r["output"], list) and len(r["output"]) == 2 for r in data.eval_sets["sinst"])


def test_instruct_prompt_rendered_from_instruction_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "hi"}) + "\n" * 2 + json.dumps({"output": "x"}) + "\n")
    with pytest.raises(DataError, match=r"a\.jsonl:3: missing string field 'prompt'"):
        load_task_data(DataSpec(source="instruct", path=str(p)))
    p.write_text("".join(json.dumps({"instruction": f"Say {i}.", "input": "", "output": "hi"}) + "\n" for i in range(3)))
    data = load_task_data(DataSpec(source="instruct", path=str(p)))
    assert data.train[0]["prompt"].endswith("### Instruction:\nSay 0.\n\n### Response:\n")
    p.write_text(json.dumps({"prompt": "q", "output": []}) + "\n")
    with pytest.raises(DataError, match="non-empty list of strings"):
        load_task_data(DataSpec(source="instruct", path=str(p)))


# ---- collators --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert_tok():  # noqa: ANN201
    from transformers import AutoTokenizer

    from tests.utils.tiny_models import minilm_dir

    return AutoTokenizer.from_pretrained(minilm_dir())


def test_classification_collator_pairs_and_truncation(bert_tok, glue_dir: Path) -> None:  # noqa: ANN001
    data = load_task_data(DataSpec(task="mrpc", path=str(glue_dir)))
    batch = make_collator(bert_tok, data.info, max_seq_len=12)(data.train[:3])
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "idx"}
    assert batch["input_ids"].shape == (3, 12) and batch["labels"].dtype == torch.long
    assert batch["labels"].tolist() == [r["label"] for r in data.train[:3]] and batch["idx"].tolist() == [0, 1, 2]
    sep = bert_tok.sep_token_id
    assert ((batch["input_ids"] == sep).sum(dim=1) == 2).all()  # a pair: two [SEP]
    assert batch["token_type_ids"].sum() > 0  # the second segment is marked
    single = load_task_data(DataSpec(task="stsb", path=str(glue_dir)))
    b = make_collator(bert_tok, TaskInfo("regression", 1, None, []), 64)(single.train[:2])
    assert b["labels"].dtype == torch.float32 and b["labels"].tolist() == [5.0, 0.0]
    n_tokens = len(bert_tok(single.train[0]["text_a"], single.train[0]["text_b"])["input_ids"])
    assert b["attention_mask"][0].sum().item() == n_tokens


def test_fit_prompt_output_keeps_prompt_end() -> None:
    assert fit_prompt_output([1, 2, 3], [7, 8], 8) == ([1, 2, 3], [7, 8])
    assert fit_prompt_output(list(range(10)), [70, 80], 8) == ([4, 5, 6, 7, 8, 9], [70, 80])
    # A long output still leaves half the budget to the prompt's end.
    assert fit_prompt_output(list(range(10)), list(range(100, 120)), 8) == ([6, 7, 8, 9], [100, 101, 102, 103])
    assert fit_prompt_output([1, 2], list(range(100, 120)), 8) == ([1, 2], list(range(100, 106)))


def test_causal_collator_masks_prompt_and_padding(bert_tok) -> None:  # noqa: ANN001
    info = TaskInfo("causal_lm", 1, None, [])
    ex = [{"idx": 0, "prompt": "say yes", "output": "yes"}, {"idx": 1, "prompt": "a much longer prompt here", "output": ["no", "nope"]}]
    batch = make_collator(bert_tok, info, max_seq_len=64)(ex)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == mask.shape
    for i, e in enumerate(ex):
        p = bert_tok(e["prompt"])["input_ids"]
        o = bert_tok(e["output"] if isinstance(e["output"], str) else e["output"][0], add_special_tokens=False)["input_ids"]
        o = o + [bert_tok.eos_token_id] if bert_tok.eos_token_id is not None else o
        n = len(p) + len(o)
        assert ids[i, :n].tolist() == p + o and mask[i].sum().item() == n
        assert labels[i, : len(p)].eq(IGNORE_INDEX).all() and labels[i, len(p) : n].tolist() == o
        assert labels[i, n:].eq(IGNORE_INDEX).all()
    short = make_collator(bert_tok, info, max_seq_len=6)(ex)
    assert short["input_ids"].shape[1] == 6


# ---- the real shared data ---------------------------------------------------------------------
@pytest.mark.skipif(not (SHARED_DATA / "glue").is_dir(), reason=f"{SHARED_DATA}/glue is absent (the offline GLUE copy)")
def test_real_shared_glue_and_instruct() -> None:
    counts = {"cola": (8551, 1043), "sst2": (67349, 872), "mrpc": (3668, 408), "rte": (2490, 277),
              "stsb": (5749, 1500), "wnli": (635, 71), "qnli": (0, 5463)}
    for task, (n_train, n_dev) in counts.items():
        d = load_task_data(DataSpec(task=task, path=str(SHARED_DATA / "glue")))
        assert (len(d.train), len(d.eval)) == (n_train, n_dev), task
    cola = load_task_data(DataSpec(task="cola", path=str(SHARED_DATA / "glue")))
    assert sum(r["label"] for r in cola.train) == 6023 and sum(r["label"] for r in cola.eval) == 721
    rte = load_task_data(DataSpec(task="rte", path=str(SHARED_DATA / "glue")))
    assert sum(r["label"] == 0 for r in rte.eval) == 146  # entailment
    mrpc = load_task_data(DataSpec(task="mrpc", path=str(SHARED_DATA / "glue")))
    assert sum(r["label"] for r in mrpc.train) == 2474 and '"the witness"' in mrpc.train[0]["text_a"]
    sinst = load_task_data(DataSpec(source="instruct", path=str(SHARED_DATA / "instruct/sinst/11_/valid.jsonl")))
    assert len(sinst.train) + len(sinst.eval) == 1694 and all(isinstance(r["output"], list) for r in sinst.eval)


def test_qqp_skips_truncated_rows_like_glue_processors(tmp_path: Path) -> None:
    write_glue(tmp_path, ("qqp",), n_train=10)
    train = tmp_path / "QQP" / "train.tsv"
    train.write_text(train.read_text() + "99\t1\t2\ta question cut short\n")
    data = load_task_data(DataSpec(task="qqp", path=str(tmp_path)))
    assert len(data.train) == 10


def test_custom_tsv_field_count_is_checked(tmp_path: Path) -> None:
    path = write_custom(tmp_path / "t.tsv", n=6)
    path.write_text(path.read_text() + 'a "quoted\ttab\tand\textra\n')
    spec = DataSpec(source="file", path=str(path), text_columns=["text"], label_column="label")
    with pytest.raises(DataError, match=r"t\.tsv:8: expected 3 tab-separated fields, found 4"):
        load_task_data(spec)
