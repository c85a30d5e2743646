"""`hrkd fewshot`: the few-shot study of HRKD sec. 3.5 (Figure 2); docs/usage.md, Few-shot.

Each point of the study is a :class:`hrkd_cli.experiments.samples.Sample`: a rate r (percent of each
domain's seeded training split, ``--rates``) or a count N (training examples per
domain, ``--counts``; the paper's MNLI 2 % is 2 % of each genre's *full*
training split, about 1,390 pairs, which a count reproduces on a subset). Each
has its own results directory, ``<run_dir>/fewshot/rate-<r>/`` or
``.../count-<N>/``, holding data prepared with ``data.sample_rate = r / 100`` or
``data.sample_per_domain = N`` (the front of each domain's seeded training
split; dev and test unchanged), the teachers trained on that sample, and the
students distilled from them at ``distill.fewshot_lr``. The full-data runs in
``<run_dir>`` are never touched. Every point's data is prepared before anything
trains, so a count larger than a domain's training split stops the study at once.

Per point it distils BERT-single -(TinyBERT-KD)-> BERT_S (the baseline),
HRKD, and with ``--meta-kd`` Meta-KD; ``--methods`` picks a subset, so that a
point's arms (each with its own teacher) can run as separate processes or on
separate machines into one directory. Reading the results back as Figure 2 is
:mod:`hrkd_cli.experiments.fewshot_results`.
"""

from __future__ import annotations

import math

from hrkd_cli.config import Preset, preset_variant
from hrkd_cli.errors import HrkdError
from hrkd_cli.experiments.samples import as_sample, rate_dir
from hrkd_cli.experiments.sweep import distill_seeds
from hrkd_cli.parsing import comma_items, plus_items
from hrkd_cli.pipeline import prepared_on_every_rank
from hrkd_cli.runs import Say
from hrkd_cli.runtime import Runtime
from hrkd_cli.train.prechecks import check_student_settings
from hrkd_cli.vocabulary import run_names



def parse_rates(text: str) -> list[float]:
    """'1,2,5,10,20' -> [1.0, 2.0, 5.0, 10.0, 20.0] (percent, ascending); refuses values outside (0, 100]."""
    rates = []
    for part in comma_items(text):
        part = part.rstrip("%")
        if not part:
            continue
        try:
            r = float(part)
        except ValueError:
            raise HrkdError(f"--rates {text!r}: {part!r} is not a number (percent, e.g. 1,2,5,10,20)") from None
        if not math.isfinite(r) or not 0.0 < r <= 100.0:
            raise HrkdError(f"--rates: {part}% is outside (0, 100]; rates are percentages of each training split")
        if r not in rates:
            rates.append(r)
    if not rates:
        raise HrkdError(f"--rates {text!r}: no rate given")
    return sorted(rates)


def parse_counts(text: str) -> list:
    """Few-shot points given as absolute training sizes, ascending: '1390,2300' -> [1390, 2300] (the same number of
    training examples for every domain); a point written 'fiction:1390+telephone:1500+...' gives each domain its
    own count (returned as a tuple of (domain, count) pairs, after the plain counts). Refuses anything but whole
    numbers >= 1. Whether the data has those domains and that many examples is checked before any training."""
    counts, per_domain = [], []
    for part in comma_items(text):
        if not part:
            continue
        if ":" in part:
            point = tuple(_domain_count(text, item) for item in plus_items(part))
            names = [d for d, _ in point]
            if len(set(names)) != len(names):
                raise HrkdError(f"--counts {text!r}: a domain is named twice in {part!r}")
            if point not in per_domain:
                per_domain.append(point)
            continue
        n = _whole(text, part)
        if n not in counts:
            counts.append(n)
    if not counts and not per_domain:
        raise HrkdError(f"--counts {text!r}: no count given")
    return sorted(counts) + per_domain


