"""Shell completion scripts for `hrkd`, as shipped in completions/.

The scripts ask `hrkd` itself for candidates at completion time, so new commands
and options complete without regenerating; `python -m hrkd_cli.completions`
rewrites the files, and a test keeps them identical to what typer generates.
"""

from __future__ import annotations

from pathlib import Path

from typer._completion_shared import get_completion_script

SHELLS = ("bash", "zsh", "fish")
COMPLETIONS_DIR = Path(__file__).resolve().parent.parent / "completions"


def script(shell: str) -> str:
    return get_completion_script(prog_name="hrkd", complete_var="_HRKD_COMPLETE", shell=shell)


def write_all(directory: Path = COMPLETIONS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for shell in SHELLS:
        path = directory / f"hrkd.{shell}"
        path.write_text(script(shell))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_all():
        print(p)
