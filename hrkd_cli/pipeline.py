"""prepare -> teach -> distill: the commands that run their prerequisites first (docs/usage.md).

Each recipe (hrkd_cli/recipes/) takes the paths of its inputs; this module finds or makes them. `hrkd teach`
prepares the data first when the run directory has none built from the same settings; `hrkd distill` prepares
the data and trains the teacher first, reusing a teacher trained from the same teacher and data sections.
Only the CLI and the experiments import this module.
"""

from __future__ import annotations

from pathlib import Path

from hrkd_cli.config import Preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.data.unlabeled import file_sha256
from hrkd_cli.fsio import read_json_if_present
from hrkd_cli.recipes import distill as distill_recipe
from hrkd_cli.recipes import teach as teach_recipe
from hrkd_cli.recipes.prepare import FINGERPRINT, fingerprint, prepare
from hrkd_cli.runs import Say, data_dir
from hrkd_cli.runtime import Runtime, barrier
from hrkd_cli.train import transfer_steps
from hrkd_cli.train.prechecks import check_teacher_settings
from hrkd_cli.vocabulary import teacher_kind


def ensure_prepared(preset: Preset, say: Say = print):
    """Reuse <run_dir>/data when it was built from the same data section and tokenizer."""
    out = data_dir(preset)
    recorded = read_json_if_present(out.parent / FINGERPRINT)
    if (out / "manifest.json").is_file() and recorded == fingerprint(preset):
        data = load_prepared(out)
        if unlabeled_unchanged(data, say):
            say(f"reusing prepared data {out} (hash {data.hash[:12]})")
            return data
    say(f"preparing data into {out}")
    prepare(preset, say)
    return load_prepared(out)


def unlabeled_unchanged(data, say: Say) -> bool:
    """False (and a line saying so) when the data.unlabeled file has changed since the data was prepared."""
    u = (data.transfer or {}).get("unlabeled")
    if not u:
        return True
    try:
        same = file_sha256(Path(u["path"])) == u["sha256"]
    except OSError:
        same = False
    if not same:
        say(f"{u['path']} changed (or is gone) since {data.path} was prepared")
    return same


def prepared_on_every_rank(preset: Preset, runtime: Runtime, say: Say = print):
    """Rank 0 prepares (or reuses) the data while the other ranks wait; then every rank loads it."""
    data = ensure_prepared(preset, say) if runtime.is_main else None
    barrier(runtime)
    return data if data is not None else load_prepared(data_dir(preset))


def teach(preset: Preset, runtime: Runtime, kind: str | None = None, resume: bool = False, say: Say = print) -> Path:
    """`hrkd teach`: prepare the data if missing, then train the teacher (teacher.kind, or ``kind``)."""
    check_teacher_settings(preset)  # before the data is prepared
    prepared_on_every_rank(preset, runtime, say)
    return teach_recipe.teach(preset, runtime, data_dir(preset), kind=kind, resume=resume, say=say)


def ensure_teacher(preset: Preset, runtime: Runtime, data, say: Say) -> Path:
    """Reuse the run directory's teacher when its preset sections and data hash match; otherwise train it."""
    kind = teacher_kind(preset)
    found = teach_recipe.reusable_teacher(preset, kind, data.hash)
    if found is not None:
        say(f"reusing teacher {found}")
        return found
    say(f"training teacher ({kind}) first")
    return teach(preset, runtime, kind=kind, say=say)


def distill(preset: Preset, runtime: Runtime, resume: bool = False, say: Say = print) -> Path:
    """`hrkd distill`, the one command for the main job: prepare and teach if missing, then distil and score on test."""
    distill_recipe.check_settings(preset)  # before preparing or teaching: a student this teacher cannot give fails now
    data = prepared_on_every_rank(preset, runtime, say)
    transfer_steps.check(preset, data, list(data.domains), runtime.world_size)  # before a teacher trains
    teacher = ensure_teacher(preset, runtime, data, say)
    return distill_recipe.distill(preset, runtime, data_dir(preset), teacher, resume=resume, say=say)
