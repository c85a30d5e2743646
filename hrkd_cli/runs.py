"""Run-directory layout and the reuse rules shared by the recipes."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Callable

import torch

from hrkd_cli.config import Preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import write_json_atomic

Say = Callable[[str], None]


def run_dir(preset: Preset) -> Path:
    return Path(preset.run_dir)


def data_dir(preset: Preset) -> Path:
    return run_dir(preset) / "data"


def teacher_dir(preset: Preset, kind: str | None = None) -> Path:
    kind = kind or preset.teacher.kind
    tag = kind + (f"-without-{preset.teacher.exclude_domain}" if preset.teacher.exclude_domain else "")
    return run_dir(preset) / "teacher" / tag


def environment() -> dict:
    import transformers  # lazy: ~0.7 s at start-up; `hrkd report` imports this module and needs none

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_run_record(path: Path, record: dict, runtime) -> None:
    """The JSON record every teach/distill run leaves next to its checkpoint. The environment names the precision
    the run resolved to: `runtime.precision = "auto"` is bf16 on one CPU and fp32 on another."""
    env = {**environment(), "device": runtime.device.type, "precision": runtime.precision}
    record = {"written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": env, **record}
    write_json_atomic(path, record)


def fit_record(state, total: int, meta: dict) -> dict:
    """What a recipe keeps of one trainer.fit: its state, its training time over the whole run (across
    --resume: ``state.elapsed``), the part of it done before the resume, steps and checkpoint meta."""
    return {"fit": state.to_json(), "wall_time_s": state.elapsed, "resumed_after_s": state.resumed_after,
            "steps": total, "meta": meta}


def resumed_time(records: dict) -> float:
    """Seconds of training that earlier invocations did before a --resume (each fit records its share), so
    that a resumed run's wall time is that of the whole run, not of its last piece."""
    return sum(float(r.get("resumed_after_s") or 0.0) for r in records.values() if isinstance(r, dict))


# ---------------------------------------------------------------- what the teacher recipes share

def teacher_hash(preset: Preset) -> str:
    """What a teacher depends on: the data and teacher sections, teacher.kind aside (the directory
    names the kind), so `hrkd teach --kind K` is reused by `hrkd distill` of a method whose teacher is K.
    The transfer settings of the data section are left out: teachers never see transfer examples."""
    teacher = preset.teacher.model_copy(update={"kind": "multi-domain"})
    return preset.model_copy(update={"teacher": teacher, "data": preset.data.without_transfer()}).section_hash("teacher", "data")


def check_seq_length(preset: Preset, model_cfg) -> None:
    limit = model_cfg.max_position_embeddings
    if preset.data.max_seq_length > limit:
        raise HrkdError(f"data.max_seq_length={preset.data.max_seq_length} exceeds the model's limit of {limit} positions")


def meta_data_dir(data) -> str:
    return str(Path(data.path).resolve())
