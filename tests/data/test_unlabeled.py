"""Reading unlabelled text (hrkd_cli/data/unlabeled.py): formats, the domain of a file without one, bad input."""

from __future__ import annotations

import json

import pytest

from hrkd_cli.data.unlabeled import UnlabeledRow, read_unlabeled
from hrkd_cli.errors import HrkdError


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_csv_and_plain_text(tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_text('{"text": "a good novel", "domain": "books", "label": "ignored"}\n\n'
                 '{"text": " a loud kettle ", "domain": "kitchen"}\n')
    assert read_unlabeled(str(f)) == [UnlabeledRow(1, "books", "a good novel"), UnlabeledRow(3, "kitchen", "a loud kettle")]
    c = tmp_path / "u.csv"
    c.write_text('text,domain\n"one, with a comma",books\n\ntwo,films\n')
    assert [(r.line, r.domain, r.text) for r in read_unlabeled(str(c))] == [(2, "books", "one, with a comma"), (4, "films", "two")]
    t = tmp_path / "u.txt"
    t.write_text("first review\n\n  second review  \n")
    assert read_unlabeled(str(t), domain="books") == [UnlabeledRow(1, "books", "first review"), UnlabeledRow(3, "books", "second review")]
    # a table without a domain column takes data.unlabeled_domain too
    nodomain = jsonl(tmp_path / "n.jsonl", [{"text": "x"}])
    assert read_unlabeled(str(nodomain), domain="films") == [UnlabeledRow(1, "films", "x")]


def test_sentence_pairs(tmp_path):
    f = jsonl(tmp_path / "p.jsonl", [{"text": "premise", "text_b": "hypothesis", "domain": "fiction"}])
    assert read_unlabeled(str(f), text_pair=True) == [UnlabeledRow(1, "fiction", "premise", "hypothesis")]
    with pytest.raises(HrkdError, match=r"p.jsonl:1: a 'text_b' is given, but the labelled data has single texts"):
        read_unlabeled(str(f))
    g = jsonl(tmp_path / "q.jsonl", [{"text": "premise", "domain": "fiction"}, {"text": "p", "text_b": "", "domain": "fiction"}])
    with pytest.raises(HrkdError, match=r"q.jsonl:1: empty 'text_b' \(the labelled data is sentence pairs\)"):
        read_unlabeled(str(g), text_pair=True)
    t = tmp_path / "u.txt"
    t.write_text("one\n")
    with pytest.raises(HrkdError, match="plain-text file holds single texts"):
        read_unlabeled(str(t), domain="fiction", text_pair=True)


@pytest.mark.parametrize("name,content,domain,message", [
    ("missing.jsonl", None, "", "data.unlabeled '{path}': no such file"),
    ("u.parquet", b"PAR1", "", "unsupported file type '.parquet'"),
    ("empty.jsonl", b"", "", "{path}: empty file (no text)"),
    ("blank.txt", b"\n \n", "books", "{path}: empty file (no text)"),
    ("binary.jsonl", b'{"text": "ok", "domain": "books"}\n\x89PNG\x00\x01', "", "{path}:2: binary file (a NUL byte at offset 38)"),
    ("latin1.txt", "caf\u00e9\n".encode("latin-1"), "books", "{path}:1: not UTF-8 text (byte 0xe9 at offset 3)"),
    ("notext.jsonl", b'{"review": "x", "domain": "books"}\n', "", "{path}: no 'text' column (found: review, domain)"),
    ("nodomain.csv", b"text\nhello\n", "", "{path}: no 'domain' column (found: text); add one or set data.unlabeled_domain"),
    ("both.jsonl", b'{"text": "x", "domain": "books"}\n', "books", "has a domain column and data.unlabeled_domain = 'books'"),
    ("plain.txt", b"hello\n", "", "{path}: a plain-text file has no domain column; name its domain with data.unlabeled_domain"),
    ("emptytext.jsonl", b'{"text": "x", "domain": "b"}\n{"text": "  ", "domain": "b"}\n', "", "{path}:2: empty 'text'"),
    ("emptydomain.csv", b"text,domain\nx,b\ny,\n", "", "{path}:3: empty 'domain'"),
    ("badjson.jsonl", b'{"text": "x", "domain": "b"}\n{"text": \n', "", "{path}:2: not valid JSON"),
])
def test_bad_files_are_one_line_errors_naming_file_and_line(tmp_path, name, content, domain, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    shown = str(path) if content is None else str(path.resolve())
    with pytest.raises(HrkdError) as err:
        read_unlabeled(str(path), domain=domain)
    assert message.format(path=shown) in str(err.value) and "\n" not in str(err.value)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(HrkdError, match="not a file"):
        read_unlabeled(str(tmp_path))
