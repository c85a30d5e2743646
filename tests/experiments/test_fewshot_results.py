"""Figure 2 read back from the runs: improvement over the baseline, its interval, the near-chance flag, the plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from hrkd_cli.errors import HrkdError
from hrkd_cli.experiments.samples import Sample, rate_dir
from hrkd_cli.experiments.fewshot_results import fewshot_results, improvement_interval, plot_fewshot


def _student(root: Path, tag: str, method: str, seed: int, avg: float, data_hash: str) -> None:
    out = root / "student" / tag / f"seed-{seed}"
    out.mkdir(parents=True)
    teacher = {"tinybert": "single", "hrkd": "multi-domain", "meta-kd": "meta"}[method]
    rec = {"role": "student", "method": method, "row": tag, "seed": seed, "data_hash": data_hash, "preset_hash": tag,
           "preset": {"distill": {"method": method, "teacher_kind": "auto", "drop": []}, "teacher": {"exclude_domain": ""}},
           "teacher": str(root / "teacher" / teacher), "test": {"a": avg, "average": avg}, "wall_time_s": 1}
    (out / "run.json").write_text(json.dumps(rec))


def test_improvement_rate_and_plot(tmp_path):
    numbers = {5: {"tinybert": [0.60, 0.62], "hrkd": [0.66, 0.65], "meta-kd": [0.63, 0.61]},
               20: {"tinybert": [0.70, 0.72], "hrkd": [0.73, 0.74]}}
    for rate, methods in numbers.items():
        for method, avgs in methods.items():
            for seed, avg in enumerate(avgs, 1):
                _student(rate_dir(tmp_path, rate), method, method, seed, avg, f"{rate:064d}")
    result = fewshot_results(tmp_path)
    assert [p.rate for p in result.points] == [5.0, 20.0]
    assert result.methods == ["hrkd", "meta-kd"]
    for pt in result.points:
        base = np.mean(numbers[int(pt.rate)]["tinybert"])
        for m in pt.improvement:
            vals = numbers[int(pt.rate)][m]
            assert pt.improvement[m] == pytest.approx(100 * (np.mean(vals) - base) / base)
            assert pt.p_value[m] == pytest.approx(stats.ttest_ind([100 * v for v in vals],
                                                                  [100 * v for v in numbers[int(pt.rate)]["tinybert"]],
                                                                  equal_var=False).pvalue)
    assert "meta-kd" not in result.points[1].improvement  # Meta-KD only where its runs exist
    md = result.to_markdown()
    assert "+7.4" in md and "HRKD impr." in md and "Meta-KD impr." in md
    png = plot_fewshot(result, tmp_path / "fig" / "figure2.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [x.name for x in png.parent.iterdir()] == ["figure2.png"]  # no temporary file left
    with pytest.raises(HrkdError, match="PNG"):
        plot_fewshot(result, tmp_path / "figure2.pdf")


def test_a_tagged_configuration_is_read_where_the_call_names_it(tmp_path):
    """A point holding two configurations of each arm (plain, and a --set distill.tag one with more seeds on
    neither side): without tags the plain one is read, with the call's tags the tagged one."""
    point = rate_dir(tmp_path, 20)
    for tag, base, hrkd in (("", [0.50, 0.52], [0.49, 0.50]), ("-lr", [0.69, 0.70], [0.68, 0.69])):
        for seed in (1, 2):
            _student(point, f"tinybert{tag}", "tinybert", seed, base[seed - 1], "0" * 64)
            _student(point, f"hrkd{tag}", "hrkd", seed, hrkd[seed - 1], "0" * 64)
    plain, tagged = (fewshot_results(tmp_path, tags=t).points[0] for t in (None, {"tinybert": "tinybert-lr", "hrkd": "hrkd-lr"}))
    assert plain.rows["baseline"].stats["average"].mean == pytest.approx(51.0)
    assert tagged.rows["baseline"].stats["average"].mean == pytest.approx(69.5)
    assert tagged.improvement["hrkd"] == pytest.approx(100 * (68.5 - 69.5) / 69.5)


def _teacher(root: Path, kind: str, avg: float) -> None:
    (root / "teacher" / kind).mkdir(parents=True)
    (root / "teacher" / kind / "run.json").write_text(json.dumps({"role": "teacher", "kind": kind, "test": {"average": avg}}))


def _manifest(root: Path, data_hash: str, test_counts: dict[str, int]) -> None:
    (root / "data").mkdir(parents=True)
    counts = {"a": {"train": {"total": 10}, "test": {**test_counts, "total": sum(test_counts.values())}}}
    (root / "data" / "manifest.json").write_text(json.dumps({"hash": data_hash, "counts": counts}))


