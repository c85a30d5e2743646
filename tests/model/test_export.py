"""`hrkd export`: a domain of a tiny distilled run as a plain transformers folder and as ONNX, checked
against hrkd's own model: BertForSequenceClassification for the pooler head (the default), BertForTokenClassification
read at [CLS] for the older "cls" head."""

import json
import sys

import pytest
import torch

from tiny import tiny_preset_dict
from hrkd_cli.model.checkpoint import load_classifier, members
from hrkd_cli.model.export import ONNX_TOLERANCE, open_domain
from hrkd_cli.recipes.export import export
from cli_run import run_main

quiet = {"say": lambda m: None}


@pytest.fixture(scope="module")
def student_run(tmp_path_factory, tiny_teacher_dir):
    """A tiny HRKD student (and its multi-domain teacher), trained once for this module."""
    from hrkd_cli.config import validate_preset
    from hrkd_cli.pipeline import distill
    from hrkd_cli.runtime import setup

    root = tmp_path_factory.mktemp("export")
    return distill(validate_preset(tiny_preset_dict(root / "run", tiny_teacher_dir), "tiny"), setup("cpu", "fp32", 1), **quiet)


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory, tiny_teacher_dir):
    """The same, with the "cls" head (no pooler) for teacher and student."""
    from hrkd_cli.config import validate_preset
    from hrkd_cli.pipeline import distill
    from hrkd_cli.runtime import setup

    root = tmp_path_factory.mktemp("export-cls")
    raw = tiny_preset_dict(root / "run", tiny_teacher_dir, teacher={"head": "cls"}, student={"head": "cls"})
    return distill(validate_preset(raw, "tiny"), setup("cpu", "fp32", 1), **quiet)


TEXTS = ["a gripping story, well told", "the battery died after a day", "meh", "it works as described and the price is fair"]


def hrkd_logits(run, domain, texts):
    """The logits of hrkd's own checkpoint, computed without the export code."""
    model, meta = load_classifier(members(run)[domain])
    dm = open_domain(run, domain)
    enc = dm.encode(texts)
    with torch.no_grad():
        return model.eval()(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
                            [(meta["domains"].index(domain), len(texts))]).logits



