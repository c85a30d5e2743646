"""The transfer set prepared with the data (hrkd_cli/data/transfer.py): unlabelled text without the evaluation
splits, later windows of long training texts, augmented copies; counts, determinism, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hrkd_cli.config import DataConfig, SyntheticConfig, validate_preset
from hrkd_cli.data.splits import make_splits
from hrkd_cli.data.synthetic import generate_synthetic
from hrkd_cli.data.store import load_prepared, prepare_dataset
from hrkd_cli.data.corpus import NO_LABEL
from hrkd_cli.data.transfer import normalised, window_spans
from hrkd_cli.errors import HrkdError
from hrkd_cli.tables import counts_table

SMALL = dict(num_domains=2, train_per_domain=24, dev_per_domain=6, test_per_domain=8, label_noise=0.0)


def cfg(**kw) -> DataConfig:
    return DataConfig(source="synthetic", max_seq_length=kw.pop("max_seq_length", 24), synthetic=SyntheticConfig(**SMALL), **kw)


def embeddings(tokenizer):
    return lambda: torch.randn(len(tokenizer.get_vocab()), 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def evaluation_texts():
    c = cfg()
    s = make_splits(generate_synthetic(c.synthetic, c.split_seed), c)
    return s["books"]["dev"][2].text, s["films"]["test"][5].text


def write_unlabeled(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_planted_dev_and_test_texts_are_dropped_and_counted(tmp_path, tokenizer, evaluation_texts):
    dev_text, test_text = evaluation_texts
    f = write_unlabeled(tmp_path / "u.jsonl", [
        {"text": "a new review of a novel", "domain": "books"},
        {"text": "  " + dev_text.upper().replace(" ", "   ") + " ", "domain": "books"},  # case and spaces differ
        {"text": test_text, "domain": "books"},  # another domain's test text counts too
        {"text": "a new review of a film", "domain": "films"},
        {"text": "another film review", "domain": "films"},
    ])
    m = prepare_dataset(cfg(unlabeled=str(f)), tokenizer, tmp_path / "d", "minilm")
    u = m["transfer"]["unlabeled"]
    assert u["rows"] == 5 and u["dropped"] == {"dev": 1, "test": 1} and u["path"] == str(f.resolve())
    assert u["sha256"] and u["arg"] == str(f)
    assert m["transfer"]["counts"] == {"books": {"unlabeled": 1, "window": 0, "augmented": 0, "total": 1},
                                       "films": {"unlabeled": 2, "window": 0, "augmented": 0, "total": 2}}
    data = load_prepared(tmp_path / "d")
    rows = data.dataset("films", "transfer")
    assert rows["text"] == ["a new review of a film", "another film review"] and rows["source_row"] == [4, 5]
    assert set(rows["label"]) == {NO_LABEL} and rows["origin"] == ["unlabeled"] * 2
    assert rows["input_ids"][0] == tokenizer("a new review of a film")["input_ids"]
    evaluation = {normalised(t) for d in data.domains for s in ("dev", "test") for t in data.dataset(d, s)["text"]}
    assert not evaluation & {normalised(t) for d in data.domains for t in data.dataset(d, "transfer")["text"]}
    # the labelled data, and with it the hash the teachers depend on, is that of a prepare without transfer
    plain = prepare_dataset(cfg(), tokenizer, tmp_path / "plain", "minilm")
    assert m["hash"] == plain["hash"] and m["split_hashes"] == plain["split_hashes"] and "transfer" not in plain
    assert [c.header for c in counts_table(m).columns][4:7] == ["#Unlabelled", "#Windows", "#Augmented"]


def test_window_spans():
    assert window_spans(22, 24, 5, 0) == []  # fits in one window of 22 text tokens
    assert window_spans(23, 24, 5, 0) == [(22, 23)]
    assert window_spans(70, 24, 5, 0) == [(22, 44), (44, 66), (66, 70)]
    assert window_spans(70, 24, 2, 0) == [(22, 44), (44, 66)]  # at most data.windows
    assert window_spans(40, 24, 5, 10) == [(10, 32), (20, 40)]  # overlapping; stops once a window reaches the end


@pytest.mark.parametrize("stride", [0, 9])
def test_windows_counts_and_contents(tmp_path, tokenizer, stride):
    c = cfg(windows=3, window_stride=stride, max_seq_length=24)
    m = prepare_dataset(c, tokenizer, tmp_path / "d", "minilm")
    data = load_prepared(tmp_path / "d")
    width, step = 22, stride or 22
    for d in data.domains:
        train = data.dataset(d, "train")["text"]
        lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in train]
        expected = [min(3, max(0, math.ceil((n - width) / step))) for n in lengths]
        rows = data.dataset(d, "transfer")
        assert m["transfer"]["counts"][d]["window"] == sum(expected) > 0
        assert [rows["source_row"].count(i) for i in range(len(train))] == expected
        for ids, types, text, src in zip(rows["input_ids"], rows["token_type_ids"], rows["text"], rows["source_row"]):
            assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id and len(ids) <= 24
            assert set(types) == {0} and text in train[src]
        # side by side, the windows continue the text where the stored (truncated) example stops
        if not stride:
            i = max(range(len(train)), key=lambda k: lengths[k])
            pieces = tokenizer(train[i], add_special_tokens=False)["input_ids"]
            first = data.dataset(d, "train")["input_ids"][i]
            later = [ids[1:-1] for ids, src in zip(rows["input_ids"], rows["source_row"]) if src == i]
            assert first[1:-1] + sum(later, []) == pieces[: width * (1 + len(later))]
    # windows come from the train split only: dev and test are unchanged
    plain = prepare_dataset(cfg(max_seq_length=24), tokenizer, tmp_path / "p", "minilm")
    assert m["split_hashes"] == plain["split_hashes"]


def test_augmentation_counts_and_determinism(tmp_path, tokenizer):
    c = cfg(augment_copies=3, augment_rate=0.3, augment_seed=5)
    a = prepare_dataset(c, tokenizer, tmp_path / "a", "minilm", embeddings=embeddings(tokenizer))
    b = prepare_dataset(c, tokenizer, tmp_path / "b", "minilm", embeddings=embeddings(tokenizer))
    assert a["transfer"] == b["transfer"]  # same seed, same copies, same hash
    other = prepare_dataset(cfg(augment_copies=3, augment_rate=0.3, augment_seed=6), tokenizer, tmp_path / "c", "minilm",
                            embeddings=embeddings(tokenizer))
    assert other["transfer"]["hash"] != a["transfer"]["hash"] and other["hash"] == a["hash"]
    data = load_prepared(tmp_path / "a")
    for d in data.domains:
        train = data.dataset(d, "train")["text"]
        rows = data.dataset(d, "transfer")
        assert a["transfer"]["counts"][d] == {"unlabeled": 0, "window": 0, "augmented": 3 * len(train), "total": 3 * len(train)}
        assert rows["source_row"] == [i for i in range(len(train)) for _ in range(3)]
        # a copy of a long text is a copy of what the model reads of it, and differs there
        stored = data.dataset(d, "train")["input_ids"]
        assert all(ids != stored[s] and len(ids) <= 24 for ids, s in zip(rows["input_ids"], rows["source_row"]))
        assert any(len(t) < len(train[s]) for t, s in zip(rows["text"], rows["source_row"]))


def test_every_source_together_in_order(tmp_path, tokenizer):
    f = write_unlabeled(tmp_path / "u.jsonl", [{"text": "one more novel", "domain": "books"}, {"text": "a film", "domain": "films"}])
    m = prepare_dataset(cfg(unlabeled=str(f), windows=1, augment_copies=1), tokenizer, tmp_path / "d", "minilm",
                        embeddings=embeddings(tokenizer))
    origins = load_prepared(tmp_path / "d").dataset("books", "transfer")["origin"]
    n = m["transfer"]["counts"]["books"]
    assert origins == ["unlabeled"] * n["unlabeled"] + ["window"] * n["window"] + ["augmented"] * n["augmented"]
    assert n["unlabeled"] == 1 and n["window"] > 0 and n["augmented"] == 24


def test_a_domain_the_labelled_data_lacks_is_refused_and_nothing_is_damaged(tmp_path, tokenizer):
    out = tmp_path / "d"
    first = prepare_dataset(cfg(), tokenizer, out, "minilm")
    f = write_unlabeled(tmp_path / "u.jsonl", [{"text": "fine", "domain": "books"}, {"text": "a tent", "domain": "camping"}])
    with pytest.raises(HrkdError, match=r"u.jsonl:2: domain 'camping' is not a domain of the labelled data \(books, films\)"):
        prepare_dataset(cfg(unlabeled=str(f)), tokenizer, out, "minilm")
    assert load_prepared(out).manifest == first and sorted(p.name for p in tmp_path.iterdir()) == ["d", "u.jsonl"]
    # a domain of the source left out with data.domains is skipped and counted
    m = prepare_dataset(cfg(unlabeled=str(write_unlabeled(tmp_path / "v.jsonl", [{"text": "x", "domain": "books"},
                                                                                 {"text": "y", "domain": "films"}])),
                            domains=["books"]), tokenizer, tmp_path / "e", "minilm")
    assert m["transfer"]["unlabeled"]["other_domains"] == 1 and m["transfer"]["counts"]["books"]["unlabeled"] == 1


def test_augmentation_without_embeddings_and_windows_of_pairs_are_refused(tmp_path, tokenizer):
    with pytest.raises(HrkdError, match="data.augment_copies needs the teacher's input embeddings"):
        prepare_dataset(cfg(augment_copies=1), tokenizer, tmp_path / "a", "minilm")
    pairs = DataConfig(source="synthetic", windows=2, synthetic=SyntheticConfig(**SMALL, task="pair"))
    with pytest.raises(HrkdError, match="data.windows applies to single texts"):
        prepare_dataset(pairs, tokenizer, tmp_path / "b", "minilm")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("data,message", [
    ({"windows": 65}, "data.windows: Input should be less than or equal to 64"),
    ({"windows": -1}, "data.windows: Input should be greater than or equal to 0"),
    ({"windows": 2, "window_stride": 127}, "data.window_stride = 127 is larger than a window's 126 text tokens"),
    ({"window_stride": 10}, "data.window_stride = 10 applies only with data.windows > 0"),
    ({"augment_copies": 65}, "data.augment_copies: Input should be less than or equal to 64"),
    ({"augment_copies": 2, "augment_rate": 0}, "data.augment_rate: Input should be greater than 0"),
    ({"augment_copies": 2, "augment_rate": 1.5}, "data.augment_rate: Input should be less than or equal to 1"),
    ({"augment_copies": 2, "augment_neighbours": 0}, "data.augment_neighbours: Input should be greater than or equal to 1"),
    ({"augment_rate": 0.2}, "data.augment_rate = 0.2 applies only with data.augment_copies > 0"),
    ({"unlabeled_domain": "books"}, "data.unlabeled_domain = 'books' applies only with data.unlabeled"),
])
def test_settings_out_of_range_name_the_value(data, message):
    with pytest.raises(HrkdError) as err:
        validate_preset({"data": data}, "p")
    assert message in str(err.value), str(err.value)


def test_transfer_ratio_must_give_whole_rows():
    with pytest.raises(HrkdError, match=r"distill.transfer_ratio = 0.3 x distill.batch_per_domain = 8 is 2.4 transfer rows"):
        validate_preset({"distill": {"transfer_ratio": 0.3}}, "p")
    with pytest.raises(HrkdError, match="distill.transfer_ratio: Input should be greater than or equal to 0"):
        validate_preset({"distill": {"transfer_ratio": -1}}, "p")
    assert validate_preset({"distill": {"transfer_ratio": 0.25, "batch_per_domain": 8}}, "p").distill.transfer_rows == 2
