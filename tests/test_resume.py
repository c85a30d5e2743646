"""A distillation killed with SIGKILL and restarted with --resume ends with the same metrics."""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tiny import tiny_preset_dict

from hrkd_cli.config import preset_to_toml, validate_preset


def cli(args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return [sys.executable, "-m", "hrkd_cli", *args], {"cwd": cwd, "env": env}


def test_kill_and_resume_gives_the_same_final_metrics(tmp_path, tiny_teacher_dir):
    raw = tiny_preset_dict(
        tmp_path / "a", tiny_teacher_dir,
        data={"max_seq_length": 96, "synthetic": {"num_domains": 3, "train_per_domain": 160, "dev_per_domain": 8, "test_per_domain": 16}},
        distill={"epochs": 3, "eval_every": 10, "log_every": 5},
    )
    preset = tmp_path / "tiny.toml"
    preset.write_text(preset_to_toml(validate_preset(raw, "tiny")))
    cmd, kw = cli(["distill", "--preset", str(preset)], tmp_path)
    subprocess.run(cmd, check=True, capture_output=True, **kw)
    full = json.loads((tmp_path / "a" / "student" / "hrkd" / "seed-1" / "run.json").read_text())

    shutil.copytree(tmp_path / "a", tmp_path / "b", ignore=shutil.ignore_patterns("student"))
    over = ["--set", f"run_dir=\"{tmp_path / 'b'}\""]
    cmd, kw = cli(["distill", "--preset", str(preset), *over], tmp_path)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    last = tmp_path / "b" / "student" / "hrkd" / "seed-1" / "last" / "hrkd.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.is_file() and json.loads(last.read_text())["step"] >= 30:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = json.loads(last.read_text())["step"]
    assert 30 <= killed_at < 120

    cmd, kw = cli(["distill", "--preset", str(preset), *over, "--resume"], tmp_path)
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"at step {killed_at}/" in done.stderr
    resumed = json.loads((tmp_path / "b" / "student" / "hrkd" / "seed-1" / "run.json").read_text())
    assert resumed["test"] == full["test"] and resumed["dev"] == full["dev"]
    assert resumed["runs"]["all"]["fit"]["history"] == full["runs"]["all"]["fit"]["history"]
    # the wall time is the whole run's: the training done before the kill (up to its last checkpoint) counts
    before = resumed["runs"]["all"]["resumed_after_s"]
    assert before > 0 and full["runs"]["all"]["resumed_after_s"] == 0
    assert resumed["wall_time_s"] > before and resumed["runs"]["all"]["wall_time_s"] > before
    # and training itself continued identically: the logged losses after the kill match exactly
    def log(run):
        return json.loads((tmp_path / run / "student" / "hrkd" / "seed-1" / "last" / "ratio_log.json").read_text())

    a, b = log("a"), log("b")
    assert [e["step"] for e in a] == [e["step"] for e in b]
    assert any(e["step"] > killed_at for e in b)
    for x, y in zip(a, b):
        assert abs(x["loss"] - y["loss"]) < 1e-6 and x["ratios"] == y["ratios"]


def test_a_damaged_training_state_is_one_line_naming_it(tiny_preset, cpu_runtime):
    """--resume reads the optimiser state through checkpoint's readers: a truncated file is named, not a traceback."""
    from hrkd_cli.errors import HrkdError
    from hrkd_cli import pipeline

    p = tiny_preset(distill={"method": "multi-domain"})
    out = pipeline.distill(p, cpu_runtime, say=lambda m: None)
    state = out / "last" / "train_state.safetensors"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(HrkdError, match=r"train_state\.safetensors: damaged safetensors file"):
        pipeline.distill(p, cpu_runtime, resume=True, say=lambda m: None)


class _Stop(Exception):
    """Stands in for a kill right after a step checkpoint."""


@pytest.mark.parametrize("method,module", [("hrkd", "hrkd_cli.train.setup"), ("meta-kd", "hrkd_cli.train.setup")])
def test_runtime_checkpoint_every_resumes_between_evaluations(method, module, tmp_path, tiny_teacher_dir, cpu_runtime, monkeypatch):
    """runtime.checkpoint_every saves last/ between dev evaluations (here before the first one), and a run
    stopped there and resumed ends exactly as an uninterrupted run."""
    from hrkd_cli import pipeline

    sections = dict(distill={"method": method, "epochs": 2}, runtime={"precision": "fp32", "threads": 1, "checkpoint_every": 3})
    a, p = (validate_preset(tiny_preset_dict(tmp_path / run, tiny_teacher_dir, **sections), "tiny") for run in "ab")
    full = json.loads((pipeline.distill(a, cpu_runtime, say=lambda m: None) / "run.json").read_text())

    mod = importlib.import_module(module)
    original, saved = mod.save_checkpoint, []

    def stop_after_step_6(path, *args, **kwargs):
        original(path, *args, **kwargs)
        meta = args[1]
        if path.name == "last" and meta.get("role") == "student":
            saved.append((meta["step"], meta["dev"]))
            if meta["step"] == 6:
                raise _Stop

    monkeypatch.setattr(mod, "save_checkpoint", stop_after_step_6)
    with pytest.raises(_Stop):
        pipeline.distill(p, cpu_runtime, say=lambda m: None)
    # 8 steps an epoch: steps 3 and 6 are step checkpoints, before any dev evaluation
    assert saved == [(3, {}), (6, {})]
    monkeypatch.setattr(mod, "save_checkpoint", original)
    resumed = json.loads((pipeline.distill(p, cpu_runtime, resume=True, say=lambda m: None) / "run.json").read_text())
    assert resumed["test"] == full["test"] and resumed["dev"] == full["dev"]
    runs = list(full["runs"])
    assert runs and all(resumed["runs"][k]["fit"]["history"] == full["runs"][k]["fit"]["history"] for k in runs)
