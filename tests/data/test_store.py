"""prepare_dataset / load_prepared: layout, manifest, hashes, atomic replacement."""

from __future__ import annotations

import json

import pytest

from hrkd_cli.config import DataConfig, SyntheticConfig
from hrkd_cli.batches import Split, make_batch
from hrkd_cli.data.store import load_prepared, prepare_dataset
from hrkd_cli.errors import HrkdError

SMALL = dict(num_domains=2, train_per_domain=24, dev_per_domain=6, test_per_domain=8, label_noise=0.0)


def syn_cfg(**kw):
    syn = SyntheticConfig(**{**SMALL, **kw.pop("synthetic", {})})
    return DataConfig(source="synthetic", max_seq_length=kw.pop("max_seq_length", 64), synthetic=syn, **kw)


def test_layout_manifest_and_roundtrip(tmp_path, tokenizer):
    out = tmp_path / "data"
    m = prepare_dataset(syn_cfg(), tokenizer, out, "minilm")
    assert json.loads((out / "manifest.json").read_text()) == m
    assert m["format"] == "hrkd-data/1" and m["source"] == "synthetic" and m["tokenizer"] == "minilm"
    assert m["domains"] == ["books", "films"] and m["label_names"] == ["negative", "positive"]
    assert m["counts"]["books"]["train"] == {"negative": 12, "positive": 12, "total": 24}
    assert set(m["split_hashes"]) == {f"{d}/{s}" for d in ("books", "films") for s in ("train", "dev", "test")}
    assert (m["split_seed"], m["sample_rate"], m["max_seq_length"], m["text_pair"]) == (42, 1.0, 64, False)
    data = load_prepared(out)
    assert data.domains == ["books", "films"] and data.num_labels == 2 and data.hash == m["hash"]
    ds = data.dataset("films", "test")
    assert len(ds) == 8 and ds.column_names == ["input_ids", "token_type_ids", "attention_mask", "label", "text", "text_b", "idx"]
    row = ds[3]
    assert row["idx"] == 3 and row["text_b"] == ""
    assert row["input_ids"] == tokenizer(row["text"])["input_ids"]  # unpadded, same tokens
    lengths = {len(r) for r in ds["input_ids"]}
    assert len(lengths) > 1  # no padding stored
    batch = make_batch([(0, Split.from_dataset("films", ds), [0, 1, 2, 3])], pad_id=tokenizer.pad_token_id)
    assert batch.input_ids.shape == (4, max(len(r) for r in ds[0:4]["input_ids"]))


def test_truncation_and_pairs(tmp_path, tokenizer):
    m = prepare_dataset(syn_cfg(max_seq_length=16, synthetic={"task": "pair", "num_labels": 3}), tokenizer, tmp_path / "p", "minilm")
    ds = load_prepared(tmp_path / "p").dataset("books", "train")
    assert m["text_pair"] and all(len(r) <= 16 for r in ds["input_ids"])
    assert all(1 in t for t in ds["token_type_ids"])  # longest_first keeps part of both segments
    assert all(r["text_b"] for r in ds)


def test_same_seed_same_hash_other_seed_other_hash(tmp_path, tokenizer):
    a = prepare_dataset(syn_cfg(), tokenizer, tmp_path / "a", "minilm")
    b = prepare_dataset(syn_cfg(), tokenizer, tmp_path / "b", "minilm")
    assert a["hash"] == b["hash"] and a == b
    assert prepare_dataset(syn_cfg(split_seed=43), tokenizer, tmp_path / "c", "minilm")["hash"] != a["hash"]
    assert prepare_dataset(syn_cfg(max_seq_length=32), tokenizer, tmp_path / "d", "minilm")["hash"] != a["hash"]
    assert prepare_dataset(syn_cfg(), tokenizer, tmp_path / "e", "other-tok")["hash"] != a["hash"]


