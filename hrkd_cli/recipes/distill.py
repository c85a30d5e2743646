"""`hrkd distill`: compress a teacher into a student (HRKD Eq. 1-17; docs/method.md).

Methods (hrkd_cli/train/methods.py, one registry entry each):
- tinybert: one student per domain from that domain's teacher (single-domain TinyBERT-KD)
- multi-domain: every step holds a sub-batch of every domain, loss Eq. 5
- hrkd: Eq. 17, the per-layer, per-domain terms weighted by the domain-relational
  ratios of the graphs fed with (hierarchically aggregated) prototypes
- meta-kd, mtn-kd: the Meta-KD and multi-teacher baselines (hrkd_cli/train/baselines.py)

The recipe takes the prepared data directory and the teacher; hrkd_cli/pipeline.py prepares the data and
trains the teacher first when they are missing. The method's loop (hrkd_cli/train/distill.py or
baselines.py) trains, keeps the best-on-dev student, scores it on test and writes its run record.
"""

from __future__ import annotations

from pathlib import Path

from hrkd_cli.config import Preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.runs import Say
from hrkd_cli.runtime import Runtime
from hrkd_cli.train import transfer_steps
from hrkd_cli.train.baselines import check_teacher_kind, distill_baseline
from hrkd_cli.train.distill import distill_students
from hrkd_cli.train.methods import METHODS
from hrkd_cli.train.prechecks import check_student_settings
from hrkd_cli.train.students import claim_student_dir, student_dir

LOOPS = {"joint": distill_students, "baseline": distill_baseline}


def check_settings(preset: Preset) -> None:
    """What is refused before any data is prepared or teacher trained: a student this teacher cannot give, a
    baseline asked to distil from another kind of teacher."""
    check_student_settings(preset)
    method = METHODS[preset.distill.method]
    if method.loop == "baseline":
        check_teacher_kind(method, preset)


def distill(preset: Preset, runtime: Runtime, data_dir: Path, teacher: Path, resume: bool = False,
            say: Say = print) -> Path:
    """Distil ``teacher`` into the preset's student on the prepared data in ``data_dir``; score it on test."""
    check_settings(preset)
    method = METHODS[preset.distill.method]
    data = load_prepared(data_dir)
    transfer_steps.check(preset, data, list(data.domains), runtime.world_size)
    out = student_dir(preset)
    claim_student_dir(preset, out, resume)
    return LOOPS[method.loop](method, preset, runtime, out, data, teacher, resume, say)