def _whole(text: str, part: str) -> int:
    try:
        n = int(part)
    except ValueError:
        raise HrkdError(f"--counts {text!r}: {part!r} is not a whole number of training examples per domain") from None
    if n < 1:
        raise HrkdError(f"--counts: {n} is below 1; counts are training examples per domain")
    return n


def _domain_count(text: str, item: str) -> tuple[str, int]:
    domain, _, n = item.partition(":")
    if not domain.strip():
        raise HrkdError(f"--counts {text!r}: {item!r} names no domain (write domain:count)")
    return domain.strip(), _whole(text, n.strip())


def rate_preset(preset: Preset, rate) -> Preset:
    """The preset of one point (a rate in percent, or a Sample): its sample of the data, its own run directory."""
    sample = as_sample(rate)
    updates: dict = {"run_dir": str(rate_dir(preset.run_dir, sample))}
    if sample.counts is not None:
        updates.update({"data.sample_rate": 1.0, "data.sample_counts": dict(sample.counts)})
    elif sample.per_domain is None:
        updates["data.sample_rate"] = sample.percent / 100.0
    else:
        # the students switch to distill.fewshot_lr on any sample (data.sampled), by share or by count
        updates.update({"data.sample_rate": 1.0, "data.sample_per_domain": sample.per_domain})
    return preset_variant(preset, updates)


def method_preset(preset: Preset, method: str) -> Preset:
    return preset_variant(preset, {"distill.method": method, "distill.teacher_kind": "auto", "distill.drop": [],
                                   "teacher.exclude_domain": ""})


# The arms of one point, in the order they run: each distils from a teacher of its own kind
# (BERT-single, the HRKD-teacher, the Meta-teacher), so different arms never train the same teacher.
METHODS = ("tinybert", "hrkd", "meta-kd")


def arm_tags(preset: Preset) -> dict[str, str]:
    """Method -> the student/<tag> its arm runs into under ``preset`` (a --set distill.tag names another
    configuration, which the point's table then reads instead of the plain one)."""
    return {m: run_names(method_preset(preset, m)).tag for m in METHODS}


def parse_methods(text: str) -> list[str]:
    """'hrkd,tinybert' -> ['tinybert', 'hrkd'] (run order); an unknown or empty name is a one-line error."""
    names = comma_items(text)
    for name in names:
        if name not in METHODS:
            raise HrkdError(f"--methods {text}: {name!r} is not one of {', '.join(METHODS)}")
    return [m for m in METHODS if m in names]


def fewshot(preset: Preset, runtime: Runtime, rates: list, seeds: list[int], meta_kd: bool = False,
            resume: bool = False, say: Say = print, methods: list[str] | None = None) -> dict:
    """Teach and distil on every point (rates in percent and/or Samples); returns {point: {method: [student run dirs]}}.

    ``methods`` (default: the baseline and HRKD, plus Meta-KD with ``meta_kd``) picks the arms to run.
    Every point's data is prepared (or reused) first, so that a sample a domain cannot provide is refused
    before anything trains."""
    methods = list(methods or METHODS[:2])  # default: the baseline and HRKD
    if meta_kd and "meta-kd" not in methods:
        methods.append("meta-kd")
    for method in methods:  # before any data is prepared or teacher trained
        check_student_settings(method_preset(preset, method))
    points = [(point, rate_preset(preset, point)) for point in rates]
    for point, p in points:
        prepared_on_every_rank(p, runtime, say)
    out: dict = {}
    for point, p in points:
        sample = as_sample(point)
        if sample.counts is not None:
            what = "training examples (an absolute size for each domain)"
        elif sample.per_domain is None:
            what = "of each training split"
        else:
            what = "training examples of every domain (an absolute size)"
        say(f"fewshot: {sample.label.replace('/domain', '')} {what} -> {p.run_dir}")
        out[point] = {}
        for method in methods:
            out[point][method] = distill_seeds(method_preset(p, method), runtime, seeds, resume=resume, reuse=True, say=say)
    return out
