"""Amazon Reviews in the Blitzer et al. (2007) ``sorted_data_acl`` layout.

``<path>/<domain>/{positive,negative}.review`` are pseudo-XML (raw ``&``, HTML
entities), so we do not use an XML parser: like the HRKD and Meta-KD code we
take the text between ``<review_text>`` and ``</review_text>``, unescape
entities and collapse whitespace. Duplicated reviews inside a domain are kept
(the papers' split sizes, 2,000 per domain, count them), so a duplicate can fall
in both train and test, as in the papers.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from hrkd_cli.data.corpus import Example, RawCorpus, read_text, source_path
from hrkd_cli.errors import HrkdError

LABELS = ["negative", "positive"]
# Directory name in the release -> domain name in the HRKD paper.
DOMAIN_NAMES = {"kitchen_&_housewares": "kitchen"}

_REVIEW_TEXT = re.compile(r"<review_text>(.*?)</review_text>", re.DOTALL | re.IGNORECASE)


def parse_review_file(path: Path) -> list[str]:
    """The cleaned review texts of one ``.review`` file, in file order."""
    texts = [" ".join(html.unescape(m).split()) for m in _REVIEW_TEXT.findall(read_text(path))]
    if not texts:
        raise HrkdError(f"{path}: no <review_text> element found; not a sorted_data_acl .review file")
    return texts


def read_amazon(path: str | Path) -> RawCorpus:
    """Every domain directory under ``path`` as one pool of labelled reviews."""
    root = source_path(path, "sorted_data_acl directory of the Amazon reviews")
    if not root.is_dir():
        raise HrkdError(f"data.path {str(root)!r}: expected a directory with one folder per domain")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise HrkdError(f"{root}: no domain folders (expected e.g. books/positive.review, books/negative.review)")
    pools: dict[str, list[Example]] = {}
    for d in dirs:
        name = DOMAIN_NAMES.get(d.name, d.name)
        if name in pools:
            raise HrkdError(f"{root}: two folders map to domain {name!r}")
        pool = []
        for label, fname in enumerate(("negative.review", "positive.review")):
            f = d / fname
            if not f.is_file():
                raise HrkdError(f"{d}: missing {fname} (each domain folder needs positive.review and negative.review)")
            pool += [Example(text, label) for text in parse_review_file(f)]
        pools[name] = pool
    domains = sorted(pools)
    return RawCorpus(task="amazon", label_names=list(LABELS), domains=domains, pools=pools)
