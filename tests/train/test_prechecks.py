"""Settings that conflict with the teacher fail before any data is prepared or teacher trained."""

import pytest

from tiny import tiny_preset_dict
from hrkd_cli.config import preset_to_toml, validate_preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.train.prechecks import check_student_settings
from cli_run import run_main

# The tests' teacher (conftest.tiny_teacher_dir): 4 layers, width 32, 4 heads, 128 positions.
CONFLICTS = [
    ({"student": {"teacher_layers": [2, 5]}}, ["student.teacher_layers=[2, 5]", "above the teacher's 4"]),
    ({"student": {"teacher_layers": [1, 2, 3]}}, ["student depth 3 does not divide teacher depth 4"]),
    ({"student": {"init": "random", "num_layers": 2, "hidden_size": 32, "num_heads": 2}},
     ["attention loss (Eq. 3)", "student 2, teacher 4"]),
    ({"student": {"init": "random", "num_layers": 2, "hidden_size": 30, "num_heads": 4}},
     ["student.hidden_size=30 is not divisible by student.num_heads=4"]),
    ({"student": {"init": "teacher-slice", "hidden_size": 64, "num_heads": 4}},
     ["student.hidden_size=64 is wider than the teacher's 32"]),
    ({"student": {"init": "teacher-slice", "hidden_size": 16, "num_heads": 2, "intermediate_size": 32}},
     ["attention loss (Eq. 3)", "student 2, teacher 4"]),
    ({"data": {"max_seq_length": 256}}, ["data.max_seq_length=256", "limit of 128"]),
]


def tiny_toml(tmp_path, teacher, **sections):
    path = tmp_path / "tiny.toml"
    path.write_text(preset_to_toml(validate_preset(tiny_preset_dict(tmp_path / "run", teacher, **sections), "tiny")))
    return path


def one_line_error(code, err, needles):
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("hrkd ")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("sections, needles", CONFLICTS)
def test_distill_refuses_a_student_the_teacher_cannot_give_before_preparing(sections, needles, tmp_path,
                                                                            tiny_teacher_dir, capsys, monkeypatch):
    preset = tiny_toml(tmp_path, tiny_teacher_dir, **sections)
    code, _, err = run_main(["distill", "--preset", str(preset)], capsys, monkeypatch)
    one_line_error(code, err, needles)
    assert not (tmp_path / "run" / "data").exists() and not (tmp_path / "run" / "teacher").exists()


@pytest.mark.parametrize("command", [["fewshot", "--rates", "50", "--seeds", "1"], ["ablate", "--drop", "comp-agg"],
                                     ["distill", "--seeds", "2"]])
def test_sweeps_check_before_any_point_is_prepared(command, tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    preset = tiny_toml(tmp_path, tiny_teacher_dir, student={"teacher_layers": [2, 5]})
    code, _, err = run_main([*command, "--preset", str(preset)], capsys, monkeypatch)
    one_line_error(code, err, ["student.teacher_layers=[2, 5]"])
    assert not list((tmp_path / "run").rglob("data"))


def test_teach_checks_the_sequence_length_before_preparing(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    preset = tiny_toml(tmp_path, tiny_teacher_dir, data={"max_seq_length": 256})
    code, _, err = run_main(["teach", "--preset", str(preset)], capsys, monkeypatch)
    one_line_error(code, err, ["data.max_seq_length=256"])
    assert not (tmp_path / "run" / "data").exists()


def test_layers_from_and_pretrained_students_are_read_from_their_configs(tmp_path, tiny_teacher_dir):
    import torch
    from transformers import BertModel

    from tiny import tiny_bert_config

    torch.manual_seed(0)
    BertModel(tiny_bert_config(num_hidden_layers=2)).save_pretrained(tmp_path / "two")
    BertModel(tiny_bert_config(num_hidden_layers=3)).save_pretrained(tmp_path / "three")

    def preset(**student):
        return validate_preset(tiny_preset_dict(tmp_path / "run", tiny_teacher_dir, student=student), "tiny")

    with pytest.raises(HrkdError, match=r"above student.layers_from '.*two': 2"):
        check_student_settings(preset(layers_from=str(tmp_path / "two"), teacher_layers=[1, 3]))
    check_student_settings(preset(layers_from=str(tmp_path / "two"), teacher_layers=[1, 2]))  # 2 divides 4
    with pytest.raises(HrkdError, match="student depth 3 does not divide teacher depth 4"):
        check_student_settings(preset(init="pretrained", model=str(tmp_path / "three")))
    check_student_settings(preset(init="pretrained", model=str(tmp_path / "two")))


def test_a_general_start_is_read_from_the_pretrained_models_config(tmp_path, tiny_teacher_dir):
    import torch
    from transformers import BertModel

    from tiny import tiny_bert_config

    torch.manual_seed(0)
    BertModel(tiny_bert_config(num_hidden_layers=2)).save_pretrained(tmp_path / "two")

    def preset(**student):
        return validate_preset(tiny_preset_dict(tmp_path / "run", tiny_teacher_dir, student={"init": "general", **student}),
                               "tiny")

    check_student_settings(preset(teacher_layers=[2, 4]))  # the teacher's own pre-trained model, 4 layers
    with pytest.raises(HrkdError, match=r"names a layer above student.init = 'general' \(.*\): 4"):
        check_student_settings(preset(teacher_layers=[2, 5]))
    with pytest.raises(HrkdError, match=r"above student.init = 'general' \(.*two\): 2"):
        check_student_settings(preset(model=str(tmp_path / "two"), teacher_layers=[2, 4]))
