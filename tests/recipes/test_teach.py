import json
import shutil

import pytest

from hrkd_cli.model.checkpoint import members, read_meta
from hrkd_cli.errors import HrkdError
from hrkd_cli.pipeline import teach
from hrkd_cli.recipes.teach import reusable_teacher


@pytest.mark.parametrize("kind,heads", [("multi-domain", 3), ("mtl", 3), ("mix", 1)])
def test_shared_teachers_train_and_record_dev_and_test(tiny_preset, cpu_runtime, kind, heads):
    p = tiny_preset(teacher={"kind": kind})
    out = teach(p, cpu_runtime, say=lambda m: None)
    record = json.loads((out / "run.json").read_text())
    assert record["kind"] == kind and set(record["test"]) == {"books", "films", "gadgets", "average"}
    assert 0.0 <= record["test"]["average"] <= 1.0
    member = members(out)["books"]
    assert read_meta(member)["num_heads"] == heads
    assert (member / "model.safetensors").is_file() and (member / "tokenizer.json").is_file()
    assert reusable_teacher(p, kind, record["data_hash"]) == out


def test_single_teachers_are_one_model_per_domain(tiny_preset, cpu_runtime):
    out = teach(tiny_preset(teacher={"kind": "single"}), cpu_runtime, say=lambda m: None)
    group = members(out)
    assert set(group) == {"books", "films", "gadgets"}
    assert len(set(group.values())) == 3
    assert read_meta(group["films"])["domains"] == ["films"]


def test_per_domain_best_snapshots(tiny_preset, cpu_runtime):
    p = tiny_preset(teacher={"kind": "multi-domain", "per_domain_best": True, "epochs": 2, "eval_every": 4})
    out = teach(p, cpu_runtime, say=lambda m: None)
    group = members(out)
    assert all(path.name == f"best-{d}" for d, path in group.items())


def test_teacher_changes_invalidate_reuse(tiny_preset, cpu_runtime):
    p = tiny_preset()
    out = teach(p, cpu_runtime, say=lambda m: None)
    data_hash = read_meta(out)["data_hash"]
    assert reusable_teacher(tiny_preset(teacher={"lr": 5e-4}), "multi-domain", data_hash) is None
    assert reusable_teacher(p, "multi-domain", "0" * 64) is None


def test_exclude_unknown_domain_and_resume_without_checkpoint(tiny_preset, cpu_runtime):
    with pytest.raises(HrkdError, match="exclude_domain='toys'"):
        teach(tiny_preset(teacher={"exclude_domain": "toys"}), cpu_runtime, say=lambda m: None)
    with pytest.raises(HrkdError, match="--resume: no checkpoint"):
        teach(tiny_preset(), cpu_runtime, resume=True, say=lambda m: None)


def test_sequence_length_above_the_model_limit(tiny_preset, cpu_runtime):
    # The tiny teacher has 128 positions; the schema allows up to 512.
    with pytest.raises(HrkdError, match="exceeds the model's limit of 128"):
        teach(tiny_preset(data={"max_seq_length": 256}), cpu_runtime, say=lambda m: None)


def test_single_teachers_resume_where_they_stopped(tiny_preset, cpu_runtime):
    # Stopped after its first domain: --resume keeps that teacher and trains the others afresh.
    p = tiny_preset(teacher={"kind": "single"})
    out = teach(p, cpu_runtime, say=lambda m: None)
    before = json.loads((out / "run.json").read_text())["test"]
    kept = out / "books" / "best" / "model.safetensors"
    stamp = kept.stat().st_mtime_ns
    (out / "run.json").unlink()
    for d in ("films", "gadgets"):
        shutil.rmtree(out / d)
    teach(p, cpu_runtime, resume=True, say=lambda m: None)
    assert kept.stat().st_mtime_ns == stamp
    assert json.loads((out / "run.json").read_text())["test"] == before
