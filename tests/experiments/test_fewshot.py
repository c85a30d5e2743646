"""`hrkd fewshot`: rates and counts, per-point run directories, front-of-split sampling, the few-shot lr."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import hrkd_cli.experiments.sweep as sweep_mod
import hrkd_cli.train.setup as setup_mod
from hrkd_cli.config import DistillConfig
from hrkd_cli.errors import HrkdError
from hrkd_cli.experiments.fewshot import arm_tags, fewshot, parse_counts, parse_methods, parse_rates, rate_preset
from hrkd_cli.experiments.samples import Sample, rate_dir
from hrkd_cli.experiments.fewshot_results import fewshot_results


TWO_DOMAINS = {"num_domains": 2, "train_per_domain": 32, "dev_per_domain": 16, "test_per_domain": 16}


def quiet(msg: str) -> None:
    pass


def test_parse_rates():
    assert parse_rates("1,2,5,10,20") == [1.0, 2.0, 5.0, 10.0, 20.0]
    assert parse_rates("20, 5%,5,100") == [5.0, 20.0, 100.0]
    assert parse_rates("0.5") == [0.5]
    for bad in ("0", "-5", "101", "5,200", "abc", "", "nan", "inf"):
        with pytest.raises(HrkdError):
            parse_rates(bad)
    with pytest.raises(HrkdError, match=r"outside \(0, 100\]"):
        parse_rates("0,5")


def test_rate_preset_has_its_own_run_dir(tiny_preset):
    p = tiny_preset()
    q = rate_preset(p, 5)
    assert q.data.sample_rate == pytest.approx(0.05)
    assert Path(q.run_dir) == Path(p.run_dir) / "fewshot" / "rate-5"
    assert rate_dir(p.run_dir, 2.5).name == "rate-2.5"
    assert p.data.sample_rate == 1.0  # the full-data preset is unchanged


def test_sampling_takes_the_front_of_each_seeded_training_split(tiny_preset):
    from hrkd_cli.batches import load_splits
    from hrkd_cli.pipeline import ensure_prepared

    p = tiny_preset()
    full = ensure_prepared(p, quiet)
    for rate in (25, 50):
        few = ensure_prepared(rate_preset(p, rate), quiet)
        assert few.hash != full.hash
        for d in full.domains:
            f_train, s_train = load_splits(full, "train", [d])[0], load_splits(few, "train", [d])[0]
            n = math.ceil(rate / 100 * len(f_train))
            assert len(s_train) == n < len(f_train)
            assert s_train.text == f_train.text[:n] and s_train.label == f_train.label[:n]
            for split in ("dev", "test"):  # unchanged
                assert load_splits(few, split, [d])[0].text == load_splits(full, split, [d])[0].text


def optimiser_lrs(monkeypatch) -> list:
    """The learning rate of every parameter group the students' optimisers are built with, as they are built."""
    lrs = []
    real_start = setup_mod.start

    def spy(model, groups, settings, *args, **kwargs):
        if isinstance(settings, DistillConfig):  # a student's (the teachers are set up with their TeacherConfig)
            lrs.extend(lr for _, lr in groups)
        return real_start(model, groups, settings, *args, **kwargs)

    monkeypatch.setattr(setup_mod, "start", spy)
    return lrs


