"""The run records committed under results/ stay readable by `hrkd eval --compare` and self-consistent."""

from pathlib import Path

import pytest

from hrkd_cli.compare.records import check_same_data, collect, domains_of, group_runs, usable_predictions

RESULTS = Path(__file__).resolve().parents[2] / "results"
DIRS = sorted(p for p in RESULTS.iterdir() if p.is_dir()) if RESULTS.is_dir() else []


@pytest.mark.parametrize("results_dir", DIRS, ids=[p.name for p in DIRS])
def test_committed_records_are_complete_and_agree_with_their_predictions(results_dir):
    records = collect([results_dir])
    check_same_data(records)  # one prepared dataset per folder
    domains = domains_of(records, "test")
    assert domains
    for r in records:
        pred, why = usable_predictions(r, domains)
        assert pred is not None, f"{r.path}: {why}"
    # students of one row share a configuration and never repeat a seed
    for runs in group_runs(records):
        seeds = [r.seed for r in runs if r.role == "student"]
        assert len(seeds) == len(set(seeds)), runs[0].path
