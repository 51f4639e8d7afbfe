"""geokd_core.evaluate: metrics against hand-computed values; batched prediction/generation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from geokd_core.data import TaskInfo, make_collator
from geokd_core.evaluate import (
    evaluate_classifier,
    evaluate_generation,
    generate_responses,
    glue_metrics,
    predict,
    primary_metric,
    rouge_l,
)


# ---- GLUE metrics -----------------------------------------------------------------------------
def test_cola_mcc_by_hand() -> None:
    # TP=2, FP=1, TN=1, FN=1 → (2·1 − 1·1) / sqrt(3·3·2·2) = 1/6
    m = glue_metrics("cola", [1, 1, 0, 0, 1], [1, 0, 0, 1, 1], "classification")
    assert m == {"mcc": pytest.approx(1 / 6)}


def test_mrpc_qqp_accuracy_and_f1_by_hand() -> None:
    # precision 2/3, recall 1 → F1 = 0.8; 3 of 4 right.
    for task in ("mrpc", "qqp"):
        assert glue_metrics(task, [1, 0, 1, 1], [1, 0, 0, 1], "classification") == {"accuracy": 0.75, "f1": pytest.approx(0.8)}
    assert glue_metrics("mrpc", [0, 0], [1, 0], "classification")["f1"] == 0.0  # no positive prediction


def test_stsb_pearson_spearman_by_hand() -> None:
    m = glue_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 3.0, 2.0], "regression")
    assert m == {"pearson": pytest.approx(0.5), "spearman": pytest.approx(0.5)}
    # y = x²: monotone (spearman 1), pearson = 25 / sqrt(5·129)
    m = glue_metrics("stsb", [1, 2, 3, 4], [1, 4, 9, 16], "regression")
    assert m["spearman"] == pytest.approx(1.0) and m["pearson"] == pytest.approx(25 / math.sqrt(645))
    assert glue_metrics(None, [2.0, 2.0, 2.0], [1.0, 2.0, 3.0], "regression") == {"pearson": 0.0, "spearman": 0.0}


def test_accuracy_tasks_and_errors() -> None:
    for task in ("sst2", "mnli", "qnli", "rte", "wnli", None):
        assert glue_metrics(task, [0, 2, 1, 1], [0, 2, 2, 1], "classification") == {"accuracy": 0.75}
    with pytest.raises(ValueError, match="shape"):
        glue_metrics("sst2", [0, 1], [0], "classification")
    with pytest.raises(ValueError, match="no predictions"):
        glue_metrics("sst2", [], [], "classification")


def test_primary_metric() -> None:
    assert [primary_metric(t, "classification") for t in ("cola", "mrpc", "qqp", "sst2", None)] == [
        "mcc", "f1", "f1", "accuracy", "accuracy"]
    assert primary_metric("stsb", "regression") == primary_metric(None, "regression") == "spearman"
    assert primary_metric(None, "causal_lm") == "rougeL"


def test_rouge_l_by_hand() -> None:
    # LCS(the cat sat on the mat, the cat is on the mat) = 5 tokens; P = R = 5/6.
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(500 / 6)
    assert rouge_l("the cat sat on the mat", ["a dog", "the cat sat on the mat"]) == pytest.approx(100.0)
    assert rouge_l("Cats RUNNING", "cat run") == pytest.approx(100.0)  # lower-cased, Porter-stemmed like MiniLLM
    # P = 1/1, R = 1/4 → F = 2·0.25/1.25 = 0.4
    assert rouge_l("blue", "the sky is blue") == pytest.approx(40.0)
    assert rouge_l("", "anything") == 0.0


# ---- model-level ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tests.utils.tiny_models import make_bert_dir

    d = make_bert_dir(tmp_path_factory.mktemp("bert"), num_labels=3, seed=3)
    return AutoModelForSequenceClassification.from_pretrained(d), AutoTokenizer.from_pretrained(d)


def _examples(n: int) -> list[dict]:
    words = ["great film", "awful plan , he said \"", "maybe a long long song about the city", "the cat"]
    return [{"idx": i, "text_a": f"{words[i % 4]} {i}", "text_b": f"pair {i}" if i % 2 else "x", "label": i % 3} for i in range(n)]


def test_predict_batched_equals_one_by_one(bert) -> None:  # noqa: ANN001
    model, tok = bert
    model.train()  # predict must switch to eval (no dropout) and restore the mode
    ex = _examples(11)
    info = TaskInfo("classification", 3, None, ["a", "b", "c"])
    preds = predict(model, make_collator(tok, info, 32), ex, batch_size=4, device="cpu")
    assert model.training
    model.eval()
    with torch.no_grad():
        ref = [int(model(**tok(e["text_a"], e["text_b"], return_tensors="pt")).logits.argmax()) for e in ex]
    assert preds.tolist() == ref and preds.dtype == np.int64
    m = evaluate_classifier(model, make_collator(tok, info, 32), ex, info, batch_size=5)
    assert m == {"accuracy": pytest.approx(np.mean(np.array(ref) == np.array([e["label"] for e in ex])))}


def test_predict_regression_squeezes(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tests.utils.tiny_models import make_bert_dir

    d = make_bert_dir(tmp_path / "reg", num_labels=1)
    model, tok = AutoModelForSequenceClassification.from_pretrained(d).eval(), AutoTokenizer.from_pretrained(d)
    ex = [{**e, "label": float(e["label"])} for e in _examples(5)]
    info = TaskInfo("regression", 1, "stsb", [])
    preds = predict(model, make_collator(tok, info, 32), ex, batch_size=2, device="cpu")
    with torch.no_grad():
        ref = [float(model(**tok(e["text_a"], e["text_b"], return_tensors="pt")).logits[0, 0]) for e in ex]
    assert preds.shape == (5,) and np.allclose(preds, ref, atol=1e-5)
    m = evaluate_classifier(model, make_collator(tok, info, 32), ex, info)
    assert set(m) == {"pearson", "spearman"}


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.utils.tiny_models import make_gpt2_dir

    d = make_gpt2_dir(tmp_path_factory.mktemp("gpt2"), seed=1)
    return AutoModelForCausalLM.from_pretrained(d).eval(), AutoTokenizer.from_pretrained(d)


def test_generation_left_padding_matches_unpadded(gpt2) -> None:  # noqa: ANN001
    model, tok = gpt2
    prompts = ["### Instruction:\nAdd two and three.\n\n### Response:\n", "the sky", "a response that completes the request is"]
    got = generate_responses(model, tok, prompts, max_new_tokens=6, batch_size=3)
    ref = []
    for p in prompts:
        ids = tok(p, return_tensors="pt")["input_ids"]
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=tok.eos_token_id)
        ref.append(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    assert got == ref


def test_evaluate_generation_scores_rouge(gpt2) -> None:  # noqa: ANN001
    model, tok = gpt2
    ex = [{"idx": 0, "prompt": "the sky", "output": "x"}, {"idx": 1, "prompt": "two plus", "output": ["y", "z"]}]
    preds = generate_responses(model, tok, [e["prompt"] for e in ex], max_new_tokens=5)
    m = evaluate_generation(model, tok, ex, max_new_tokens=5, batch_size=1)
    assert m["n"] == 2.0
    assert m["rougeL"] == pytest.approx(np.mean([rouge_l(p, e["output"]) for p, e in zip(preds, ex, strict=True)]))
    # A prompt longer than max_seq_len keeps its end and still generates.
    long = [{"idx": 0, "prompt": "the quick brown fox " * 40, "output": "dog"}]
    assert evaluate_generation(model, tok, long, max_new_tokens=4, max_seq_len=32)["n"] == 1.0
