"""Amazon reader (sorted_data_acl pseudo-XML) and the HRKD Table 1 split."""

from __future__ import annotations

import pytest

from hrkd_cli.config import DataConfig
from hrkd_cli.data.amazon import parse_review_file, read_amazon
from hrkd_cli.data.splits import make_splits
from hrkd_cli.errors import HrkdError

TINY = """<reviews>
<review>
<unique_id>
B00:pots_&_pans:someone
</unique_id>
<title>
Salt & Pepper
</title>
<review_text>
Works great &amp; looks &quot;nice&quot;   with raw & ampersands
and a second    line &#45; done.
</review_text>
</review>
<review>
<product_name>
R&B
</product_name>
<review_text>
Short one.
</review_text>
</review>
</reviews>
"""


def test_parse_tiny_pseudo_xml(tmp_path):
    f = tmp_path / "positive.review"
    f.write_text(TINY)
    assert parse_review_file(f) == [
        'Works great & looks "nice" with raw & ampersands and a second line - done.',
        "Short one.",
    ]


def test_read_layout_maps_kitchen_and_keeps_duplicates(make_amazon, review):
    root = make_amazon({"books": (3, 2), "kitchen_&_housewares": (2, 2)})
    dup = review("same text twice")
    (root / "books" / "positive.review").write_text(f"<reviews>{dup}{dup}</reviews>")
    c = read_amazon(root)
    assert c.domains == ["books", "kitchen"]
    assert c.label_names == ["negative", "positive"]
    assert not c.text_pair and c.task == "amazon"
    assert [e.text for e in c.pools["books"] if e.label == 1] == ["same text twice", "same text twice"]
    assert sorted(e.label for e in c.pools["kitchen"]) == [0, 0, 1, 1]
    assert all("awful" in e.text for e in c.pools["kitchen"] if e.label == 0)


def test_missing_dir(tmp_path):
    with pytest.raises(HrkdError, match="no such file or directory"):
        read_amazon(tmp_path / "nope")


def test_empty_path_string():
    with pytest.raises(HrkdError, match="data.path is empty"):
        read_amazon("")


def test_empty_dir(tmp_path):
    with pytest.raises(HrkdError, match="no domain folders"):
        read_amazon(tmp_path)


def test_domain_missing_a_file(make_amazon):
    root = make_amazon({"books": (2, 2)})
    (root / "books" / "negative.review").unlink()
    with pytest.raises(HrkdError, match=r"books: missing negative\.review"):
        read_amazon(root)


def test_review_file_without_review_text(make_amazon):
    root = make_amazon({"dvd": (2, 2)})
    bad = root / "dvd" / "positive.review"
    bad.write_text("<reviews><review><title>x</title></review></reviews>")
    with pytest.raises(HrkdError) as err:
        read_amazon(root)
    assert str(bad) in str(err.value) and "<review_text>" in str(err.value)


def test_table1_counts_and_fraction_domains(make_amazon):
    root = make_amazon({"books": (1000, 1000), "toys": (50, 50)})
    splits = make_splits(read_amazon(root), DataConfig(source="amazon"))
    assert {k: len(v) for k, v in splits["books"].items()} == {"train": 1631, "dev": 170, "test": 199}
    # A domain outside Table 1: 1 - dev - test / dev / test fractions.
    assert {k: len(v) for k, v in splits["toys"].items()} == {"train": 80, "dev": 10, "test": 10}
    texts = [e.text for part in splits["books"].values() for e in part]
    assert len(set(texts)) == 2000  # a partition of the pool


def test_domain_too_small_for_table_split(make_amazon):
    root = make_amazon({"electronics": (10, 5)})
    with pytest.raises(HrkdError) as err:
        make_splits(read_amazon(root), DataConfig(source="amazon"))
    msg = str(err.value)
    assert "'electronics'" in msg and "15" in msg and "2000" in msg
