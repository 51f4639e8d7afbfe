"""Teacher loading and student construction through the real ``from_pretrained`` path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geokd_core.errors import ModelError
from geokd_core.models import build_models, init_from_teacher_layers, resolve_device, save_student
from geokd_core.spec import InitFromTeacher, ModelRef
from tests.utils.tiny_models import make_bert_dir, make_bpe_tokenizer, make_gpt2_dir, make_llama_gguf


def test_teacher_is_frozen_and_student_from_config_shares_the_family(bert_teacher: Path) -> None:
    m = build_models(ModelRef(model=str(bert_teacher)),
                     ModelRef(config={"num_layers": 2, "hidden_size": 16, "num_heads": 2}), "classification", 2)
    assert m.teacher is not None and not m.teacher.training
    assert all(not p.requires_grad for p in m.teacher.parameters())
    assert m.student.training and type(m.student) is type(m.teacher)
    cfg = m.student.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (2, 16, 2, 64)
    assert cfg.vocab_size == m.teacher.config.vocab_size and cfg.num_labels == 2
    out = m.student(**m.tokenizer(["a b c"], return_tensors="pt"), output_hidden_states=True)
    assert out.logits.shape == (1, 2) and len(out.hidden_states) == 3 and out.hidden_states[-1].shape[-1] == 16


def test_init_from_teacher_copies_embeddings_and_chosen_layers(bert_teacher: Path) -> None:
    m = build_models(ModelRef(model=str(bert_teacher)), ModelRef(init_from_teacher={"layers": [1, 3]}),
                     "classification", 2)
    t, s = m.teacher.state_dict(), m.student.state_dict()
    assert m.student.config.num_hidden_layers == 2
    assert torch.equal(s["bert.embeddings.word_embeddings.weight"], t["bert.embeddings.word_embeddings.weight"])
    for i, j in enumerate([1, 3]):
        key = "bert.encoder.layer.{}.attention.self.query.weight"
        assert torch.equal(s[key.format(i)], t[key.format(j)])
    assert torch.equal(s["classifier.weight"], t["classifier.weight"])
    # The copy is independent: training the student leaves the teacher alone.
    s["bert.encoder.layer.0.attention.self.query.weight"].add_(1.0)
    assert not torch.equal(m.student.state_dict()["bert.encoder.layer.0.attention.self.query.weight"],
                           t["bert.encoder.layer.1.attention.self.query.weight"])


def test_init_from_teacher_layer_out_of_range(bert_teacher: Path) -> None:
    m = build_models(ModelRef(model=str(bert_teacher)), ModelRef(init_from_teacher={"layers": [0]}), "classification", 2)
    with pytest.raises(ModelError, match=r"\[4\] out of range for a 4-layer teacher"):
        init_from_teacher_layers(m.teacher, InitFromTeacher(layers=[0, 4]))


def test_gpt2_student_from_config_and_layers(gpt2_teacher: Path) -> None:
    m = build_models(ModelRef(model=str(gpt2_teacher)),
                     ModelRef(config={"num_layers": 1, "hidden_size": 16, "num_heads": 2}), "causal_lm", 1)
    assert m.student.config.n_layer == 1 and m.student.config.n_embd == 16
    assert m.tokenizer.pad_token_id is not None
    m2 = build_models(ModelRef(model=str(gpt2_teacher)), ModelRef(init_from_teacher={"layers": [1]}), "causal_lm", 1)
    assert torch.equal(m2.student.transformer.h[0].mlp.c_fc.weight, m2.teacher.transformer.h[1].mlp.c_fc.weight)


def test_head_and_path_errors_are_model_errors(bert_teacher: Path, gpt2_teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="classification head has 2 labels, the data has 3"):
        build_models(ModelRef(model=str(bert_teacher)), ModelRef(init_from_teacher={"layers": [0]}), "classification", 3)
    with pytest.raises(ModelError, match="is a causal LM"):
        build_models(ModelRef(model=str(gpt2_teacher)), ModelRef(init_from_teacher={"layers": [0]}), "classification", 2)
    with pytest.raises(ModelError, match="is not a causal LM, but instruction data needs one"):
        build_models(ModelRef(model=str(bert_teacher)), ModelRef(init_from_teacher={"layers": [0]}), "causal_lm", 1)
    with pytest.raises(ModelError, match="cannot load a model config"):
        build_models(ModelRef(model=str(tmp_path / "nope")), ModelRef(init_from_teacher={"layers": [0]}),
                     "classification", 2)


def test_vocabulary_mismatch_is_rejected(bert_teacher: Path, gpt2_teacher: Path, tmp_path: Path) -> None:
    other = make_bert_dir(tmp_path / "other", num_layers=1, hidden=16)
    m = build_models(ModelRef(model=str(bert_teacher)), ModelRef(model=str(other)), "classification", 2)
    assert m.student.config.num_hidden_layers == 1
    with pytest.raises(ModelError, match="must share one tokenizer"):
        build_models(ModelRef(model=str(gpt2_teacher)), ModelRef(model=str(make_gpt2_dir(tmp_path / "g", vocab_size=300))),
                     "causal_lm", 1)


def test_save_student_round_trips(bert_teacher: Path, tmp_path: Path) -> None:
    m = build_models(ModelRef(model=str(bert_teacher)), ModelRef(init_from_teacher={"layers": [2]}), "classification", 2)
    out = save_student(m.student, m.tokenizer, tmp_path / "student")
    back = build_models(None, ModelRef(model=str(out)), "classification", 2)
    for k, v in m.student.state_dict().items():
        assert torch.equal(v, back.student.state_dict()[k]), k
    assert back.tokenizer("hello")["input_ids"] == m.tokenizer("hello")["input_ids"]


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA device"):
            resolve_device("cuda")


def test_half_precision_checkpoints_load_as_float32(bert_teacher: Path, tmp_path: Path) -> None:
    """transformers >= 5 keeps a checkpoint's stored dtype; a student trained with fp16 weights
    would drop every AdamW update below fp16 resolution, so both models come up in float32."""
    src = build_models(ModelRef(model=str(bert_teacher)), ModelRef(init_from_teacher={"layers": [0]}),
                       "classification", 2)
    half = tmp_path / "half"
    src.teacher.half().save_pretrained(half)
    src.tokenizer.save_pretrained(half)
    m = build_models(ModelRef(model=str(half)), ModelRef(model=str(half)), "classification", 2)
    assert m.teacher is not None
    assert {p.dtype for p in m.teacher.parameters()} == {torch.float32}
    assert {p.dtype for p in m.student.parameters()} == {torch.float32}
    # An update of 1e-5 on a weight of ~1 survives in float32 (it would round away in fp16).
    w = m.student.classifier.weight
    before = w.detach().clone()
    with torch.no_grad():
        w.add_(1e-5)
    assert not torch.equal(w, before)


@pytest.mark.parametrize("half", [False, True], ids=["f32", "f16"])
def test_gguf_teacher_loads_as_the_model_it_was_written_from(half: bool, tmp_path: Path) -> None:
    """A GGUF teacher (llama.cpp layout: its tensor names, permuted q/k rows, a byte-level BPE in the
    metadata) comes up as the float32 LlamaForCausalLM it was written from, with the same tokenizer."""
    pytest.importorskip("gguf", reason="GGUF teachers need the optional `gguf` package (geokd[gguf])")
    written = make_llama_gguf(tmp_path, half=half)
    teacher = ModelRef(model=str(tmp_path), gguf_file="tiny-llama.gguf")
    m = build_models(teacher, ModelRef(init_from_teacher={"layers": [1]}), "causal_lm", 1)
    assert m.teacher is not None and type(m.teacher).__name__ == "LlamaForCausalLM"
    assert {p.dtype for p in [*m.teacher.parameters(), *m.student.parameters()]} == {torch.float32}
    assert m.teacher.config.num_key_value_heads == 2 and m.student.config.num_hidden_layers == 1

    text = "### Instruction:\nName a colour of the sky.\n\n### Response:\nThe sky is blue."
    ids = m.tokenizer(text, return_tensors="pt")["input_ids"]
    reference = make_bpe_tokenizer(tmp_path / "reference", 320)
    assert ids[0].tolist() == reference(text)["input_ids"]
    with torch.no_grad():
        got, want = m.teacher(ids).logits, written(ids).logits
    # f32: bit for bit; f16: the weights' rounding only (≈ 1e-2 on logits of size ≈ 4, where q/k rows
    # left in llama.cpp's order are off by ≈ 4).
    torch.testing.assert_close(got, want, atol=0.0 if not half else 5e-2, rtol=0.0 if not half else 1e-2)
    # The student's only block is a copy of the teacher's block 1.
    x = torch.randn(1, 5, m.teacher.config.hidden_size)
    torch.testing.assert_close(m.student.model.layers[0].mlp(x), m.teacher.model.layers[1].mlp(x))
