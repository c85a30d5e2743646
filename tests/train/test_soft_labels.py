"""Soft-label statistics of a teacher (hrkd eval --soft-labels)."""

from __future__ import annotations

import io
import math

import pytest
import torch
from rich.console import Console

from hrkd_cli.batches import load_splits
from hrkd_cli.data.store import load_prepared
from hrkd_cli.train.evaluation import evaluate_checkpoint
from hrkd_cli import pipeline
from hrkd_cli.runs import data_dir
from hrkd_cli.recipes.evaluate import soft_labels
from hrkd_cli.pipeline import ensure_prepared
from hrkd_cli.train.soft_labels import checkpoint_soft_labels, soft_label_entropy

quiet = lambda m: None  # noqa: E731


def test_entropy_by_hand():
    z = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    h = soft_label_entropy(z, 1.0)
    assert torch.allclose(h, torch.tensor([math.log(2.0), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))]))
    assert float(soft_label_entropy(z, 1e6)[1]) == pytest.approx(math.log(2.0), rel=1e-5)  # T -> inf: uniform


def test_teacher_soft_labels_match_eval_and_soften_with_temperature(tiny_preset, cpu_runtime):
    preset = tiny_preset()
    ensure_prepared(preset, quiet)
    data = load_prepared(data_dir(preset))
    teacher = pipeline.ensure_teacher(preset, cpu_runtime, data, quiet)
    dev = load_splits(data, "dev", list(data.domains))
    t1 = checkpoint_soft_labels(teacher, dev, cpu_runtime, 1.0)
    t4 = checkpoint_soft_labels(teacher, dev, cpu_runtime, 4.0)
    acc = evaluate_checkpoint(teacher, dev, cpu_runtime, data.hash)
    for d in data.domains:
        assert t1[d]["accuracy"] == pytest.approx(acc[d])
        assert 0.5 <= t1[d]["confidence"] <= 1.0 and 0.0 <= t1[d]["entropy"] <= 1.0
        assert t4[d]["entropy"] >= t1[d]["entropy"] and t4[d]["confidence"] <= t1[d]["confidence"]
        assert t4[d]["accuracy"] == t1[d]["accuracy"]  # T changes the soft labels, not the argmax
    printed = io.StringIO()  # a log file: 80 columns, no terminal; the table is wider, and prints whole
    soft_labels([teacher], "dev", 1.0, None, None, cpu_runtime, Console(file=printed, width=80), quiet)
    d = data.domains[0]
    cell = f"{100 * t1[d]['accuracy']:.1f} / {t1[d]['confidence']:.3f} / {t1[d]['entropy']:.3f}"
    assert cell in printed.getvalue() and "…" not in printed.getvalue()