def test_custom_source_records_absolute_path(tmp_path, tokenizer, monkeypatch):
    f = tmp_path / "mine.csv"
    f.write_text("text,label,domain\n" + "".join(f"t {i},{i % 2},{'ab'[i % 2]}\n" for i in range(40)))
    monkeypatch.chdir(tmp_path)
    m = prepare_dataset(DataConfig(source="custom", path="mine.csv", sample_rate=0.5), tokenizer, tmp_path / "o", "minilm")
    assert m["source_path"] == str(f.resolve()) and m["sample_rate"] == 0.5
    assert m["counts"]["a"]["train"]["total"] == 8  # ceil(0.5 * 16)


class Exploding:
    """A tokenizer that fails after its first call, i.e. halfway through a prepare."""

    def __init__(self, tok):
        self.tok, self.calls = tok, 0

    def __call__(self, *a, **k):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("boom")
        return self.tok(*a, **k)


def test_failed_prepare_leaves_previous_dataset_intact(tmp_path, tokenizer):
    out = tmp_path / "data"
    first = prepare_dataset(syn_cfg(), tokenizer, out, "minilm")
    with pytest.raises(RuntimeError, match="boom"):
        prepare_dataset(syn_cfg(split_seed=1), Exploding(tokenizer), out, "minilm")
    data = load_prepared(out)
    assert data.manifest == first and len(data.dataset("films", "train")) == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temp dirs left behind
    second = prepare_dataset(syn_cfg(split_seed=1), tokenizer, out, "minilm")
    assert load_prepared(out).hash == second["hash"] != first["hash"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_refuses_to_replace_foreign_directory(tmp_path, tokenizer):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(HrkdError, match="not a prepared dataset; refusing"):
        prepare_dataset(syn_cfg(), tokenizer, out, "minilm")
    assert (out / "notes.txt").read_text() == "keep me"


def test_load_prepared_errors(tmp_path):
    with pytest.raises(HrkdError, match="no manifest.json"):
        load_prepared(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(HrkdError, match="format 'something-else', expected 'hrkd-data/1'"):
        load_prepared(tmp_path)


def test_unknown_domain_in_prepared(tmp_path, tokenizer):
    prepare_dataset(syn_cfg(), tokenizer, tmp_path / "d", "minilm")
    with pytest.raises(HrkdError, match="no domain 'dvd'; domains: books, films"):
        load_prepared(tmp_path / "d").dataset("dvd", "train")


def test_manifest_remembers_the_source_as_given_and_resolved(tmp_path, tokenizer, monkeypatch):
    f = tmp_path / "mine.csv"
    f.write_text("text,label,domain\n" + "".join(f"t {i},{i % 2},{'ab'[i % 2]}\n" for i in range(40)))
    monkeypatch.chdir(tmp_path)
    m = prepare_dataset(DataConfig(source="custom", path="mine.csv"), tokenizer, tmp_path / "o", "minilm")
    assert (m["source_arg"], m["source_path"], m["sample_per_domain"]) == ("mine.csv", str(f.resolve()), 0)
    assert prepare_dataset(syn_cfg(), tokenizer, tmp_path / "s", "minilm")["source_arg"] == ""


def test_a_failed_write_is_one_line_naming_the_directory(tmp_path, tokenizer, monkeypatch):
    import errno

    import datasets

    from hrkd_cli.errors import RunError

    out = tmp_path / "data"
    first = prepare_dataset(syn_cfg(), tokenizer, out, "minilm")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(datasets.Dataset, "save_to_disk", full)
        with pytest.raises(RunError) as err:
            prepare_dataset(syn_cfg(split_seed=1), tokenizer, out, "minilm")
    assert str(err.value) == f"cannot write {out}: No space left on device" and err.value.exit_code == 1
    assert load_prepared(out).manifest == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temp dirs left behind
    (tmp_path / "file").write_text("")
    with pytest.raises(RunError, match=f"cannot write {tmp_path / 'file' / 'data'}"):
        prepare_dataset(syn_cfg(), tokenizer, tmp_path / "file" / "data", "minilm")
