"""TensorBoard event files (runtime.tensorboard): the scalars a run writes, read back with TensorBoard's own
reader; numbers unchanged by the setting; the missing extra as a one-line error before any work."""

from __future__ import annotations

import json
import sys

import pytest

from cli_run import run_main
from tiny import tiny_preset_dict
from hrkd_cli.config import preset_to_toml, validate_preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.events import EVENTS_DIR, EventLog, event_log, require_tensorboard, train_scalars
from hrkd_cli import pipeline
from hrkd_cli.train.students import student_dir

accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")  # the extra

DOMAINS = ["books", "films", "gadgets"]


def scalars(path) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value)] as TensorBoard itself reads the directory."""
    ea = accumulator.EventAccumulator(str(path))
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def test_distillation_writes_every_scalar_and_changes_no_number(tmp_path, tiny_teacher_dir, cpu_runtime):
    def run(name, on):
        raw = tiny_preset_dict(tmp_path / name, tiny_teacher_dir, runtime={"tensorboard": on}, distill={"log_every": 3})
        p = validate_preset(raw, "tiny")
        return p, pipeline.distill(p, cpu_runtime, say=lambda m: None)

    p_off, off = run("off", False)
    p_on, on = run("on", True)
    # a runtime setting: same hashes (artifact reuse), same run directory names
    for sections in (("data",), ("teacher", "data"), ("data", "teacher", "student", "distill")):
        assert p_on.section_hash(*sections) == p_off.section_hash(*sections)
    assert on.relative_to(tmp_path / "on") == off.relative_to(tmp_path / "off")
    assert not (off / EVENTS_DIR).exists()

    # the same numbers with and without: test, dev, the dev history, every logged step
    a, b = (json.loads((x / "run.json").read_text()) for x in (off, on))
    assert a["test"] == b["test"] and a["dev"] == b["dev"]
    assert a["runs"]["all"]["fit"]["history"] == b["runs"]["all"]["fit"]["history"]
    log_off, log = (json.loads((x / "last" / "ratio_log.json").read_text()) for x in (off, on))
    assert log_off == log

    got = scalars(on / EVENTS_DIR)
    entry = log[0]
    M = len(entry["ratios"]) - 1
    want = {"loss/total", "lr", "throughput/examples_per_s", "dev/average"}
    for d in DOMAINS:
        want |= {f"dev/{d}", f"loss/embd/{d}", f"loss/pred/{d}", f"loss/attn/{d}", f"loss/hidn/{d}"}
        want |= {f"loss/{t}/{d}/layer{m}" for t in ("attn", "hidn") for m in range(1, M + 1)}
        want |= {f"ratios/layer{m}/{d}" for m in range(M + 1)}
        want |= {f"similarity/layer{m}/{d}/layer{j}" for m in range(1, M + 1) for j in range(m + 1)}
    assert want <= set(got), sorted(want - set(got))
    # one point per logged step (x = steps done), carrying the logged values
    assert [s for s, _ in got["loss/total"]] == [e["step"] + 1 for e in log]
    for e in log:
        at = {tag: dict(points).get(e["step"] + 1) for tag, points in got.items()}
        assert at["loss/total"] == pytest.approx(e["loss"]) and at["lr"] == pytest.approx(e["lr"])
        for i, d in enumerate(DOMAINS):
            assert at[f"loss/embd/{d}"] == pytest.approx(e["terms"]["embd"][i])
            assert at[f"loss/hidn/{d}/layer2"] == pytest.approx(e["terms"]["hidn"][i][1])
            assert at[f"loss/attn/{d}"] == pytest.approx(sum(e["terms"]["attn"][i]))
            assert at[f"ratios/layer1/{d}"] == pytest.approx(e["ratios"][1][i])
        # the per-domain terms add up to the logged sums
        assert sum(e["terms"]["pred"]) == pytest.approx(e["pred"], rel=1e-5)
        assert at["throughput/examples_per_s"] > 0
    history = b["runs"]["all"]["fit"]["history"]
    assert got["dev/average"] == [(h["step"], pytest.approx(h["average"])) for h in history]

    # the teacher trained on the way writes its own: cross-entropy per domain
    teacher = scalars(tmp_path / "on" / "teacher" / "multi-domain" / EVENTS_DIR)
    assert {f"loss/ce/{d}" for d in DOMAINS} | {"loss/total", "dev/average", "lr"} <= set(teacher)


def test_a_per_domain_method_writes_one_directory_per_domain(tiny_preset, cpu_runtime):
    out = pipeline.distill(tiny_preset(distill={"method": "tinybert"}, runtime={"tensorboard": True}), cpu_runtime,
                    say=lambda m: None)
    for d in DOMAINS:
        got = scalars(out / d / EVENTS_DIR)
        assert {f"loss/embd/{d}", f"dev/{d}", "loss/total"} <= set(got)
        assert not any(f"/{other}" in tag for tag in got for other in DOMAINS if other != d)


def test_the_general_stage_writes_a_run_of_its_own(tiny_preset, cpu_runtime):
    narrow = {"init": "random", "num_layers": 2, "hidden_size": 16, "num_heads": 4, "intermediate_size": 64,
              "general_epochs": 1}
    out = pipeline.distill(tiny_preset(student=narrow, runtime={"tensorboard": True}, distill={"log_every": 2}),
                           cpu_runtime, say=lambda m: None)
    general = json.loads((out / "run.json").read_text())["runs"]["all"]["meta"]["general"]
    got = scalars(out / EVENTS_DIR / "general")
    steps = general["steps"]
    assert {"loss/total", "loss/embd", "loss/attn", "loss/hidn", "lr", "throughput/examples_per_s"} <= set(got)
    assert [s for s, _ in got["loss/total"]] == sorted({s + 1 for s in range(0, steps, 2)} | {steps})
    logged = dict(got["loss/total"])
    for entry in general["log"]:  # the record's points are among the events, with their values
        assert logged[entry["step"] + 1] == pytest.approx(entry["loss"])
    # held-out L_general before (step 0) and after (the last step), per domain and in total
    assert got["heldout/total"] == [(0, pytest.approx(general["dev_before"]["total"])),
                                    (steps, pytest.approx(general["dev_after"]["total"]))]
    assert {f"heldout/{d}" for d in DOMAINS} <= set(got)
    # the task stage's run is another directory, with its own steps from 1
    assert not any(tag.startswith("heldout/") for tag in scalars(out / EVENTS_DIR))


def test_train_scalars_names_each_value():
    logs = {"step": 4, "lr": 1e-4, "loss": 2.5, "embd": 0.3, "stage": "one", "lambda_mean": 0.7,
            "terms": {"embd": [0.1, 0.2], "attn": [[1.0, 2.0], [3.0, 4.0]]},
            "ratios": [[0.4, 0.6]], "similarity": [[[0.25, 0.75], [0.5, 0.5]]], "grad_graph": [0.0, 1.5]}
    assert train_scalars(logs, 12.0, ["a", "b"]) == {
        "lr": 1e-4, "throughput/examples_per_s": 12.0, "loss/total": 2.5, "loss/embd": 0.3, "train/lambda_mean": 0.7,
        "loss/embd/a": 0.1, "loss/embd/b": 0.2, "loss/attn/a": 3.0, "loss/attn/a/layer1": 1.0, "loss/attn/a/layer2": 2.0,
        "loss/attn/b": 7.0, "loss/attn/b/layer1": 3.0, "loss/attn/b/layer2": 4.0,
        "ratios/layer0/a": 0.4, "ratios/layer0/b": 0.6,
        "similarity/layer1/a/layer0": 0.25, "similarity/layer1/a/layer1": 0.75,
        "similarity/layer1/b/layer0": 0.5, "similarity/layer1/b/layer1": 0.5,
        "gradients/graph/layer0": 0.0, "gradients/graph/layer1": 1.5,
    }


def test_a_resumed_or_repeated_run_replaces_the_steps_it_trains_again(tmp_path, monkeypatch):
    import time
    import types

    from tensorboard.summary.writer import event_file_writer

    def write(start, steps, value):
        # runs seconds apart, as a resumed run is: event files are ordered by the time in their names
        later = time.time() + 10 * value
        monkeypatch.setattr(event_file_writer, "time", types.SimpleNamespace(time=lambda: later))
        log = EventLog(tmp_path, ["a"])
        log.start(start)
        for s in steps:
            log.train(s, {"lr": 0.1, "loss": value + s}, 1.0)
        log.close()

    write(0, [1, 2, 3, 4], 10.0)
    write(3, [3, 4, 5], 20.0)  # resumed at step 3: the first run's 3 and 4 are trained again
    assert scalars(tmp_path)["loss/total"] == [(1, 11.0), (2, 12.0), (3, 23.0), (4, 24.0), (5, 25.0)]
    write(0, [1], 30.0)  # a run started afresh in the same directory replaces all of it
    assert scalars(tmp_path)["loss/total"] == [(1, 31.0)]


def test_only_rank_0_writes(tiny_preset, tmp_path):
    from hrkd_cli.runtime import Runtime

    import torch

    p = tiny_preset(runtime={"tensorboard": True})
    assert event_log(p, tmp_path, Runtime(torch.device("cpu"), "fp32", rank=1, world_size=2), DOMAINS) is None
    assert event_log(p, tmp_path, Runtime(torch.device("cpu"), "fp32"), DOMAINS).log_dir == tmp_path / EVENTS_DIR
    assert event_log(tiny_preset(), tmp_path, Runtime(torch.device("cpu"), "fp32"), DOMAINS) is None


def test_without_the_extra_the_setting_is_one_line_before_any_work(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard...` now raises ImportError
    with pytest.raises(HrkdError, match=r"pip install 'hrkd\[tensorboard\]'"):
        require_tensorboard()
    preset = tmp_path / "tiny.toml"
    preset.write_text(preset_to_toml(validate_preset(tiny_preset_dict(tmp_path / "run", tiny_teacher_dir), "tiny")))
    for argv in (["distill", "--tensorboard"], ["teach", "--set", "runtime.tensorboard=true"],
                 ["ablate", "--progressive", "--tensorboard"], ["fewshot", "--rates", "50", "--tensorboard"],
                 ["bench", "distill", "--tensorboard"]):
        code, _, err = run_main([*argv, "--preset", str(preset)], capsys, monkeypatch)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert lines[0] == "error: runtime.tensorboard = true needs the tensorboard extra: pip install 'hrkd[tensorboard]'"
        assert not (tmp_path / "run").exists()  # nothing prepared, trained or created


def test_the_flag_sets_the_runtime_setting_and_nothing_hashed(tmp_path, tiny_teacher_dir):
    from hrkd_cli.cli_common import _load

    preset = tmp_path / "tiny.toml"
    preset.write_text(preset_to_toml(validate_preset(tiny_preset_dict(tmp_path / "run", tiny_teacher_dir), "tiny")))
    on, off = _load(str(preset), [], tensorboard=True, data=False), _load(str(preset), [], data=False)
    assert on.runtime.tensorboard and not off.runtime.tensorboard
    assert student_dir(on) == student_dir(off)
    assert on.model_dump(exclude={"runtime"}) == off.model_dump(exclude={"runtime"})
