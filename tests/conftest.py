"""Shared fixtures: a tiny randomly initialised BERT teacher saved like a hub model, and tiny presets.

Everything runs offline on the project's own synthetic data; the tokenizer is the
uncased BERT vocabulary shipped with the embedded MiniLM package.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tiny import tiny_bert_config, tiny_preset_dict

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on a hub that cannot be reached
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HRKD_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    """A 4-layer, 32-wide, 4-head BERT with random weights, saved as a local model directory."""
    import torch
    from transformers import AutoTokenizer, BertModel

    from hrkd_cli.model.pretrained import resolve_model_source

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(tiny_bert_config()).save_pretrained(path)
    AutoTokenizer.from_pretrained(resolve_model_source("embedded:minilm-l6")).save_pretrained(path)
    return path


@pytest.fixture
def tiny_preset(tmp_path, tiny_teacher_dir):
    """Factory: tiny_preset(distill={...}) -> a validated Preset writing under tmp_path/run."""
    from hrkd_cli.config import validate_preset

    def make(**sections):
        return validate_preset(tiny_preset_dict(tmp_path / "run", tiny_teacher_dir, **sections), "tiny")

    return make


@pytest.fixture
def cpu_runtime():
    from hrkd_cli.runtime import setup

    return setup("cpu", "fp32", 1)
