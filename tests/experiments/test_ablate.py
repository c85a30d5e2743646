"""`hrkd ablate`: the configurations, a 2-seed sweep that is reused on a re-run, Table 4 from the runs."""

from __future__ import annotations

import pytest

from hrkd_cli.vocabulary import ABLATIONS
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present
from hrkd_cli.config import preset_variant
from hrkd_cli.experiments.ablate import ablate, ablation_configs, ablation_results, parse_drop, progressive_configs

PAPER_ORDER = [
    ("self-attention",),
    ("self-attention", "comp-agg"),
    ("self-attention", "comp-agg", "hierarchical"),
    ("self-attention", "comp-agg", "hierarchical", "domain-rel"),
]


def quiet(msg: str) -> None:
    pass


def test_progressive_is_exactly_the_four_cumulative_configurations():
    assert progressive_configs() == PAPER_ORDER
    assert ablation_configs(None, True) == PAPER_ORDER
    # a single switch that is also the first cumulative one is not repeated; others follow
    assert ablation_configs(["self-attention", "comp-agg"], True) == PAPER_ORDER + [("comp-agg",)]


def test_drop_parsing():
    assert parse_drop("comp-agg") == ("comp-agg",)
    assert parse_drop("domain-rel+self-attention") == ("self-attention", "domain-rel")  # canonical order
    assert ablation_configs(["hierarchical", "hierarchical"], False) == [("hierarchical",)]
    for bad in ("attention", "comp-agg+nope", "", "comp-agg+comp-agg"):
        with pytest.raises(HrkdError):
            parse_drop(bad)
    with pytest.raises(HrkdError, match="unknown ablation 'attention'"):
        ablation_configs(["attention"], False)
    with pytest.raises(HrkdError, match="nothing to ablate"):
        ablation_configs([], False)


def test_progressive_runs_exactly_the_paper_configurations(tiny_preset, cpu_runtime):
    runs = ablate(tiny_preset(distill={"method": "multi-domain"}), cpu_runtime, progressive_configs(), [1], say=quiet)
    assert list(runs) == [(), *PAPER_ORDER]
    recorded = []
    for drop, paths in runs.items():
        [path] = paths
        rec = read_json_if_present(path / "run.json")
        recorded.append((rec["method"], tuple(rec["preset"]["distill"]["drop"])))
    # the preset's method is replaced (ablations are of HRKD); all four off is the multi-domain student
    assert recorded == [("hrkd", ()), *[("hrkd", d) for d in PAPER_ORDER[:3]], ("multi-domain", ())]
    table = ablation_results(runs)
    assert [r.label for r in table.rows] == ["HRKD", "- Self-attention", "- Comp-Agg", "- Hierarchical Rel.", "- Domain Rel."]
    assert table.extra_columns == ["Δ Average"] and table.rows[0].p_note == "ref"
    assert all(set(r.stats) == {"books", "films", "gadgets", "average"} for r in table.rows)


def test_two_seed_sweep_writes_two_runs_and_a_rerun_reuses_both(tiny_preset, cpu_runtime, monkeypatch):
    p = tiny_preset()
    runs = ablate(p, cpu_runtime, [("comp-agg",)], [1, 2], say=quiet)
    paths = [x for xs in runs.values() for x in xs]
    assert len(paths) == 4 and len({x for x in paths}) == 4
    assert sorted(read_json_if_present(x / "run.json")["seed"] for x in runs[()]) == [1, 2]
    mtimes = {x: (x / "run.json").stat().st_mtime_ns for x in paths}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished seed was distilled again")

    monkeypatch.setattr("hrkd_cli.experiments.sweep.distill", no_training)
    said = []
    again = ablate(p, cpu_runtime, [("comp-agg",)], [1, 2], say=said.append)
    assert again == runs
    assert {x: (x / "run.json").stat().st_mtime_ns for x in paths} == mtimes
    assert sum("reusing finished run" in m for m in said) == 4
    table = ablation_results(again)
    assert [len(r.runs) for r in table.rows] == [2, 2]
    assert all(a in ABLATIONS for r in table.rows for a in r.first.drop)


def test_hrkd_with_every_switch_off_is_the_multi_domain_student(tiny_preset, cpu_runtime):
    """Why ablate reuses the multi-domain runs for '- Domain Rel.': same logged losses, same scores."""
    from hrkd_cli.pipeline import distill

    md = distill(tiny_preset(distill={"method": "multi-domain", "log_every": 1}), cpu_runtime, say=quiet)
    off = distill(tiny_preset(distill={"method": "hrkd", "drop": list(ABLATIONS), "log_every": 1}), cpu_runtime, say=quiet)
    assert md != off
    losses = [[e["loss"] for e in read_json_if_present(p / "last" / "ratio_log.json")] for p in (md, off)]
    assert len(losses[0]) > 3 and losses[0] == losses[1]
    assert read_json_if_present(md / "run.json")["test"] == read_json_if_present(off / "run.json")["test"]
    uniform = tiny_preset(distill={"method": "hrkd", "drop": list(ABLATIONS), "domain_rel_scale": "uniform"})
    from hrkd_cli.experiments.ablate import is_multi_domain_kd

    assert is_multi_domain_kd(preset_variant(uniform, {"distill.domain_rel_scale": "eq5"}))
    assert not is_multi_domain_kd(uniform)  # ratios 1/D: Eq. 5 divided by D, another run
