"""What the benches share: timing callables in turn, and a teacher to time against."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from hrkd_cli.model.checkpoint import save_checkpoint
from hrkd_cli.config import Preset
from hrkd_cli.model.classifier import DomainClassifier
from hrkd_cli.model.pretrained import load_pretrained_encoder
from hrkd_cli.recipes.teach import reusable_teacher
from hrkd_cli.runs import Say
from hrkd_cli.vocabulary import teacher_kind


def alternating_medians(fns: dict, repeats: int, device: torch.device | None = None) -> dict[str, float]:
    """Median seconds of each callable, after one warm-up call each, timed in turn so that
    load from other processes falls on all of them alike. On CUDA each call is waited for."""
    return {k: statistics.median(v) for k, v in alternating_times(fns, repeats, device).items()}


def alternating_times(fns: dict, repeats: int, device: torch.device | None = None,
                      balanced: bool = False) -> dict[str, list[float]]:
    """alternating_medians' timings, every repeat: entry i of each list comes from the same round.
    ``balanced`` reverses the order every other round, so that no callable always runs first."""
    def wait() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats):
        order = list(fns.items())
        for k, fn in (order[::-1] if balanced and i % 2 else order):
            wait()
            t0 = time.perf_counter()
            fn()
            wait()
            times[k].append(time.perf_counter() - t0)
    return times


def teacher_for_bench(preset: Preset, data, tmp: Path, say: Say) -> Path:
    """The run's trained teacher of the student's kind, or an untrained one of the same architecture in ``tmp``."""
    found = reusable_teacher(preset, teacher_kind(preset), data.hash)
    if found is not None:
        return found
    # Speed does not depend on the weights: an untrained teacher of the same architecture will do.
    say("no trained teacher in the run directory: timing an untrained one of the same architecture")
    model = DomainClassifier(load_pretrained_encoder(preset.teacher.model, pooler=preset.teacher.head == "pooler"), len(data.domains), len(data.label_names))
    return save_checkpoint(tmp / "teacher", model, {"role": "teacher", "kind": "bench", "domains": list(data.domains),
                                                    "label_names": data.label_names, "data_hash": data.hash})