def test_hf_export_is_a_sequence_classifier_with_hrkds_probabilities(student_run, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    written = export(student_run, "hf", out=tmp_path / "hf", **quiet)
    assert [p.name for p in written] == ["books", "films", "gadgets"]
    path = tmp_path / "hf" / "films"
    reference = hrkd_logits(student_run, "films", TEXTS)
    # what every transformers user types
    classify = pipeline("text-classification", model=str(path))
    out = classify(TEXTS, top_k=None, truncation=True)
    probs = torch.tensor([[next(s["score"] for s in row if s["label"] == name) for name in ("negative", "positive")]
                          for row in out], dtype=torch.float64)
    assert (probs - reference.double().softmax(-1)).abs().max() <= 1e-5
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        logits = model(**tok(TEXTS, truncation=True, padding=True, return_tensors="pt")).logits
    assert type(model).__name__ == "BertForSequenceClassification"
    assert (logits - reference).abs().max() <= 1e-5
    assert model.config.id2label == {0: "negative", 1: "positive"}  # the prepared data's label names
    assert model.config.label2id == {"negative": 0, "positive": 1}
    assert tok.model_max_length == 32  # the run's max_seq_length: truncation=True cuts where training did
    card = (path / "README.md").read_text()
    record = json.loads((student_run / "run.json").read_text())
    for needle in ("HRKD-teacher", "`hrkd`", record["data_hash"][:12], f"**films {100 * record['test']['films']:.1f}**",
                   f"hrkd export {student_run} --format hf -o {tmp_path / 'hf'}", 'pipeline("text-classification"'):
        assert needle in card, needle
    assert "logits[:, 0]" not in card
    info = json.loads((path / "hrkd_export.json").read_text())
    assert info["checks"]["max_abs_logit_diff"] <= 1e-5 and info["domain"] == "films"
    assert info["checks"]["pipeline_max_abs_prob_diff"] <= 1e-5 and info["checks"]["class"] == "BertForSequenceClassification"
    assert not list((tmp_path / "hf").glob(".*"))  # no staging leftovers


def test_a_cls_head_exports_as_token_classification_read_at_cls(cls_run, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    export(cls_run, "hf", domain="films", out=tmp_path / "hf", **quiet)
    path = tmp_path / "hf" / "films"
    # exactly the three lines of the model card, in plain transformers
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForTokenClassification.from_pretrained(path)
    with torch.no_grad():
        logits = model(**tok(TEXTS, truncation=True, padding=True, return_tensors="pt")).logits[:, 0]
    assert type(model).__name__ == "BertForTokenClassification"
    assert (logits - hrkd_logits(cls_run, "films", TEXTS)).abs().max() <= 1e-5
    card = (path / "README.md").read_text()
    assert "logits[:, 0]" in card and "AutoModelForSequenceClassification" in card
    # The model card's claim: BertForSequenceClassification has a pooler these weights do not fill.
    _, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True)
    assert set(info["missing_keys"]) == {"bert.pooler.dense.weight", "bert.pooler.dense.bias"}


def test_one_domain_and_an_unknown_one(student_run, tmp_path, capsys, monkeypatch):
    code, _, err = run_main(["export", str(student_run), "--domain", "gadgets", "-o", str(tmp_path / "x")], capsys, monkeypatch)
    assert code == 0 and [p.name for p in (tmp_path / "x").iterdir()] == ["gadgets"]
    code, _, err = run_main(["export", str(student_run), "--domain", "poetry"], capsys, monkeypatch)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "poetry" in lines[0] and "books, films, gadgets" in lines[0]
    assert "Traceback" not in err


def test_a_teacher_exports_too(student_run, tmp_path):
    from transformers import AutoModelForSequenceClassification

    teacher = student_run.parents[2] / "teacher" / "multi-domain"
    export(teacher, "hf", domain="books", out=tmp_path / "t", **quiet)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "t" / "books")
    enc = open_domain(teacher, "books").encode(TEXTS)
    with torch.no_grad():
        logits = model(**enc).logits
    assert model.config.num_hidden_layers == 4
    assert (logits - hrkd_logits(teacher, "books", TEXTS)).abs().max() <= 1e-5
    assert "this is a teacher" in (tmp_path / "t" / "books" / "README.md").read_text()


@pytest.mark.parametrize("head", ["pooler", "cls"])
def test_onnx_export_matches_pytorch(head, student_run, cls_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

    run = student_run if head == "pooler" else cls_run
    export(run, "onnx", domain="books", out=tmp_path / "onnx", quantize="int8", **quiet)
    path = tmp_path / "onnx" / "books"
    reference = hrkd_logits(run, "books", TEXTS)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    feeds = dict(tok(TEXTS, truncation=True, padding=True, return_tensors="np"))
    fp32 = torch.from_numpy(ort.InferenceSession(str(path / "model.onnx")).run(["logits"], feeds)[0])
    assert (fp32 - reference).abs().max() <= ONNX_TOLERANCE
    int8 = torch.from_numpy(ort.InferenceSession(str(path / "model.int8.onnx")).run(["logits"], feeds)[0])
    assert (int8.softmax(-1) - reference.softmax(-1)).abs().max() <= 0.1
    checks = json.loads((path / "hrkd_export.json").read_text())["checks"]
    assert checks["max_abs_logit_diff"] <= ONNX_TOLERANCE and "int8" in checks


def test_onnx_without_the_extra_says_how_to_install_it(student_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if it were not installed
    code, _, err = run_main(["export", str(student_run), "--format", "onnx", "-o", str(tmp_path / "o")], capsys, monkeypatch)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and 'pip install -e ".[onnx]"' in lines[0]
    assert not (tmp_path / "o").exists()


def test_quantize_needs_onnx(student_run, capsys, monkeypatch):
    code, _, err = run_main(["export", str(student_run), "--quantize", "int8"], capsys, monkeypatch)
    assert code != 0 and "--format onnx" in err and "Traceback" not in err
