"""Seeded per-domain splits: determinism, domain selection, few-shot prefixes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from hrkd_cli.config import DataConfig
from hrkd_cli.data.corpus import Example, RawCorpus
from hrkd_cli.data.reading import read_source
from hrkd_cli.data.splits import make_splits, sample_front
from hrkd_cli.errors import HrkdError


def corpus(sizes: dict[str, int], task="custom") -> RawCorpus:
    pools = {d: [Example(f"{d} {i}", i % 2) for i in range(n)] for d, n in sizes.items()}
    return RawCorpus(task=task, label_names=["a", "b"], domains=list(sizes), pools=pools)


def texts(splits):
    return {d: {k: [e.text for e in v] for k, v in parts.items()} for d, parts in splits.items()}


def test_same_seed_same_split_other_seed_other_split():
    c = corpus({"x": 100, "y": 50})
    a = texts(make_splits(c, DataConfig(split_seed=7)))
    assert a == texts(make_splits(c, DataConfig(split_seed=7)))
    assert a != texts(make_splits(c, DataConfig(split_seed=8)))
    assert [len(a["x"][k]) for k in ("train", "dev", "test")] == [80, 10, 10]


def test_domain_split_independent_of_selection():
    c = corpus({"x": 100, "y": 50})
    both = texts(make_splits(c, DataConfig(split_seed=1)))
    alone = texts(make_splits(c, DataConfig(split_seed=1, domains=["y"])))
    assert alone == {"y": both["y"]}


def test_domains_select_and_order():
    c = corpus({"x": 20, "y": 20, "z": 20})
    assert list(make_splits(c, DataConfig(domains=["z", "x"]))) == ["z", "x"]


def test_unknown_domain_lists_available():
    with pytest.raises(HrkdError, match=r"unknown domain 'w'; available: x, y"):
        make_splits(corpus({"x": 20, "y": 20}), DataConfig(domains=["w"]))


def test_sample_rate_keeps_front_of_seeded_train():
    c = corpus({"x": 1000})
    full = make_splits(c, DataConfig(split_seed=5))["x"]
    for rate, n in ((0.02, 16), (0.05, 40), (0.1, 80), (0.2, 160), (0.0001, 1)):
        few = make_splits(c, DataConfig(split_seed=5, sample_rate=rate))["x"]
        assert few["train"] == full["train"][:n]
        assert few["dev"] == full["dev"] and few["test"] == full["test"]


def test_sample_front_ceil_is_float_safe():
    train = [Example(str(i), 0) for i in range(1615)]
    assert len(sample_front(train, 0.2)) == 323  # 0.2 * 1615 == 323.00000000000006
    assert len(sample_front(train, 0.1)) == 162  # ceil(161.5)


def test_too_small_domain_and_empty_fixed_test():
    with pytest.raises(HrkdError, match="'x': 2 examples"):
        make_splits(corpus({"x": 2}), DataConfig())
    c = corpus({"x": 30})
    c.tests = {"x": []}
    with pytest.raises(HrkdError, match="test set has no examples"):
        make_splits(c, DataConfig())


def test_splits_do_not_depend_on_python_hash_seed():
    """hash() of str changes per process; the split must not (compare with a fresh process)."""
    code = (
        "import hashlib, json;"
        "from hrkd_cli.config import DataConfig;"
        "from hrkd_cli.data.reading import read_source;"
        "from hrkd_cli.data.splits import make_splits;"
        "cfg = DataConfig(source='synthetic', split_seed=9, sample_rate=0.5);"
        "s = make_splits(read_source(cfg), cfg);"
        "print(hashlib.sha256(json.dumps({d: {k: [(e.text, e.label) for e in v] for k, v in p.items()} for d, p in s.items()}).encode()).hexdigest())"
    )
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True)
    cfg = DataConfig(source="synthetic", split_seed=9, sample_rate=0.5)
    s = make_splits(read_source(cfg), cfg)
    here = hashlib.sha256(json.dumps({d: {k: [(e.text, e.label) for e in v] for k, v in p.items()} for d, p in s.items()}).encode()).hexdigest()
    assert out.stdout.strip() == here


def test_sample_per_domain_keeps_the_front_n_and_refuses_more_than_a_domain_has():
    c = corpus({"x": 1000, "y": 50})
    full = make_splits(c, DataConfig(split_seed=5))
    few = make_splits(c, DataConfig(split_seed=5, sample_per_domain=30))
    for d in ("x", "y"):
        assert few[d]["train"] == full[d]["train"][:30]
        assert few[d]["dev"] == full[d]["dev"] and few[d]["test"] == full[d]["test"]
    assert len(make_splits(c, DataConfig(sample_per_domain=40))["y"]["train"]) == 40  # all of y's 40
    with pytest.raises(HrkdError, match=r"sample of 41 training examples of domain 'y': it has only 40"):
        make_splits(c, DataConfig(sample_per_domain=41))


def test_one_few_shot_sample_size_at_a_time():
    from hrkd_cli.config import validate_preset

    with pytest.raises(HrkdError, match="give one few-shot sample size, not several"):
        validate_preset({"data": {"sample_rate": 0.5, "sample_per_domain": 10}}, "p")
    with pytest.raises(HrkdError, match="data.sample_per_domain = 10 and data.sample_counts"):
        validate_preset({"data": {"sample_per_domain": 10, "sample_counts": {"x": 3}}}, "p")
    with pytest.raises(HrkdError, match="data.sample_counts.x = 0"):
        validate_preset({"data": {"sample_counts": {"x": 0}}}, "p")
    assert validate_preset({"data": {"sample_counts": {"x": 3}}}, "p").data.sampled
    assert validate_preset({"data": {"sample_per_domain": 10}}, "p").data.sampled
    assert not validate_preset({}, "p").data.sampled