def test_teacher_averages_and_the_near_chance_flag(tmp_path, monkeypatch):
    # 60/40 test labels: always answering the majority class scores 60 %.
    for rate, teacher_avg in [(5, 0.63), (20, 0.80)]:
        root = rate_dir(tmp_path, rate)
        _manifest(root, f"{rate:064d}", {"negative": 60, "positive": 40})
        for method in ("tinybert", "hrkd"):
            for seed in (1, 2):
                _student(root, method, method, seed, 0.6 + 0.01 * seed, f"{rate:064d}")
        _teacher(root, "single", teacher_avg)
        _teacher(root, "multi-domain", teacher_avg + 0.05)
    monkeypatch.chdir(tmp_path / "fewshot")  # the records' teacher paths are absolute here; the layout still finds them
    result = fewshot_results(tmp_path)
    low, high = result.points
    assert low.chance == pytest.approx(60.0) and high.chance == pytest.approx(60.0)
    assert low.teacher_average == pytest.approx({"baseline": 63.0, "hrkd": 68.0})
    assert low.near_chance and not high.near_chance  # 63 is within 5 points of 60; 80 and 85 are not
    md = result.to_markdown()
    assert "| 5% * |" in md and "| 20% |" in md and "63.0 / 68.0" in md and "majority-class rate (5%: 60.0)" in md
    assert result.to_json()["points"][0]["near_chance"] is True
    assert plot_fewshot(result, tmp_path / "marked.png").read_bytes()[:4] == b"\x89PNG"  # marked rates draw too


def test_teacher_found_through_the_layout_when_the_recorded_path_is_relative(tmp_path, monkeypatch):
    root = rate_dir(tmp_path, 10)
    _manifest(root, f"{10:064d}", {"negative": 5, "positive": 5})
    for method in ("tinybert", "hrkd"):
        _student(root, method, method, 1, 0.7, f"{10:064d}")
        rec_path = root / "student" / method / "seed-1" / "run.json"
        rec = json.loads(rec_path.read_text())
        rec["teacher"] = f"runs/elsewhere/teacher/{Path(rec['teacher']).name}"  # as a run started in another cwd wrote it
        rec_path.write_text(json.dumps(rec))
    _teacher(root, "single", 0.9)
    _teacher(root, "multi-domain", 0.91)
    (pt,) = fewshot_results(tmp_path).points
    assert pt.teacher_average == pytest.approx({"baseline": 90.0, "hrkd": 91.0})
    assert pt.chance == pytest.approx(50.0) and not pt.near_chance


# ---------------------------------------------------------------- counts per domain, confidence intervals


def test_improvement_interval_is_the_welch_interval_over_the_baseline_mean():
    a, b = [66.0, 65.0, 67.5], [60.0, 62.0, 61.0]
    lo, hi = improvement_interval(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
    base = np.mean(b)
    assert (lo, hi) == pytest.approx((100 * ref.low / base, 100 * ref.high / base))
    assert lo < 100 * (np.mean(a) - base) / base < hi
    assert improvement_interval([66.0], b) is None and improvement_interval([1.0, 1.0], [1.0, 1.0]) is None


def test_count_points_and_intervals_in_the_results(tmp_path):
    numbers = {Sample(percent=5): ([0.60, 0.62, 0.61], [0.66, 0.65, 0.68]),
               Sample(per_domain=40): ([0.70, 0.72, 0.71], [0.73, 0.74, 0.75])}
    for i, (point, (base, hrkd)) in enumerate(numbers.items()):
        for seed, (x, y) in enumerate(zip(base, hrkd), 1):
            _student(rate_dir(tmp_path, point), "tinybert", "tinybert", seed, x, f"{i:064d}")
            _student(rate_dir(tmp_path, point), "hrkd", "hrkd", seed, y, f"{i:064d}")
    result = fewshot_results(tmp_path)
    assert [p.label for p in result.points] == ["5%", "40/domain"]
    for pt, (base, hrkd) in zip(result.points, numbers.values()):
        lo, hi = improvement_interval([100 * v for v in hrkd], [100 * v for v in base])
        assert pt.improvement_ci["hrkd"] == pytest.approx((lo, hi))
    md = result.to_markdown()
    assert "| Sample |" in md and "HRKD 90% CI" in md and "| 40/domain |" in md and "Welch t-interval" in md
    lo, hi = result.points[1].improvement_ci["hrkd"]
    assert f"[{lo:+.1f}, {hi:+.1f}]" in md
    point = result.to_json()["points"][1]
    assert point["per_domain"] == 40 and point["rate_percent"] is None
    assert point["improvement_ci90_percent"]["hrkd"] == pytest.approx([lo, hi])
    assert [p.label for p in fewshot_results(tmp_path, rates=[Sample(per_domain=40)]).points] == ["40/domain"]
    assert plot_fewshot(result, tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
