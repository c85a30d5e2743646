"""Fabricated run directories for the compare tests: run.json and predictions.json as the recipes write them
(hrkd_cli.train.evaluation.score_test writes predictions.json, distill.finish_student run.json)."""

from __future__ import annotations

import json
from pathlib import Path

DATA = "e" * 64
DOMAINS = ["books", "dvd"]
TEST_HASHES = {"books": "1" * 64, "dvd": "2" * 64}
NAMES = {"hrkd": "HRKD", "multi-domain": "TinyBERT-KD"}


def student(root: Path, method: str, seed: int, preds: dict[str, list[int]], gold: dict[str, list[int]], *,
            with_predictions: bool = True, test_hashes: dict | None = None) -> Path:
    """A student run whose run.json test accuracies are those of ``preds`` against ``gold`` (fractions)."""
    out = root / "student" / method / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    test = {d: sum(p == y for p, y in zip(preds[d], gold[d])) / len(gold[d]) for d in gold}
    test["average"] = sum(test.values()) / len(gold)
    record = {"role": "student", "method": method, "seed": seed, "data_hash": DATA, "preset_hash": f"{method}-hash",
              "row": f"HRKD-teacher -({NAMES[method]})-> BERT_S", "teacher": str(root / "teacher" / "multi-domain"),
              "preset": {"name": "fake", "data": {"domains": list(gold)}, "teacher": {"exclude_domain": ""},
                         "student": {}, "distill": {"method": method, "teacher_kind": "auto", "drop": []}},
              "test": test, "dev": test, "wall_time_s": 1.0}
    (out / "run.json").write_text(json.dumps(record))
    if with_predictions:
        (out / "predictions.json").write_text(json.dumps({
            "format": "hrkd-predictions/1", "split": "test", "data_hash": DATA,
            "test_hashes": test_hashes or {d: TEST_HASHES[d] for d in gold},
            "domains": {d: {"pred": preds[d], "gold": gold[d]} for d in gold}}))
    return out


def pattern(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[int], list[int], list[int]]:
    """(pred_a, pred_b, gold) of binary labels with the given 2x2 counts (gold all 1)."""
    n = both + only_a + only_b + neither
    gold = [1] * n
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return a, b, gold


def pair(root: Path, seed: int, books: tuple[int, int, int, int], dvd: tuple[int, int, int, int], **kw) -> None:
    """One HRKD and one TinyBERT-KD run of ``seed`` with the given per-domain 2x2 counts (HRKD first)."""
    (ab, bb, gb), (ad, bd, gd) = pattern(*books), pattern(*dvd)
    gold = {"books": gb, "dvd": gd}
    student(root, "hrkd", seed, {"books": ab, "dvd": ad}, gold, **kw)
    student(root, "multi-domain", seed, {"books": bb, "dvd": bd}, gold, **kw)
