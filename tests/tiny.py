"""Tiny presets for tests (importable as `from tiny import tiny_preset_dict`)."""

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
