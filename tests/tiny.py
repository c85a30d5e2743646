"""Tiny presets and models for tests, imported as `from tiny import ...`."""

from __future__ import annotations

from pathlib import Path


def tiny_preset_dict(run_dir: Path, teacher_path: Path, /, **sections) -> dict:
    """A preset for tests: 3 synthetic domains of 32 training examples, 32 tokens, tiny models, fp32."""
    raw = {
        "name": "tiny",
        "run_dir": str(run_dir),
        "seed": 1,
        "data": {"source": "synthetic", "max_seq_length": 32, "split_seed": 7,
                 "synthetic": {"num_domains": 3, "train_per_domain": 32, "dev_per_domain": 16, "test_per_domain": 16}},
        "teacher": {"model": str(teacher_path), "epochs": 1, "lr": 1e-3, "batch_per_domain": 4, "log_every": 1},
        "student": {"init": "teacher-layers", "teacher_layers": [2, 4]},
        "distill": {"method": "hrkd", "epochs": 1, "lr": 1e-3, "batch_per_domain": 4, "log_every": 1},
        "runtime": {"precision": "fp32", "threads": 1},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw


def tiny_bert_config(**overrides):
    """The tests' tiny BERT shape (4 layers, width 32, 4 heads, the uncased vocabulary); keywords override it."""
    from transformers import BertConfig

    shape = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=128)
    return BertConfig(**{**shape, **overrides})


def tiny_classifier(seed: int = 0):
    """A 2-layer, 16-wide DomainClassifier with 2 heads of 3 labels, random weights from ``seed``."""
    import torch

    from hrkd_cli.model.classifier import DomainClassifier, encoder_from_config

    torch.manual_seed(seed)
    cfg = tiny_bert_config(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=32)
    return DomainClassifier(encoder_from_config(cfg), num_heads=2, num_labels=3)


def tiny_encoder(layers: int = 4, hidden: int = 32, heads: int = 4):
    """A BertModel of the tiny shape (vocabulary 100), weights from seed 0, in eval mode."""
    import torch

    from hrkd_cli.model.classifier import encoder_from_config

    torch.manual_seed(0)
    cfg = tiny_bert_config(vocab_size=100, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                           max_position_embeddings=64)
    enc = encoder_from_config(cfg)
    enc.eval()
    return enc
