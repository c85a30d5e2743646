"""Runs over several seeds. A seed whose run already finished with the same preset is reused,
so an interrupted sweep picks up where it stopped."""

from __future__ import annotations

from pathlib import Path

from hrkd_cli.config import Preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present
from hrkd_cli.parsing import comma_items
from hrkd_cli.pipeline import distill
from hrkd_cli.runs import Say
from hrkd_cli.runtime import Runtime
from hrkd_cli.train.students import student_dir


def parse_seeds(text: str | None, default: int) -> list[int]:
    """'1,2,3' -> [1, 2, 3]; '5' -> [1..5]; None -> [default]."""
    if not text:
        return [default]
    try:
        parts = [int(x) for x in comma_items(text) if x]
    except ValueError:
        raise HrkdError(f"--seeds {text!r}: expected a count (5) or a comma-separated list (1,2,3)") from None
    if not parts:
        raise HrkdError(f"--seeds {text!r}: no seed given")
    if len(parts) == 1 and "," not in text:
        if parts[0] < 1:
            raise HrkdError(f"--seeds {text!r}: a count must be at least 1")
        return list(range(1, parts[0] + 1))
    if len(set(parts)) != len(parts):
        raise HrkdError(f"--seeds {text!r}: a seed is repeated")
    return parts


def with_seed(preset: Preset, seed: int) -> Preset:
    return preset.model_copy(update={"seed": seed}, deep=True)


def finished_run(out: Path, preset: Preset) -> dict | None:
    """The run record in ``out`` if it finished with exactly this preset (sections and seed)."""
    record = read_json_if_present(Path(out) / "run.json")
    if not record or record.get("seed") != preset.seed:
        return None
    if record.get("preset_hash") != preset.section_hash("data", "teacher", "student", "distill"):
        return None
    return record


def distill_seeds(preset: Preset, runtime: Runtime, seeds: list[int], resume: bool = False, reuse: bool = True,
                  say: Say = print) -> list[Path]:
    """Distil one student per seed; with ``reuse``, seeds that already finished are skipped."""
    outs = []
    for seed in seeds:
        p = with_seed(preset, seed)
        out = student_dir(p)
        if reuse and finished_run(out, p) is not None:
            say(f"seed {seed}: reusing finished run {out}")
        else:
            out = distill(p, runtime, resume=resume and (out / "last").is_dir(), say=say)
        outs.append(out)
    return outs
