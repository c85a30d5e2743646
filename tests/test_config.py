import pytest

from hrkd_cli.config import (
    apply_overrides,
    list_presets,
    load_preset,
    preset_to_toml,
    preset_variant,
    shipped_presets,
    tomllib,
    validate_preset,
)
from hrkd_cli.errors import HrkdError

SHIPPED = list(shipped_presets())


def test_the_required_presets_are_shipped():
    assert {"demo", "amazon-cpu", "mnli-cpu", "amazon", "mnli"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_validates_and_has_a_description(name):
    preset = load_preset(name)
    assert preset.name == name
    assert preset.description
    assert dict(list_presets())[name] == preset.description


def test_paper_presets_name_hub_models():
    amazon = load_preset("amazon")
    assert amazon.teacher.model == "bert-base-uncased"
    assert amazon.student.model == "huawei-noah/TinyBERT_General_4L_312D"
    assert amazon.distill.lr == 5e-4 and load_preset("mnli").distill.lr == 1e-3
    assert load_preset("amazon-released").distill.lr == 5e-5


def test_unknown_key_is_rejected_naming_the_allowed_ones():
    with pytest.raises(HrkdError) as e:
        validate_preset({"data": {"max_seq_len": 64}}, "x.toml")
    msg = str(e.value)
    assert "x.toml" in msg and "data.max_seq_len: unknown key" in msg and "max_seq_length" in msg


def test_all_errors_are_reported_at_once_with_dotted_paths():
    with pytest.raises(HrkdError) as e:
        validate_preset({"distill": {"lr": -1.0, "drop": ["nope"]}, "data": {"max_seq_length": 1024}, "teacher": {"epochs": "two"}}, "p")
    msg = str(e.value)
    for path in ("distill.lr", "distill.drop", "data.max_seq_length", "teacher.epochs"):
        assert path in msg
    assert "\n" not in msg


def test_overrides_are_parsed_as_toml_values_and_validated():
    p = load_preset("demo", ["distill.lr=0.001", "distill.drop=[\"comp-agg\"]", "run_dir=/tmp/x", "data.synthetic.num_domains=3"])
    assert p.distill.lr == 0.001 and p.distill.drop == ["comp-agg"] and p.run_dir == "/tmp/x"
    assert p.data.synthetic.num_domains == 3
    with pytest.raises(HrkdError, match="distill.lr"):
        load_preset("demo", ["distill.lr=-5"])
    with pytest.raises(HrkdError, match="expected section.key=value"):
        apply_overrides({}, ["novalue"])


def test_unknown_preset_name_lists_the_shipped_ones():
    with pytest.raises(HrkdError) as e:
        load_preset("amazn")
    assert "amazn" in str(e.value) and "amazon-cpu" in str(e.value)


def test_preset_file_by_path_and_broken_toml(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('description = "mine"\n[distill]\nlr = 0.01\n')
    assert load_preset(str(good)).distill.lr == 0.01
    bad = tmp_path / "bad.toml"
    bad.write_text("[distill\n")
    with pytest.raises(HrkdError, match="bad.toml: not valid TOML"):
        load_preset(str(bad))


def test_shown_preset_round_trips():
    p = load_preset("amazon-cpu")
    again = validate_preset(tomllib.loads(preset_to_toml(p)), "shown")
    assert again == p


def test_section_hash_changes_only_with_its_sections():
    a = load_preset("demo")
    b = load_preset("demo", ["distill.lr=0.5"])
    assert a.section_hash("data", "teacher") == b.section_hash("data", "teacher")
    assert a.section_hash("distill") != b.section_hash("distill")


def test_layers_from_needs_a_teacher_layers_student_and_names_a_new_row():
    with pytest.raises(HrkdError) as e:
        validate_preset({"student": {"init": "random", "layers_from": "runs/x/teacher/meta"}}, "x.toml")
    assert "student.layers_from" in str(e.value) and "'random'" in str(e.value)
    plain = validate_preset({"student": {"init": "teacher-layers"}}, "x.toml")
    swapped = validate_preset({"student": {"init": "teacher-layers", "layers_from": "runs/x/teacher/meta"}}, "x.toml")
    assert swapped.student.layers_from == "runs/x/teacher/meta"
    sliced = validate_preset({"student": {"init": "teacher-slice", "layers_from": "runs/x/teacher/meta"}}, "x.toml")
    assert sliced.student.layers_from == "runs/x/teacher/meta"
    # a late field (config.LATE_FIELDS): at its default, earlier runs keep their hash; set, it is a new row
    assert plain.section_hash("student") != swapped.section_hash("student")


@pytest.mark.parametrize("override, field, value", [
    ("distill.graph=residual", ("distill", "graph"), "residual"),
    ('distill.graph="excess"', ("distill", "graph"), "excess"),
    ("distill.tag=T4", ("distill", "tag"), "T4"),
    ("distill.tag=123", ("distill", "tag"), "123"),  # valid TOML (an integer), but the field is a string
    ("distill.tag=1e3", ("distill", "tag"), "1e3"),
    ("distill.tag=true", ("distill", "tag"), "true"),
    ("teacher.model=2024-01-01", ("teacher", "model"), "2024-01-01"),  # a TOML date
    ("run_dir=runs/x y", ("run_dir",), "runs/x y"),
    ("distill.drop=comp-agg", ("distill", "drop"), ["comp-agg"]),
    ("distill.drop=comp-agg, hierarchical", ("distill", "drop"), ["comp-agg", "hierarchical"]),
    ("data.domains=[books, dvd]", ("data", "domains"), ["books", "dvd"]),
    ('data.domains=["books"]', ("data", "domains"), ["books"]),
    ("student.teacher_layers=2,4", ("student", "teacher_layers"), [2, 4]),
    ("student.teacher_layers=[3]", ("student", "teacher_layers"), [3]),
    ("distill.lr=2e-4", ("distill", "lr"), 2e-4),
])
def test_overrides_take_bare_values_by_the_field_type(override, field, value):
    node = load_preset("demo", [override])
    for part in field:
        node = getattr(node, part)
    assert node == value


@pytest.mark.parametrize("override, needles", [
    ("distill.graph=resid", ["distill.graph", "--set distill.graph=resid", "'paper', 'residual' or 'excess'",
                             "got 'resid'"]),
    ("distill.method=HRKD", ["distill.method", "'tinybert'", "'hrkd'", "got 'HRKD'"]),
    ("distill.lr=abc", ["distill.lr", "--set distill.lr=abc", "valid number", "got 'abc'"]),
    ("data.max_seq_length=12.5", ["data.max_seq_length", "integer", "got 12.5"]),
    ("distill.dropout=maybe", ["distill.dropout", "true or false", "got 'maybe'"]),
    ("distill.drop=nope", ["distill.drop", "choose from self-attention", "'nope'"]),
    ("student.teacher_layers=a,2", ["student.teacher_layers", "--set student.teacher_layers=a,2", "got 'a'"]),
])
def test_a_mistyped_override_names_the_field_the_value_and_what_is_allowed(override, needles):
    with pytest.raises(HrkdError) as e:
        load_preset("demo", [override])
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_preset_variant_revalidates_and_keeps_the_original(tiny_preset):
    p = tiny_preset()
    q = preset_variant(p, {"distill.drop": ["comp-agg"], "distill.method": "hrkd"})
    assert q.distill.drop == ["comp-agg"] and p.distill.drop == []
    with pytest.raises(HrkdError, match="unknown ablation"):
        preset_variant(p, {"distill.drop": ["bogus"]})
