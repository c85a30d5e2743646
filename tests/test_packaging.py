"""The wheel: it carries the presets and completion scripts, and an installed copy finds them outside the repository."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hrkd_cli.completions import SHELLS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hrkd_cli"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the sources, so no build/ or egg-info lands in (or leaks from) the checkout."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(PACKAGE, src / "hrkd_cli", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(out), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("hrkd-*.whl")
    return whl


def test_wheel_carries_every_preset_and_completion_script(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    presets = sorted(p.name for p in (PACKAGE / "presets").glob("*.toml"))
    assert {"demo.toml", "amazon-cpu.toml", "mnli-cpu.toml"} <= set(presets)
    for name in presets:
        assert f"hrkd_cli/presets/{name}" in names
    for shell in SHELLS:
        assert f"hrkd_cli/completions/hrkd.{shell}" in names
    assert "hrkd_cli/completions/__main__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("presets/", "completions/", "tests/"))]


def test_installed_wheel_finds_its_presets_outside_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                           str(site), str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def hrkd(*args):
        return subprocess.run([sys.executable, "-m", "hrkd_cli", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True)

    where = subprocess.run([sys.executable, "-c", "import hrkd_cli; print(hrkd_cli.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the installed copy, not the checkout
    listed = hrkd("presets")
    assert listed.returncode == 0 and "demo" in listed.stdout and "amazon-cpu" in listed.stdout, listed.stderr
    shown = hrkd("presets", "show", "demo")
    assert shown.returncode == 0 and 'name = "demo"' in shown.stdout and "[distill]" in shown.stdout, shown.stderr
    script = (site / "hrkd_cli" / "completions" / "hrkd.bash").read_text()
    assert script == (PACKAGE / "completions" / "hrkd.bash").read_text()
