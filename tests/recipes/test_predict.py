"""`hrkd predict` on tiny runs: CSV, JSON lines and text in; labels and probabilities out; one-line errors."""

import io
import json
import sys

import pytest
import torch

from tiny import tiny_preset_dict
from hrkd_cli.model.checkpoint import load_classifier, members
from hrkd_cli.errors import HrkdError
from hrkd_cli.model.export import open_domain
from hrkd_cli.recipes.predict import predict
from cli_run import run_main

quiet = {"say": lambda m: None}
TEXTS = ["a gripping story, well told", "the battery died after a day", "meh, it is fine"]


def tiny_run(root, teacher_dir, **sections):
    from hrkd_cli.config import validate_preset
    from hrkd_cli.runtime import setup

    return validate_preset(tiny_preset_dict(root / "run", teacher_dir, **sections), "tiny"), setup("cpu", "fp32", 1)


@pytest.fixture(scope="module")
def student_run(tmp_path_factory, tiny_teacher_dir):
    from hrkd_cli.pipeline import distill

    return distill(*tiny_run(tmp_path_factory.mktemp("predict"), tiny_teacher_dir), **quiet)


@pytest.fixture(scope="module")
def pair_teacher(tmp_path_factory, tiny_teacher_dir):
    """A multi-domain teacher on sentence pairs with three labels."""
    from hrkd_cli.pipeline import teach

    synthetic = {"num_domains": 2, "train_per_domain": 32, "dev_per_domain": 16, "test_per_domain": 16, "task": "pair", "num_labels": 3}
    p, rt = tiny_run(tmp_path_factory.mktemp("pair"), tiny_teacher_dir, data={"source": "synthetic", "max_seq_length": 32,
                                                                                "split_seed": 7, "synthetic": synthetic})
    return teach(p, rt, **quiet)


def write_inputs(tmp_path):
    (tmp_path / "in.csv").write_text("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(TEXTS)))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(TEXTS)))
    (tmp_path / "in.txt").write_text(TEXTS[0] + "\n\n" + "\n".join(TEXTS[1:]) + "\n")  # a blank line is skipped


def reference_probs(run, domain, texts):
    model, meta = load_classifier(members(run)[domain])
    enc = open_domain(run, domain).encode(texts)
    with torch.no_grad():
        logits = model.eval()(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
                              [(meta["domains"].index(domain), len(texts))]).logits
    return logits.double().softmax(-1)


def test_csv_jsonl_and_text_give_labels_and_probabilities(student_run, tmp_path, capsys):
    write_inputs(tmp_path)
    expected = reference_probs(student_run, "films", TEXTS)
    for name in ("in.csv", "in.jsonl", "in.txt"):
        rows = predict(student_run, "films", str(tmp_path / name), **quiet)
        printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert printed == json.loads(json.dumps(rows))  # stdout is JSON lines of the same rows
        assert [r["text"] for r in rows] == TEXTS
        for r, p in zip(rows, expected):
            assert set(r["probabilities"]) == {"negative", "positive"}
            assert abs(sum(r["probabilities"].values()) - 1) < 1e-9
            assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
            assert torch.allclose(torch.tensor(list(r["probabilities"].values()), dtype=torch.float64), p, atol=1e-6)
    assert [r["row"] for r in predict(student_run, "films", str(tmp_path / "in.txt"), **quiet)] == [1, 3, 4]  # line numbers
    assert [r["id"] for r in predict(student_run, "films", str(tmp_path / "in.jsonl"), **quiet)] == [0, 1, 2]


def test_csv_output_file(student_run, tmp_path):
    write_inputs(tmp_path)
    predict(student_run, "books", str(tmp_path / "in.jsonl"), output=tmp_path / "out.csv", **quiet)
    import csv

    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert list(rows[0]) == ["row", "id", "text", "label", "prob_negative", "prob_positive"]
    assert all(abs(float(r["prob_negative"]) + float(r["prob_positive"]) - 1) < 1e-9 for r in rows)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written through a temporary sibling


def test_exported_folder_predicts_what_the_run_predicts(student_run, tmp_path):
    from hrkd_cli.recipes.export import export

    write_inputs(tmp_path)
    export(student_run, "hf", domain="gadgets", out=tmp_path / "hf", **quiet)
    run_rows = predict(student_run, "gadgets", str(tmp_path / "in.csv"), output=tmp_path / "a.jsonl", **quiet)
    hf_rows = predict(tmp_path / "hf", "gadgets", str(tmp_path / "in.csv"), output=tmp_path / "b.jsonl", **quiet)
    for a, b in zip(run_rows, hf_rows):
        assert a["label"] == b["label"]
        assert all(abs(a["probabilities"][k] - b["probabilities"][k]) < 1e-5 for k in a["probabilities"])
    with pytest.raises(HrkdError, match="no model for domain 'books'"):
        predict(tmp_path / "hf", "books", str(tmp_path / "in.csv"), **quiet)


def test_long_input_in_batches_with_a_progress_bar(student_run, tmp_path):
    from rich.console import Console

    (tmp_path / "long.txt").write_text("\n".join(f"{TEXTS[i % 3]} {i}" for i in range(40)) + "\n")
    sink = io.StringIO()
    rows = predict(student_run, "books", str(tmp_path / "long.txt"), output=tmp_path / "o.jsonl", batch_size=3,
                   console=Console(file=sink, force_terminal=True), **quiet)
    one = predict(student_run, "books", str(tmp_path / "long.txt"), output=tmp_path / "p.jsonl", batch_size=64, **quiet)
    assert len(rows) == 40 and "predict" in sink.getvalue()
    assert all(abs(a["probabilities"]["positive"] - b["probabilities"]["positive"]) < 1e-6 for a, b in zip(rows, one))


def test_stdin(student_run, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": "fine"}\n{"text": "bad"}\n'))
    rows = predict(student_run, "books", "-", **quiet)
    assert [r["text"] for r in rows] == ["fine", "bad"] and len(capsys.readouterr().out.splitlines()) == 2


def test_pair_teacher_with_three_labels(pair_teacher, tmp_path):
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"text": "the cat sleeps", "text_b": "an animal rests"}) + "\n")
    domain = list(members(pair_teacher))[0]
    rows = predict(pair_teacher, domain, str(tmp_path / "pairs.jsonl"), **quiet)
    assert set(rows[0]["probabilities"]) == {"entailment", "neutral", "contradiction"}
    assert abs(sum(rows[0]["probabilities"].values()) - 1) < 1e-9
    (tmp_path / "single.txt").write_text("the cat sleeps\n")
    with pytest.raises(HrkdError, match=r"single.txt: no field 'text_b'"):
        predict(pair_teacher, domain, str(tmp_path / "single.txt"), **quiet)