def test_fewshot_trains_per_rate_with_fewshot_lr_and_reuses_seeds(tiny_preset, cpu_runtime, monkeypatch):
    p = tiny_preset(distill={"lr": 1e-3, "fewshot_lr": 3e-4}, data={"synthetic": TWO_DOMAINS})
    lrs = optimiser_lrs(monkeypatch)
    runs = fewshot(p, cpu_runtime, [50.0], [1, 2], say=quiet)
    assert set(runs[50.0]) == {"tinybert", "hrkd"}
    for method, paths in runs[50.0].items():
        assert len(paths) == 2
        for path in paths:
            assert Path(p.run_dir) / "fewshot" / "rate-50" in path.parents
            assert json.loads((path / "run.json").read_text())["preset"]["data"]["sample_rate"] == 0.5
    assert lrs and set(lrs) == {3e-4}  # every student used distill.fewshot_lr
    for kind in ("single", "multi-domain"):  # teachers trained on the sample, in the rate's directory
        rec = json.loads((rate_dir(p.run_dir, 50) / "teacher" / kind / "run.json").read_text())
        assert rec["preset"]["data"]["sample_rate"] == 0.5
    assert not (Path(p.run_dir) / "student").exists()  # the full-data run directory is untouched

    monkeypatch.setattr(sweep_mod, "distill", lambda *a, **k: pytest.fail("a finished seed was distilled again"))
    assert fewshot(p, cpu_runtime, [50.0], [1, 2], say=quiet) == runs
    result = fewshot_results(Path(p.run_dir), runs=runs)
    [pt] = result.points
    assert pt.rate == 50.0 and set(pt.train_counts.values()) == {16}
    assert "hrkd" in pt.improvement


def test_parse_methods_keeps_the_run_order():
    assert parse_methods("hrkd,tinybert") == ["tinybert", "hrkd"]
    assert parse_methods(" meta-kd ") == ["meta-kd"]
    for bad in ("", "hrkd,", "multi-domain", "HRKD"):
        with pytest.raises(HrkdError, match="is not one of tinybert, hrkd, meta-kd"):
            parse_methods(bad)


def test_arms_run_apart_train_only_their_own_teacher_and_add_up_to_the_whole_point(tiny_preset, cpu_runtime, monkeypatch):
    """--methods splits one point over calls (processes, machines): each arm trains its own teacher
    only, and a later full call reuses every arm's seeds instead of distilling them again."""
    p = tiny_preset(data={"synthetic": TWO_DOMAINS})
    point = Sample(per_domain=16)
    teachers = rate_dir(p.run_dir, point) / "teacher"
    hrkd_runs = fewshot(p, cpu_runtime, [point], [1, 2], methods=["hrkd"], say=quiet)
    assert set(hrkd_runs[point]) == {"hrkd"}
    assert sorted(d.name for d in teachers.iterdir()) == ["multi-domain"]
    assert fewshot_results(Path(p.run_dir), rates=[point]).points == []  # no baseline yet: no row
    base_runs = fewshot(p, cpu_runtime, [point], [1, 2], methods=["tinybert"], say=quiet)
    assert sorted(d.name for d in teachers.iterdir()) == ["multi-domain", "single"]

    monkeypatch.setattr(sweep_mod, "distill", lambda *a, **k: pytest.fail("a finished seed was distilled again"))
    whole = fewshot(p, cpu_runtime, [point], [1, 2], say=quiet)
    assert whole[point] == {**base_runs[point], **hrkd_runs[point]}
    [pt] = fewshot_results(Path(p.run_dir), rates=[point]).points
    assert pt.per_domain == 16 and "hrkd" in pt.improvement


# ---------------------------------------------------------------- Figure 2 numbers from records


def test_arm_tags_name_the_directories_a_call_runs_into(tiny_preset):
    assert arm_tags(tiny_preset()) == {"tinybert": "tinybert", "hrkd": "hrkd", "meta-kd": "meta-kd"}
    assert arm_tags(tiny_preset(distill={"tag": "lr"})) == {"tinybert": "tinybert-lr", "hrkd": "hrkd-lr", "meta-kd": "meta-kd-lr"}


def test_parse_counts():
    assert parse_counts("1390,2300, 500,500") == [500, 1390, 2300]
    for bad, message in (("0", "below 1"), ("-3", "below 1"), ("1.5", "not a whole number"), ("2%", "not a whole number"),
                         ("", "no count given")):
        with pytest.raises(HrkdError, match=message):
            parse_counts(bad)


