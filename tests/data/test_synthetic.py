"""The synthetic multi-domain generator."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from hrkd_cli.config import DataConfig, SyntheticConfig
from hrkd_cli.data.splits import make_splits
from hrkd_cli.data.synthetic import TOPICS, PairWorld, SingleWorld, domain_names, generate_synthetic
from hrkd_cli.errors import HrkdError

WORD = re.compile(r"[a-z]+")


def gen(seed=1, **kw):
    return generate_synthetic(SyntheticConfig(**kw), seed)


def test_deterministic_in_seed():
    assert gen(3).pools == gen(3).pools and gen(3).tests == gen(3).tests
    assert gen(3).pools != gen(4).pools


def test_sizes_balance_and_length():
    c = gen(train_per_domain=120, dev_per_domain=30, test_per_domain=60, num_labels=3)
    assert c.domains == ["books", "films", "gadgets", "kitchen"]
    assert c.label_names == ["negative", "neutral", "positive"]
    s = make_splits(c, DataConfig())
    for d in c.domains:
        assert [len(s[d][k]) for k in ("train", "dev", "test")] == [120, 30, 60]
        assert set(Counter(e.label for e in s[d]["test"]).values()) == {20}  # clean and balanced
        assert min(Counter(e.label for e in s[d]["train"]).values()) >= 25
    words = [len(e.text.split()) for d in c.domains for e in c.pools[d]]
    assert 15 <= min(words) and max(words) <= 60 and 22 <= sum(words) / len(words) <= 45


def test_domains_differ_in_vocabulary():
    c = gen(num_domains=4, train_per_domain=200)
    vocab = {d: Counter(w for e in c.pools[d] for w in WORD.findall(e.text.lower())) for d in c.domains}
    for d in c.domains:
        own = set(TOPICS[d].nouns)
        assert sum(vocab[d][w] for w in own) > 200  # the domain's topic nouns are used...
        for other in c.domains:
            if other != d:
                assert sum(vocab[other][w] for w in own) == 0  # ...and only there


def test_private_cue_flips_between_domains():
    world = SingleWorld(2, domain_names(4))
    label_of = [{w: y for y, ws in enumerate(world.private[d]) for w in ws} for d in world.private]
    flips = [w for w in label_of[0] if w in label_of[1] and label_of[0][w] != label_of[1][w]]
    assert flips, "neighbouring domains should disagree on an ambiguous cue"
    shared = {w for ws in world.shared for w in ws}
    assert not shared & set(label_of[0])
    pw = PairWorld(domain_names(2))
    assert pw.dims["books"][-1] != pw.dims["films"][-1]


def test_not_solved_by_one_keyword():
    c = gen(train_per_domain=400, label_noise=0.0)
    docs = [(set(WORD.findall(e.text.lower())), e.label) for d in c.domains for e in c.pools[d]]
    vocab = set().union(*(ws for ws, _ in docs))
    best = max(max(sum((w in ws) == (y == 1) for ws, y in docs), sum((w in ws) == (y == 0) for ws, y in docs)) for w in vocab)
    assert best / len(docs) < 0.65  # measured: 0.53 (the best word is "disappointing")


def test_label_noise_rate_and_clean_eval_splits():
    clean, noisy = gen(5, label_noise=0.0), gen(5, label_noise=0.2)
    flipped = total = 0
    for d in clean.domains:
        assert [e.text for e in clean.pools[d]] == [e.text for e in noisy.pools[d]]
        flipped += sum(a.label != b.label for a, b in zip(clean.pools[d], noisy.pools[d]))
        total += len(clean.pools[d])
        assert clean.tests[d] == noisy.tests[d] and clean.devs[d] == noisy.devs[d]
    assert 0.16 <= flipped / total <= 0.24


@pytest.mark.parametrize("k,names", [(3, ["entailment", "neutral", "contradiction"]), (2, ["entailment", "not_entailment"])])
def test_pair_task(k, names):
    c = gen(task="pair", num_labels=k, train_per_domain=60)
    assert c.text_pair and c.label_names == names
    ex = c.pools["books"][0]
    assert ex.text_b and ex.text_b.endswith(".")
    assert set(Counter(e.label for e in c.tests["books"]).values()) <= {200 // k, 200 // k + 1}


def test_pair_rejects_more_than_three_labels_and_many_domains_work():
    with pytest.raises(HrkdError, match="num_labels = 4"):
        gen(task="pair", num_labels=4)
    names = gen(num_domains=26, train_per_domain=10, dev_per_domain=5, test_per_domain=5).domains
    assert len(set(names)) == 26 and names[:4] == ["books", "films", "gadgets", "kitchen"]
    assert all(re.fullmatch(r"[a-z]+", n) for n in names)
