"""Start-up time of `hrkd` commands, two source trees side by side in one run.

    python tools/startup_time.py                      # this tree against the last commit (HEAD)
    python tools/startup_time.py --before main --runs 15
    python tools/startup_time.py --importtime hrkd_cli.config hrkd_cli.compare

Each command (default: `--help`, `--version`, `presets`) runs as `python -m hrkd_cli ...` from both trees in
turn, run after run (interleaved, so a busy machine slows both alike); the table gives the median wall-clock
time and how many modules the command imported. ``--importtime MODULE...`` adds what importing each module
costs on top of what `hrkd --help` already imports (python -X importtime, this tree): the figures behind the
imports cli.py and its neighbours keep inside functions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["--version"], ["presets"])
MARK = "hrkd-startup-mark"


def checkout(ref: str, into: Path) -> Path:
    """The package as committed at ``ref``, unpacked under ``into``."""
    archive = into / "before.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", ref, "hrkd_cli"], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def run_once(root: Path, args: list[str], count: bool = False) -> float:
    """Seconds one `python -m hrkd_cli ARGS` takes with ``root`` first on the path; with ``count``, instead the
    number of modules it imports (python -X importtime, whose logging would slow the timed runs)."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "100"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *(["-X", "importtime"] if count else []), "-m", "hrkd_cli", *args],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"hrkd {' '.join(args)} from {root} exited {done.returncode}")
    return sum(line.startswith("import time:") for line in done.stderr.splitlines()) - 1 if count else seconds


def marginal_ms(module: str) -> float:
    """Milliseconds importing ``module`` adds after `import hrkd_cli.cli` (0 when it is already imported)."""
    code = f"import hrkd_cli.cli, sys; sys.stderr.write('{MARK}\\n'); import {module}"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    after = done.stderr.split(MARK, 1)[1].splitlines()
    rows = [line.split("|") for line in after if line.startswith("import time:")]
    return next((int(r[1]) / 1000 for r in rows if r[2].strip() == module), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD", help="git ref of the tree to compare with (default HEAD)")
    parser.add_argument("--runs", type=int, default=10, help="runs of each command from each tree")
    parser.add_argument("--importtime", nargs="*", default=[], metavar="MODULE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {f"before ({args.before})": checkout(args.before, Path(tmp)), "after (this tree)": REPO}
        print(f"{'command':<12} {'tree':<22} {'median s':>9} {'min s':>7} {'max s':>7} {'modules':>8}")
        for command in COMMANDS:
            times: dict[str, list[float]] = {name: [] for name in trees}
            modules = {name: run_once(root, command, count=True) for name, root in trees.items()}
            for _ in range(args.runs):
                for name, root in trees.items():
                    times[name].append(run_once(root, command))
            for name, t in times.items():
                print(f"{' '.join(command):<12} {name:<22} {statistics.median(t):9.3f} {min(t):7.3f} {max(t):7.3f} "
                      f"{modules[name]:8d}")
    for module in args.importtime:
        print(f"import {module}: +{marginal_ms(module):.1f} ms after `import hrkd_cli.cli`")


if __name__ == "__main__":
    main()
