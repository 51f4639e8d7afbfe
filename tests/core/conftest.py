"""Shared fixtures of the engine tests: tiny model directories and GLUE/instruct data on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.glue_fixtures import write_glue, write_instruct
from tests.utils.job_specs import distill_spec  # noqa: F401  (re-exported: some tests import it from here)
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