def test_parse_per_domain_counts():
    got = parse_counts("500,books:12+films:20+gadgets:16")
    assert got == [500, (("books", 12), ("films", 20), ("gadgets", 16))]
    for bad, message in (("books:12+books:3", "named twice"), (":12", "names no domain"), ("books:x", "not a whole number"),
                         ("books:0", "below 1")):
        with pytest.raises(HrkdError, match=message):
            parse_counts(bad)


def test_per_domain_counts_give_each_domain_its_own_training_size(tiny_preset):
    from hrkd_cli.recipes.prepare import prepare

    p = tiny_preset()  # domains books, films, gadgets with 32 training examples each
    point = Sample(counts=(("books", 12), ("films", 20), ("gadgets", 16)))
    q = rate_preset(p, point)
    assert Path(q.run_dir) == Path(p.run_dir) / "fewshot" / "count-books12-films20-gadgets16"
    assert q.data.sample_counts == {"books": 12, "films": 20, "gadgets": 16} and q.data.sampled
    assert point.label == "books:12+films:20+gadgets:16"
    manifest = prepare(q, say=quiet)
    assert {d: c["train"]["total"] for d, c in manifest["counts"].items()} == {"books": 12, "films": 20, "gadgets": 16}
    for counts, message in (({"books": 12, "films": 20, "gadgets": 16, "poetry": 3}, "unknown domain 'poetry'"),
                            ({"books": 12, "films": 20}, "no count for domain 'gadgets'"),
                            ({"books": 12, "films": 20, "gadgets": 40}, "40 training examples of domain 'gadgets'")):
        bad = rate_preset(p, Sample(counts=tuple(counts.items())))
        with pytest.raises(HrkdError, match=message):
            prepare(bad, say=quiet)


def test_a_count_point_has_its_own_run_dir_and_the_fewshot_lr(tiny_preset):
    p = tiny_preset(distill={"lr": 1e-3, "fewshot_lr": 3e-4})
    q = rate_preset(p, Sample(per_domain=10))
    assert Path(q.run_dir) == Path(p.run_dir) / "fewshot" / "count-10"
    assert (q.data.sample_per_domain, q.data.sample_rate, q.data.sampled) == (10, 1.0, True)  # -> distill.fewshot_lr
    assert rate_preset(p, Sample(percent=5)).model_dump() == rate_preset(p, 5).model_dump()  # a number is a rate
    assert Sample(per_domain=10).label == "10/domain" and Sample(percent=2.5).label == "2.5%"


def test_a_count_above_a_domains_training_split_stops_fewshot_before_any_training(tiny_preset, cpu_runtime):
    p = tiny_preset(data={"synthetic": TWO_DOMAINS})  # 32 training examples per domain
    with pytest.raises(HrkdError, match=r"sample of 33 training examples of domain '\w+': it has only 32"):
        fewshot(p, cpu_runtime, [Sample(per_domain=8), Sample(per_domain=33)], [1], say=quiet)
    assert (rate_dir(p.run_dir, Sample(per_domain=8)) / "data" / "manifest.json").is_file()  # prepared, nothing trained
    assert not (rate_dir(p.run_dir, Sample(per_domain=8)) / "teacher").exists()


def test_fewshot_by_count_trains_on_that_many_examples_per_domain_at_the_fewshot_lr(tiny_preset, cpu_runtime, monkeypatch):
    p = tiny_preset(distill={"lr": 1e-3, "fewshot_lr": 3e-4}, data={"synthetic": TWO_DOMAINS})
    lrs = optimiser_lrs(monkeypatch)
    point = Sample(per_domain=12)
    runs = fewshot(p, cpu_runtime, [point], [1], say=quiet)
    for path in runs[point]["hrkd"] + runs[point]["tinybert"]:
        assert rate_dir(p.run_dir, point) in path.parents
        assert json.loads((path / "run.json").read_text())["preset"]["data"]["sample_per_domain"] == 12
    assert lrs and set(lrs) == {3e-4}
    [pt] = fewshot_results(Path(p.run_dir), runs=runs).points
    assert (pt.rate, pt.per_domain, pt.label) == (None, 12, "12/domain") and set(pt.train_counts.values()) == {12}
