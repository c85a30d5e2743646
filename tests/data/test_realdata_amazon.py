"""The real Amazon corpus (../shared/data): HRKD Table 1 counts and a stable manifest hash."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from hrkd_cli.config import DataConfig
from hrkd_cli.data.amazon import read_amazon
from hrkd_cli.data.splits import make_splits
from hrkd_cli.data.store import load_prepared, prepare_dataset
from hrkd_cli.data.transfer import normalised

pytestmark = pytest.mark.realdata

TABLE1 = {"books": (1631, 170, 199), "dvd": (1621, 194, 185), "electronics": (1615, 172, 213), "kitchen": (1613, 184, 203)}


def test_four_domains_with_table1_counts(amazon_real):
    c = read_amazon(amazon_real)
    assert c.domains == list(TABLE1)
    for d in c.domains:
        assert Counter(e.label for e in c.pools[d]) == {0: 1000, 1: 1000}
        assert not any("review_text>" in e.text or "\n" in e.text or "  " in e.text for e in c.pools[d])
    texts = [e.text for d in c.domains for e in c.pools[d]]
    assert sum('"' in t for t in texts) > 300  # &quot; unescaped
    # One kitchen review is double-escaped in the release (&amp;quot;): one unescape keeps it as &quot;.
    assert sum("&quot;" in t for t in texts) == 1
    s = make_splits(c, DataConfig(source="amazon", path=str(amazon_real)))
    assert {d: tuple(len(s[d][k]) for k in ("train", "dev", "test")) for d in s} == TABLE1


def test_two_prepares_give_the_same_hash(amazon_real, tokenizer, tmp_path):
    cfg = DataConfig(source="amazon", path=str(amazon_real))
    t0 = time.perf_counter()
    a = prepare_dataset(cfg, tokenizer, tmp_path / "a", "minilm")
    seconds = time.perf_counter() - t0
    b = prepare_dataset(cfg, tokenizer, tmp_path / "b", "minilm")
    assert a["hash"] == b["hash"] and a["split_hashes"] == b["split_hashes"]
    assert seconds < 60, f"preparing 8,000 reviews took {seconds:.1f} s"
    data = load_prepared(tmp_path / "a")
    assert sum(data.counts[d]["train"]["total"] for d in data.domains) == 6480
    assert max(len(r) for r in data.dataset("books", "train")["input_ids"]) == 128


# ../shared/data/amazon/README.md: 6,679 unlabelled reviews, per domain
UNLABELED = {"books": 1864, "dvd": 1797, "electronics": 1320, "kitchen": 1698}


@pytest.fixture
def amazon_unlabeled(amazon_real):
    path = amazon_real.parent / "unlabeled.jsonl"
    if not path.is_file():
        pytest.skip(f"unlabelled Amazon reviews not found at {path} (set HRKD_SHARED_DATA to the shared data dir)")
    return path


def test_prepare_with_the_unlabelled_reviews_counts_them_and_keeps_the_test_split_out(amazon_real, amazon_unlabeled,
                                                                                      tokenizer, tmp_path):
    cfg = DataConfig(source="amazon", path=str(amazon_real), unlabeled=str(amazon_unlabeled), windows=2)
    t0 = time.perf_counter()
    m = prepare_dataset(cfg, tokenizer, tmp_path / "d", "minilm")
    seconds = time.perf_counter() - t0
    t = m["transfer"]
    assert t["unlabeled"]["rows"] == sum(UNLABELED.values())
    assert {d: t["counts"][d]["unlabeled"] for d in UNLABELED} == UNLABELED
    assert t["unlabeled"]["dropped"] == {"dev": 0, "test": 0}  # the file's README: overlap removed at the source
    assert all(t["counts"][d]["window"] > 100 for d in UNLABELED)  # 44 % of the reviews are longer than 128 tokens
    data = load_prepared(tmp_path / "d")
    test = {normalised(x) for d in data.domains for x in data.dataset(d, "test")["text"]}
    transfer = {normalised(x) for d in data.domains for x in data.dataset(d, "transfer")["text"]}
    assert not test & transfer
    assert seconds < 120, f"preparing with the unlabelled reviews and windows took {seconds:.1f} s"
