"""MNLI readers (GLUE tsv, MultiNLI 1.0 jsonl, hub) and the per-genre split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hrkd_cli.config import DataConfig
from hrkd_cli.data.mnli import read_mnli
from hrkd_cli.data.splits import make_splits
from hrkd_cli.errors import HrkdError

HEADER = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"


def tsv_row(i, genre, s1, s2, label):
    return f"{i}\t1\t1e\t{genre}\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t{s1}\t{s2}\t{label}\t{label}"


def write_glue(root, train_rows, dev_rows, sub="MNLI"):
    d = root / sub if sub else root
    d.mkdir(parents=True, exist_ok=True)
    (d / "train.tsv").write_text("\n".join([HEADER] + train_rows) + "\n")
    (d / "dev_matched.tsv").write_text("\n".join([HEADER] + dev_rows) + "\n")
    return d


def many(genres, n, label="neutral"):
    return [tsv_row(i, g, f"{g} premise {i}", f"hyp {i}", label) for g in genres for i in range(n)]


def test_glue_tsv_quotes_and_labels(tmp_path):
    train = [
        tsv_row(0, "fiction", 'He said "stop and', "A quote \" alone", "entailment"),
        tsv_row(1, "travel", "Rome is old.", "Rome is new.", "contradiction"),
        tsv_row(2, "fiction", "x", "y", "neutral"),
    ]
    write_glue(tmp_path, train, [tsv_row(9, "travel", "p", "h", "neutral"), tsv_row(10, "fiction", "p", "h", "-")])
    c = read_mnli(tmp_path)
    assert c.domains == ["fiction", "travel"] and c.text_pair
    assert c.label_names == ["entailment", "neutral", "contradiction"]
    first = c.pools["fiction"][0]
    assert (first.text, first.text_b, first.label) == ('He said "stop and', 'A quote " alone', 0)
    assert c.pools["travel"][0].label == 2
    assert len(c.tests["travel"]) == 1 and c.tests["fiction"] == []  # the '-' row is dropped


def test_glue_files_directly_in_path(tmp_path):
    write_glue(tmp_path, many(["slate"], 3), many(["slate"], 2), sub="")
    assert len(read_mnli(tmp_path).pools["slate"]) == 3


def test_jsonl_release_drops_unlabelled(tmp_path):
    def line(genre, label):
        return json.dumps({"genre": genre, "sentence1": "p", "sentence2": "h", "gold_label": label})

    (tmp_path / "multinli_1.0_train.jsonl").write_text("\n".join([line("government", "neutral"), line("government", "-"), line("telephone", "entailment")]) + "\n")
    (tmp_path / "multinli_1.0_dev_matched.jsonl").write_text("\n".join([line("government", "-"), line("telephone", "contradiction")]) + "\n")
    c = read_mnli(tmp_path)
    assert {d: len(v) for d, v in c.pools.items()} == {"government": 1, "telephone": 1}
    assert {d: [e.label for e in v] for d, v in c.tests.items()} == {"government": [], "telephone": [2]}


def test_file_without_genre_column(tmp_path):
    d = write_glue(tmp_path, many(["fiction"], 2), many(["fiction"], 2))
    (d / "train.tsv").write_text("sentence1\tsentence2\tgold_label\na\tb\tneutral\n")
    with pytest.raises(HrkdError) as err:
        read_mnli(tmp_path)
    assert str(d / "train.tsv") in str(err.value) and "'genre'" in str(err.value)


def test_unknown_label_names_file_line_value(tmp_path):
    d = write_glue(tmp_path, many(["fiction"], 2) + [tsv_row(5, "fiction", "a", "b", "maybe")], many(["fiction"], 2))
    with pytest.raises(HrkdError) as err:
        read_mnli(tmp_path)
    assert f"{d / 'train.tsv'}:4" in str(err.value) and "'maybe'" in str(err.value)


def test_no_mnli_files(tmp_path):
    with pytest.raises(HrkdError, match="no MNLI files found"):
        read_mnli(tmp_path)


def test_hub_unreachable_is_one_line_error(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'nyu-mll/multi_nli' on the Hub\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(HrkdError) as err:
        read_mnli("hub")
    msg = str(err.value)
    assert "nyu-mll/multi_nli" in msg and "\n" not in msg


def test_split_dev_is_ten_percent_of_train_and_test_is_dev_matched(tmp_path):
    write_glue(tmp_path, many(["fiction", "travel"], 200), many(["fiction", "travel"], 30))
    c = read_mnli(tmp_path)
    s = make_splits(c, DataConfig(source="mnli", split_seed=3))
    for g in ("fiction", "travel"):
        assert (len(s[g]["train"]), len(s[g]["dev"]), len(s[g]["test"])) == (180, 20, 30)
        assert s[g]["test"] == c.tests[g]
        assert sorted(e.text for e in s[g]["train"] + s[g]["dev"]) == sorted(e.text for e in c.pools[g])


def test_a_genre_missing_from_the_test_file_is_named(tmp_path):
    write_glue(tmp_path, many(["fiction", "travel"], 20), many(["fiction"], 5))
    c = read_mnli(tmp_path)
    with pytest.raises(HrkdError, match="domain 'travel': the source's test set has no examples for it"):
        make_splits(c, DataConfig(source="mnli"))
    assert list(make_splits(c, DataConfig(source="mnli", domains=["fiction"]))) == ["fiction"]


# ---------------------------------------------------------------- the shared MultiNLI files (../shared/data/mnli)

REPO = Path(__file__).resolve().parents[2]
# HRKD Table 1's MNLI test counts: the full matched dev set per genre.
TABLE1_TEST = {"fiction": 1973, "government": 1945, "slate": 1955, "telephone": 1966, "travel": 1976}
# The shared training subset per genre (train + dev after the split).
SUBSET_POOL = {"fiction": 2547, "government": 2541, "slate": 2605, "telephone": 2754, "travel": 2541}


def test_mnli_cpu_reads_the_shared_data_like_amazon_cpu():
    from hrkd_cli.config import load_preset

    mnli, amazon = load_preset("mnli-cpu"), load_preset("amazon-cpu")
    assert mnli.data.path == "../shared/data/mnli" and amazon.data.path.startswith("../shared/data/")
    assert mnli.data.sample_rate == 1.0 and mnli.data.sample_per_domain == 0


@pytest.mark.realdata
def test_prepare_on_the_shared_mnli_gives_table1_test_counts_and_a_seeded_90_10_split(mnli_real, tmp_path):
    from hrkd_cli.config import load_preset
    from hrkd_cli.recipes.prepare import prepare

    preset = load_preset("mnli-cpu", [f'run_dir="{tmp_path / "run"}"', f'data.path="{mnli_real}"'])
    m = prepare(preset, say=lambda msg: None)
    counts = {g: {s: c[s]["total"] for s in ("train", "dev", "test")} for g, c in m["counts"].items()}
    assert list(counts) == list(TABLE1_TEST)
    assert {g: c["test"] for g, c in counts.items()} == TABLE1_TEST
    assert {g: c["train"] + c["dev"] for g, c in counts.items()} == SUBSET_POOL
    assert {g: c["dev"] for g, c in counts.items()} == {g: round(0.1 * n) for g, n in SUBSET_POOL.items()}
    assert m["sample_rate"] == 1.0 and m["split_seed"] == 42 and m["label_names"] == ["entailment", "neutral", "contradiction"]
    # the 90/10 split is the seed's: another seed draws another dev set of the same size from the same pool
    c = read_mnli(mnli_real)
    a = make_splits(c, DataConfig(source="mnli", split_seed=42))["fiction"]
    b = make_splits(c, DataConfig(source="mnli", split_seed=43))["fiction"]
    assert len(a["dev"]) == len(b["dev"]) == 255 and a["dev"] != b["dev"]
    assert sorted(e.text for e in a["train"] + a["dev"]) == sorted(e.text for e in c.pools["fiction"])
