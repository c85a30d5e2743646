"""The user's own CSV / JSONL files."""

from __future__ import annotations

import json

import pytest

from hrkd_cli.config import DataConfig
from hrkd_cli.data.custom import read_custom
from hrkd_cli.data.splits import make_splits
from hrkd_cli.errors import HrkdError


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


def test_csv_with_split_column(tmp_path):
    rows = [(f"t{i}", "pos" if i % 2 else "neg", "a" if i < 10 else "b", ["train", "dev", "test", "train", ""][i % 5]) for i in range(20)]
    f = write_csv(tmp_path / "d.csv", ["text", "label", "domain", "split"], rows)
    c = read_custom(f)
    assert c.domains == ["a", "b"] and c.label_names == ["neg", "pos"] and not c.text_pair
    s = make_splits(c, DataConfig(source="custom", path=str(f)))
    assert sorted(e.text for e in s["a"]["dev"]) == ["t1", "t6"]
    assert sorted(e.text for e in s["a"]["test"]) == ["t2", "t7"]
    assert sorted(e.text for e in s["a"]["train"]) == ["t0", "t3", "t4", "t5", "t8", "t9"]


def test_jsonl_pairs_int_labels_sorted_numerically(tmp_path):
    f = tmp_path / "d.jsonl"
    rows = [{"text": f"p{i}", "text_b": f"h{i}", "label": [10, 2, 1][i % 3], "domain": "x"} for i in range(30)]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    c = read_custom(f)
    assert c.label_names == ["1", "2", "10"] and c.text_pair
    assert c.pools["x"][0] == type(c.pools["x"][0])("p0", 2, "h0")
    s = make_splits(c, DataConfig(source="custom", path=str(f)))
    assert [len(s["x"][k]) for k in ("train", "dev", "test")] == [24, 3, 3]


@pytest.mark.parametrize("missing", ["label", "domain"])
def test_missing_column(tmp_path, missing):
    header = [c for c in ("text", "label", "domain") if c != missing]
    f = write_csv(tmp_path / "d.csv", header, [("a", "b")])
    with pytest.raises(HrkdError) as err:
        read_custom(f)
    assert str(f) in str(err.value) and repr(missing) in str(err.value)


@pytest.mark.parametrize("content", ["", "text,label,domain\n"])
def test_empty_file(tmp_path, content):
    f = tmp_path / "d.csv"
    f.write_text(content)
    with pytest.raises(HrkdError, match="empty file"):
        read_custom(f)


def test_bad_split_value_and_extension(tmp_path):
    f = write_csv(tmp_path / "d.csv", ["text", "label", "domain", "split"], [("a", "x", "d", "holdout")])
    with pytest.raises(HrkdError, match=r"d\.csv:2: split 'holdout'"):
        read_custom(f)
    g = tmp_path / "d.parquet"
    g.write_text("x")
    with pytest.raises(HrkdError, match="unsupported file type"):
        read_custom(g)


@pytest.mark.parametrize("content, needles", [
    ('text,label,domain\nfine,pos,a\n"never closed,neg,a\nmore,pos,a\n', ["d.csv:3", "unclosed quote"]),
    ("text,label,domain\nfine,pos,a\ngood, but short,neg,a\n", ["d.csv:3", "4 fields, the header has 3"]),
])
def test_malformed_rows_are_errors_naming_the_line(tmp_path, content, needles):
    f = tmp_path / "d.csv"
    f.write_text(content)
    with pytest.raises(HrkdError) as err:
        read_custom(f)
    for n in needles:
        assert n in str(err.value), (n, str(err.value))


def test_a_long_text_is_read_whole(tmp_path):
    long = "great " * 40_000  # 240,000 characters, over the csv module's default field limit
    f = tmp_path / "d.csv"
    f.write_text(f'text,label,domain\n"{long}",pos,a\nshort,neg,a\n')
    c = read_custom(f)
    assert [e.text for e in c.pools["a"]] == [long, "short"]
