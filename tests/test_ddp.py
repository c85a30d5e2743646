"""Two gloo processes on this CPU reproduce the one-process run (same global batch, seed, dropout off)."""

import json
import os
import shutil
import subprocess
import sys

from tiny import tiny_preset_dict

from hrkd_cli.config import preset_to_toml, validate_preset


def run_cli(args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "hrkd_cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_processes_match_one(tmp_path, tiny_teacher_dir):
    raw = tiny_preset_dict(
        tmp_path / "one", tiny_teacher_dir,
        data={"synthetic": {"num_domains": 3, "train_per_domain": 40, "dev_per_domain": 8, "test_per_domain": 8}},
        distill={"epochs": 2, "dropout": False, "gat_dropout": 0.1, "log_every": 1, "eval_every": 10},
    )
    preset = tmp_path / "tiny.toml"
    preset.write_text(preset_to_toml(validate_preset(raw, "tiny")))
    run_cli(["distill", "--preset", str(preset)], tmp_path)
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    shutil.rmtree(tmp_path / "two" / "student")
    run_cli(["distill", "--preset", str(preset), "--set", f"run_dir=\"{tmp_path / 'two'}\"", "--nproc", "2"], tmp_path)

    def log(run):
        return json.loads((tmp_path / run / "student" / "hrkd" / "seed-1" / "last" / "ratio_log.json").read_text())

    one, two = log("one"), log("two")
    assert len(one) == len(two) == 20
    for a, b in zip(one, two):
        assert a["step"] == b["step"]
        assert abs(a["loss"] - b["loss"]) < 1e-4, (a["step"], a["loss"], b["loss"])
        for ra, rb in zip(a["ratios"], b["ratios"]):
            assert max(abs(x - y) for x, y in zip(ra, rb)) < 1e-4
    # the ratios are not trivially uniform: GAT dropout is on and draws the same masks in both runs
    assert any(abs(x - 1 / 3) > 1e-3 for e in one for layer in e["ratios"] for x in layer)
