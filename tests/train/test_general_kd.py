"""The general distillation stage for narrow random-init students (student.general_epochs)."""

from __future__ import annotations

import hashlib
import json

import pytest

from hrkd_cli.batches import load_splits
from hrkd_cli.config import LATE_FIELDS, validate_preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli import pipeline
from hrkd_cli.train import students
from hrkd_cli.runs import data_dir
from hrkd_cli.train.general_kd import heldout_loss
from hrkd_cli.pipeline import ensure_prepared
from hrkd_cli.pipeline import ensure_teacher

quiet = {"say": lambda m: None}
# A narrow student of the tiny 4-layer, 32-wide, 4-head teacher: 2 layers, width 16, the teacher's 4 heads.
NARROW = {"init": "random", "num_layers": 2, "hidden_size": 16, "num_heads": 4, "intermediate_size": 64}


def _heldout_after_setup(preset, runtime, teacher_path, data) -> float:
    domains = list(data.domains)
    s = students.setup(preset, runtime, teacher_path, domains, data)
    dev = load_splits(data, "dev", domains)
    return heldout_loss(preset, s.model.student, s.model.projections, s.teachers, dev, domains, s.layer_map,
                        runtime)["total"]


def test_general_stage_lowers_the_intermediate_loss_on_heldout_text(tiny_preset, cpu_runtime):
    base = tiny_preset(student=NARROW, distill={"lr": 3e-3})
    ensure_prepared(base, lambda m: None)
    data = load_prepared(data_dir(base))
    teacher = ensure_teacher(base, cpu_runtime, data, lambda m: None)
    without = _heldout_after_setup(base, cpu_runtime, teacher, data)
    general = tiny_preset(student={**NARROW, "general_epochs": 3}, distill={"lr": 3e-3})
    with_stage = _heldout_after_setup(general, cpu_runtime, teacher, data)
    # Same seed, same initial weights: the only difference is the stage (3 epochs of 8 steps here).
    assert with_stage < 0.8 * without, (with_stage, without)


def test_distill_with_a_general_stage_runs_and_records_it(tiny_preset, cpu_runtime):
    p = tiny_preset(student={**NARROW, "general_epochs": 1})
    out = pipeline.distill(p, cpu_runtime, **quiet)
    record = json.loads((out / "run.json").read_text())
    assert record["preset"]["student"]["general_epochs"] == 1
    assert 0 <= record["test"]["average"] <= 1
    general = record["runs"]["all"]["meta"]["general"]  # the stage's own record, kept with the run
    assert general["epochs"] == 1 and general["steps"] > 0 and general["log"][-1]["step"] == general["steps"] - 1
    for when in ("dev_before", "dev_after"):
        assert set(general[when]) == set(record["test"]) - {"average"} | {"total"}
        assert general[when]["total"] == pytest.approx(sum(v for k, v in general[when].items() if k != "total"))
    # a run without the stage is another configuration: it may not overwrite this one
    with pytest.raises(HrkdError, match="general_epochs"):
        pipeline.distill(tiny_preset(student=NARROW), cpu_runtime, **quiet)


def test_general_epochs_is_validated(tmp_path):
    with pytest.raises(HrkdError, match="student.general_epochs = 2.0 applies to student.init = 'random'"):
        validate_preset({"student": {"general_epochs": 2}}, "p")
    with pytest.raises(HrkdError, match="general_epochs"):
        validate_preset({"student": {"init": "random", "general_epochs": -1}}, "p")
    assert validate_preset({"student": {"init": "random", "general_epochs": 2}}, "p").student.general_epochs == 2


def test_late_student_fields_at_their_default_keep_earlier_student_hashes():
    p = validate_preset({}, "p")
    before = p.model_dump(mode="json")["student"]
    del before["general_epochs"], before["layers_from"]  # the student section as recorded before they existed
    blob = json.dumps({"student": before}, sort_keys=True)
    assert LATE_FIELDS["student"]["general_epochs"] == 0
    assert p.section_hash("student") == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert validate_preset({"student": {"init": "random", "general_epochs": 1}}, "p").section_hash("student") != \
        validate_preset({"student": {"init": "random"}}, "p").section_hash("student")
