"""`hrkd bench distill`: figures measured side by side, and ratios that follow from them."""

from __future__ import annotations

import pytest

from hrkd_cli.recipes.bench import alternating_medians, bench_distill, bench_table


def test_alternating_medians_times_each_callable_in_turn():
    calls = []
    medians = alternating_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 4  # one warm-up each, then alternating
    assert set(medians) == {"a", "b"} and all(v >= 0 for v in medians.values())


def test_bench_figures_are_consistent(tiny_preset, cpu_runtime):
    said = []
    r = bench_distill(tiny_preset(), cpu_runtime, steps=2, say=said.append)
    assert any("untrained one of the same architecture" in m for m in said)  # no teacher trained yet
    st = r["step_time_s"]
    assert r["graph_overhead"] == pytest.approx(st["hrkd"] / st["multi-domain"])
    assert set(r["graph_overheads"]) == {"hrkd", "hrkd-residual", "hrkd-excess"}  # every read-out, side by side
    assert r["graph_overheads"]["hrkd-residual"] == pytest.approx(st["hrkd-residual"] / st["multi-domain"])
    ips = r["inference_examples_per_s"]
    assert r["speedup"] == pytest.approx(ips["student"] / ips["teacher"])
    assert r["params"]["student"] < r["params"]["teacher"]  # 2 of the teacher's 4 layers
    assert r["step_flops"] > 0 and r["utilisation"] == pytest.approx(r["achieved_flops_per_s"] / r["matmul_flops_per_s"])
    assert r["batch"]["examples"] == 3 * 4  # one sub-batch of 4 from each of 3 domains
    assert bench_table(r).row_count == 13  # Eq. 5 and three Eq. 17 read-outs replace two step rows and the ratio
