"""Shell completion scripts for `hrkd`, shipped as package data beside this module (hrkd.bash, hrkd.zsh, hrkd.fish).

The scripts ask `hrkd` itself for candidates at completion time, so new commands
and options complete without regenerating; `python -m hrkd_cli.completions`
rewrites the files, and a test keeps them identical to what typer generates.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from pathlib import Path

from typer._completion_shared import get_completion_script

SHELLS = ("bash", "zsh", "fish")
# Found through importlib.resources, so an installed wheel finds its own copy wherever it is installed.
COMPLETIONS_DIR: Traversable = files(__name__)


def script(shell: str) -> str:
    return get_completion_script(prog_name="hrkd", complete_var="_HRKD_COMPLETE", shell=shell)


def write_all(directory: Path | None = None) -> list[Path]:
    """Regenerate the scripts (into the package's own directory unless `directory` is given)."""
    with as_file(COMPLETIONS_DIR) as own:
        directory = Path(directory or own)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for shell in SHELLS:
            path = directory / f"hrkd.{shell}"
            path.write_text(script(shell))
            paths.append(path)
    return paths
