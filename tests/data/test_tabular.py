"""The one CSV/TSV and JSON-lines reader of `hrkd prepare` and `hrkd predict`: RFC 4180 quoting, strict field counts."""

from __future__ import annotations

import json

import pytest

from hrkd_cli.data.tabular import csv_table, json_lines, jsonl_objects, read_table, text_lines
from hrkd_cli.errors import HrkdError


def test_quoted_fields_span_lines_and_double_their_quotes():
    text = 'id,text\r\n1,"two\r\nlines, one ""quote"""\r\n\r\n2,a 12" pan\n,,\n3,""\n'
    t = csv_table(text, "x.csv")
    assert t.columns == ["id", "text"]
    # Lines where each row starts; the blank line and the all-empty row are skipped.
    assert t.rows == [(2, {"id": "1", "text": 'two\r\nlines, one "quote"'}), (5, {"id": "2", "text": 'a 12" pan'}),
                      (7, {"id": "3", "text": ""})]


def test_header_names_are_stripped_and_an_unnamed_index_column_is_ignored():
    t = csv_table(",text , label\n0,a,b\n1,c,d", "pandas.csv")  # pandas writes its index under an empty name
    assert t.columns == ["text", "label"] and t.rows == [(2, {"text": "a", "label": "b"}), (3, {"text": "c", "label": "d"})]


def test_tsv_quotes_like_csv():
    t = csv_table('text\tlabel\n"a\tb"\t1\n', "x.tsv", "\t")
    assert t.rows == [(2, {"text": "a\tb", "label": "1"})]


@pytest.mark.parametrize("text, needles", [
    # The row starts on line 2; its second field's quote, opened on line 3, never closes: named at line 3.
    ('text,label\n"one\ntwo","unclosed\nc,d\ne,f\n', ["x.csv:3", "unclosed quote"]),
    # It closes at the next quote, on line 4, before more text: still named where it opened.
    ('text,label\na,b\n"runs on,c\nd,"e"\n', ["x.csv:3", "closes on line 4", "'e'"]),
    ('text,label\na,b,c\n', ["x.csv:2", "3 fields, the header has 2", "quote that field"]),
    ('text,label\n"x\ny",b\nonly\n', ["x.csv:4", "1 field, the header has 2"]),
    ('text,label,text\n', ["x.csv:1", "'text' appears twice"]),
])
def test_malformed_csv_is_one_line_naming_the_line(text, needles):
    with pytest.raises(HrkdError) as e:
        csv_table(text, "x.csv")
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_no_field_size_limit():
    long = "word " * 60_000  # 300,000 characters, over the csv module's 131,072 default
    t = csv_table(f'text,label\n"{long}",1\nshort,0\n', "x.csv")
    assert t.rows[0][1]["text"] == long and t.rows[1] == (3, {"text": "short", "label": "0"})


def test_empty_input_has_no_columns():
    assert csv_table("", "x.csv").columns == [] and csv_table("\n \n", "x.csv").columns == []


def test_json_lines_errors_and_line_separators_inside_strings():
    text = json.dumps({"text": "a\u2028b"}, ensure_ascii=False) + "\n\n" + json.dumps({"text": "c"}) + "\n"
    assert list(json_lines(text_lines(text), "x.jsonl")) == [(1, {"text": "a\u2028b"}), (3, {"text": "c"})]
    with pytest.raises(HrkdError, match=r"^x\.jsonl:2: not valid JSON"):
        list(json_lines(text_lines('{"a": 1}\n{"a": \n'), "x.jsonl"))
    with pytest.raises(HrkdError, match=r"^x\.jsonl:1: expected a JSON object"):
        list(json_lines(["[1, 2]\n"], "x.jsonl"))


def test_read_table_by_suffix(tmp_path):
    (tmp_path / "a.csv").write_bytes("\ufefftext,label\r\nhé,1\r\n".encode())  # BOM and CRLF, as spreadsheets write
    assert read_table(tmp_path / "a.csv").rows == [(2, {"text": "hé", "label": "1"})]
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n{"text": "y", "label": 1}\n')
    t = read_table(tmp_path / "a.jsonl")
    assert t.columns == ["text", "label"] and [n for n, _ in t.rows] == [1, 2]
    assert list(jsonl_objects(tmp_path / "a.jsonl")) == t.rows
    (tmp_path / "bad.csv").write_bytes(b"text\n\xff\xfe\n")
    with pytest.raises(HrkdError, match="bad.csv: not UTF-8"):
        read_table(tmp_path / "bad.csv")
    with pytest.raises(HrkdError, match="unsupported file type '.xlsx'"):
        read_table(tmp_path / "a.xlsx")
