"""Reading predictions.json, matching runs by seed, pooling per-example predictions."""

from __future__ import annotations

import json

from compare_fakes import DATA, pair, pattern, student

from hrkd_cli.compare.records import collect, matched_seeds, prediction_pairs, usable_predictions
from hrkd_cli.predictions import read_predictions


def by_method(records, method):
    return [r for r in records if r.method == method]


def test_matched_seeds_are_the_common_seed_numbers(tmp_path):
    for seed in (1, 2, 3):
        pair(tmp_path, seed, (3, 1, 1, 1), (2, 1, 0, 1))
    records = collect([tmp_path])
    hrkd = by_method(records, "hrkd")
    tiny = [r for r in by_method(records, "multi-domain") if r.seed != 2]
    pairs = matched_seeds(hrkd, tiny)
    assert [s for s, _, _ in pairs] == [1, 3]
    assert all(a.seed == b.seed == s and a.method == "hrkd" and b.method == "multi-domain" for s, a, b in pairs)
    assert matched_seeds(hrkd, []) == []


def test_predictions_are_kept_per_seed_over_the_same_examples(tmp_path):
    pair(tmp_path, 1, (3, 2, 1, 1), (2, 1, 0, 1))
    pair(tmp_path, 2, (1, 4, 1, 1), (0, 1, 0, 3))
    records = collect([tmp_path])
    pairs = matched_seeds(by_method(records, "hrkd"), by_method(records, "multi-domain"))
    pred, ref, gold, used, skipped = prediction_pairs(pairs, ["books", "dvd"])
    assert used == [1, 2] and skipped == []
    assert len(gold) == 7 + 4 and [len(p) for p in pred] == [len(p) for p in ref] == [11, 11]
    # a seed whose test examples are not the others' cannot enter an example-level comparison
    pair(tmp_path, 3, (1, 1, 1, 1), (0, 1, 0, 3))
    records = collect([tmp_path])
    pairs = matched_seeds(by_method(records, "hrkd"), by_method(records, "multi-domain"))
    pred, ref, gold, used, skipped = prediction_pairs(pairs, ["books", "dvd"])
    assert used == [1, 2] and skipped == ["seed 3: test examples differ from seed 1's, not paired"]


def test_unusable_predictions_say_why(tmp_path):
    a, b, gold = pattern(2, 1, 1, 1)
    old = student(tmp_path / "old", "hrkd", 1, {"books": a}, {"books": gold}, with_predictions=False)
    [rec] = collect([old])
    assert rec.predictions is None
    assert usable_predictions(rec, ["books"]) == (None, "no predictions.json")
    # a predictions.json that does not reproduce run.json's accuracy (left from another run) is not used
    stale = student(tmp_path / "stale", "hrkd", 1, {"books": a}, {"books": gold})
    p = json.loads((stale / "predictions.json").read_text())
    p["domains"]["books"]["pred"] = [1 - x for x in a]
    (stale / "predictions.json").write_text(json.dumps(p))
    [rec] = collect([stale])
    assert usable_predictions(rec, ["books"])[1] == "predictions.json disagrees with run.json's test accuracy"
    assert usable_predictions(rec, ["dvd"])[1] == "predictions.json has no domain dvd"
    # malformed files read as absent, never as a crash
    (stale / "predictions.json").write_text('{"format": "hrkd-predictions/1", "domains": {"books": {"pred": [1], "gold": []}}}')
    assert read_predictions(stale) is None
    (stale / "predictions.json").write_text("not json")
    assert read_predictions(stale) is None
    assert read_predictions(tmp_path / "nowhere") is None
    assert rec.data_hash == DATA


def test_different_test_hashes_are_not_paired(tmp_path):
    pair(tmp_path, 1, (3, 2, 1, 1), (2, 1, 0, 1))
    a, b, gold = pattern(3, 2, 1, 1)
    a2, b2, gold2 = pattern(2, 1, 0, 1)
    student(tmp_path, "multi-domain", 1, {"books": b, "dvd": b2}, {"books": gold, "dvd": gold2},
            test_hashes={"books": "9" * 64, "dvd": "2" * 64})
    records = collect([tmp_path])
    pairs = matched_seeds(by_method(records, "hrkd"), by_method(records, "multi-domain"))
    pred, _, _, used, skipped = prediction_pairs(pairs, ["books", "dvd"])
    assert used == [] and pred == []
    assert skipped == ["seed 1: test data hash differs from the reference's, not paired"]