def test_single_domain_teachers_each_serve_their_domain(tiny_teacher_dir, tmp_path):
    from hrkd_cli.pipeline import teach

    p, rt = tiny_run(tmp_path, tiny_teacher_dir, teacher={"kind": "single", "epochs": 1})
    teacher = teach(p, rt, **quiet)
    write_inputs(tmp_path)
    rows = predict(teacher, "films", str(tmp_path / "in.txt"), **quiet)
    expected = reference_probs(teacher, "films", TEXTS)  # members(teacher)["films"] is teacher/single/films/best
    assert members(teacher)["films"].parts[-2:] == ("films", "best")
    assert all(torch.allclose(torch.tensor(list(r["probabilities"].values()), dtype=torch.float64), e, atol=1e-6)
               for r, e in zip(rows, expected))



@pytest.mark.parametrize("name,content,needles", [
    ("empty.csv", "", ["empty.csv", "no examples"]),
    ("blank.txt", "\n\n", ["blank.txt", "no examples"]),
    ("cols.csv", "sentence,label\nhi,1\n", ["cols.csv", "'text'", "sentence, label"]),
    ("keys.jsonl", '{"text": "ok"}\n{"sentence": "hi"}\n', ["keys.jsonl:2", "'text'"]),
    ("broken.jsonl", '{"text": "ok"\n', ["broken.jsonl:1", "not valid JSON"]),
    # An unclosed quote would swallow the rest of the file as one example: an error at the line it opens.
    ("unclosed.csv", 'id,text\n1,fine\n2,"never closed\n3,more text\n', ["unclosed.csv:3", "unclosed quote"]),
    # A comma inside an unquoted text would split it and drop the rest: an error at its line.
    ("extra.csv", "id,text\n1,fine\n2,good, but short\n", ["extra.csv:3", "3 fields, the header has 2"]),
    ("short.csv", "id,text_b,text\n1,a,b\n2,c\n", ["short.csv:3", "2 fields, the header has 3"]),
])
def test_bad_input_is_one_line_naming_file_and_field(student_run, tmp_path, capsys, monkeypatch, name, content, needles):
    (tmp_path / name).write_text(content)
    code, _, err = run_main(["predict", str(student_run), "--domain", "books", "--input", str(tmp_path / name)], capsys, monkeypatch)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_a_text_longer_than_the_csv_field_limit_is_read_whole_and_truncated_by_the_tokenizer(student_run, tmp_path):
    """200,000 characters: over the csv module's default 131,072-character field limit."""
    long = " ".join(TEXTS[i % 3] for i in range(9000))[:200_000]
    (tmp_path / "long.csv").write_text(f'id,text\n1,"{long}"\n2,{TEXTS[1]}\n')
    rows = predict(student_run, "books", str(tmp_path / "long.csv"), **quiet)
    assert len(long) == 200_000 and rows[0]["text"] == long and rows[1]["text"] == TEXTS[1]
    # Truncated to max_seq_length tokens as in training: the same probabilities as its first 1,000 characters.
    expected = reference_probs(student_run, "books", [long[:1000]])[0]
    got = torch.tensor(list(rows[0]["probabilities"].values()), dtype=torch.float64)
    assert torch.allclose(got, expected, atol=1e-6)


def test_unknown_domain_and_missing_file(student_run, tmp_path, capsys, monkeypatch):
    write_inputs(tmp_path)
    code, _, err = run_main(["predict", str(student_run), "--domain", "poetry", "--input", str(tmp_path / "in.csv")], capsys, monkeypatch)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "'poetry'" in err and "books, films, gadgets" in err
    code, _, err = run_main(["predict", str(student_run), "--domain", "books", "--input", str(tmp_path / "nope.csv")], capsys, monkeypatch)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "nope.csv" in err
