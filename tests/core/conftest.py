"""Shared fixtures of the engine tests: tiny model directories and GLUE/instruct data on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.utils.glue_fixtures import write_glue, write_instruct
from tests.utils.tiny_models import make_bert_dir, make_gpt2_dir


@pytest.fixture(scope="session")
def bert_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer, hidden-32 BERT classifier (2 labels) with the real MiniLM tokenizer."""
    return make_bert_dir(tmp_path_factory.mktemp("bert_teacher"), num_layers=4, hidden=32, heads=2)


@pytest.fixture(scope="session")
def gpt2_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 GPT-2 LM with a tiny byte-level BPE tokenizer."""
    return make_gpt2_dir(tmp_path_factory.mktemp("gpt2_teacher"), num_layers=2, hidden=32, heads=2)


@pytest.fixture(scope="session")
def glue_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GLUE-layout TSV folders (32 train / 16 dev rows) for CoLA, MRPC and STS-B."""
    return write_glue(tmp_path_factory.mktemp("glue"), ("cola", "mrpc", "stsb"), n_train=32, n_dev=16)


@pytest.fixture(scope="session")
def instruct_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_instruct(tmp_path_factory.mktemp("instruct") / "train.jsonl", n=16)


def distill_spec(teacher: Path, glue: Path, **overrides: Any) -> dict[str, Any]:
    """A small CoLA distillation spec (dict) for a 2-layer, hidden-16 student.

    ``overrides`` are merged into their section (``teacher``/``student`` are replaced whole).
    """
    spec: dict[str, Any] = {
        "name": "tiny-distill",
        "kind": "distill",
        "teacher": {"model": str(teacher)},
        "student": {"config": {"num_layers": 2, "hidden_size": 16, "num_heads": 2}},
        "data": {"source": "glue", "task": "cola", "path": str(glue), "max_seq_len": 16},
        "loss": {"feature": "procrustes", "alpha": 0.5, "gamma": 1.0, "temperature": 2.0},
        "train": {"max_steps": 6, "batch_size": 8, "lr": 1e-3, "log_every": 2, "seed": 3, "device": "cpu"},
    }
    for section, values in overrides.items():
        if section not in ("teacher", "student") and isinstance(values, dict) and isinstance(spec.get(section), dict):
            spec[section] = {**spec[section], **values}
        else:
            spec[section] = values
    return spec
