"""Seeded train/dev/test splits per domain (docs/usage.md, The paper's data).

Each domain's pool is shuffled with ``random.Random`` seeded by ``split_seed``
and the domain name (through sha256, never ``hash()``), so a split depends only
on the data, the seed and the domain, not on which other domains are selected.
  Amazon domains of HRKD Table 1: exactly the paper's counts (train first, then
    dev, then test, from the shuffled pool; reviews beyond the total are unused).
  Other domains without fixed splits: fractions 1 - dev - test / dev / test.
  A source-fixed test set (MNLI dev_matched): dev = ``dev_fraction`` of the pool.
Few-shot (``sample_rate`` < 1) keeps the front ``ceil(rate * n)`` of the seeded
train split, ``sample_per_domain`` = N the front N; so a smaller sample is always
a prefix of a larger one.
"""

from __future__ import annotations

import math
import random

from hrkd_cli.data.corpus import Example, RawCorpus, stable_seed
from hrkd_cli.errors import HrkdError

# HRKD Table 1: train / dev / test reviews per Amazon domain.
AMAZON_SPLITS = {
    "books": (1631, 170, 199),
    "dvd": (1621, 194, 185),
    "electronics": (1615, 172, 213),
    "kitchen": (1613, 184, 203),
}

Splits = dict[str, dict[str, list[Example]]]


def select_domains(corpus: RawCorpus, wanted: list[str] | None) -> list[str]:
    """``data.domains`` (order kept) or every domain of the corpus."""
    if not wanted:
        return list(corpus.domains)
    for d in wanted:
        if d not in corpus.domains:
            raise HrkdError(f"data.domains: unknown domain {d!r}; available: {', '.join(corpus.domains)}")
    if len(set(wanted)) != len(wanted):
        raise HrkdError(f"data.domains: a domain is listed twice in {wanted}")
    return list(wanted)


def sample_front(train: list[Example], rate: float) -> list[Example]:
    """The front ``ceil(rate * n)`` examples (at least one); all of them when rate >= 1."""
    if rate >= 1.0:
        return train
    n = max(1, math.ceil(rate * len(train) - 1e-9))  # 0.2 * 1615 is 323.00000000000006
    return train[:n]


def sample_count(domain: str, train: list[Example], count: int) -> list[Example]:
    """The front ``count`` examples of a domain's training split, or a one-line error naming both."""
    if count > len(train):
        raise HrkdError(f"a sample of {count} training examples of domain {domain!r}: it has only {len(train)} "
                        "(data.sample_per_domain or data.sample_counts, fewshot --counts)")
    return train[:count]


def check_sample_counts(counts: dict[str, int], domains: list[str]) -> None:
    """data.sample_counts names exactly the selected domains: a domain the data lacks, or one left without a
    count, is a one-line error naming it."""
    unknown = [d for d in counts if d not in domains]
    if unknown:
        raise HrkdError(f"data.sample_counts: unknown domain {unknown[0]!r}; the data's domains are {', '.join(domains)}")
    missing = [d for d in domains if d not in counts]
    if missing:
        raise HrkdError(f"data.sample_counts: no count for domain {missing[0]!r}; name every domain "
                        f"({', '.join(domains)}) or use data.sample_per_domain for one count for all")


def _fraction(n: int, frac: float) -> int:
    return max(1, round(n * frac))


def _check_train(domain: str, n: int, n_train: int, taken: str) -> None:
    if n_train < 1:
        raise HrkdError(f"domain {domain!r}: {n} examples to split leave none for training after {taken}")


def make_splits(corpus: RawCorpus, cfg) -> Splits:
    """{domain: {"train"|"dev"|"test": [Example]}} for the selected domains, deterministic in ``cfg.split_seed``."""
    seed = getattr(cfg, "split_seed", 42)
    dev_frac = getattr(cfg, "dev_fraction", 0.1)
    test_frac = getattr(cfg, "test_fraction", 0.1)
    out: Splits = {}
    domains = select_domains(corpus, getattr(cfg, "domains", None))
    counts = getattr(cfg, "sample_counts", None) or {}
    if counts:
        check_sample_counts(counts, domains)
    for d in domains:
        pool = list(corpus.pools.get(d, []))
        random.Random(stable_seed("hrkd-split", seed, d)).shuffle(pool)
        n = len(pool)
        dev, test = corpus.devs.get(d), corpus.tests.get(d)
        if d in corpus.tests and not test:
            raise HrkdError(f"domain {d!r}: the source's test set has no examples for it "
                            "(leave it out with data.domains)")
        if dev is None and test is None:
            if corpus.task == "amazon" and d in AMAZON_SPLITS:
                n_train, n_dev, n_test = AMAZON_SPLITS[d]
                if n < n_train + n_dev + n_test:
                    raise HrkdError(
                        f"domain {d!r}: {n} examples, but its HRKD split needs {n_train + n_dev + n_test} "
                        f"({n_train}/{n_dev}/{n_test})"
                    )
            else:
                n_dev, n_test = _fraction(n, dev_frac), _fraction(n, test_frac)
                n_train = n - n_dev - n_test
                _check_train(d, n, n_train, f"{n_dev} dev and {n_test} test")
            train = pool[:n_train]
            dev = pool[n_train : n_train + n_dev]
            test = pool[n_train + n_dev : n_train + n_dev + n_test]
        elif dev is None:
            n_dev = _fraction(n, dev_frac)
            _check_train(d, n, n - n_dev, f"{n_dev} dev")
            dev, train = pool[:n_dev], pool[n_dev:]
        elif test is None:
            n_test = _fraction(n, test_frac)
            _check_train(d, n, n - n_test, f"{n_test} test")
            test, train = pool[:n_test], pool[n_test:]
        else:
            _check_train(d, n, n, "the fixed dev and test sets")
            train = pool
        count = counts.get(d) or getattr(cfg, "sample_per_domain", 0)
        train = sample_count(d, train, count) if count else sample_front(train, getattr(cfg, "sample_rate", 1.0))
        out[d] = {"train": train, "dev": list(dev), "test": list(test)}
    return out
