"""Run the `hrkd` entry point in-process, as a user would from a shell (importable as `from cli_run import run_main`)."""

from __future__ import annotations

import sys


def run_main(argv, capsys, monkeypatch):
    """-> (exit code, stdout, stderr) of `hrkd ARGV`."""
    from hrkd_cli import cli

    monkeypatch.setattr(sys, "argv", ["hrkd", *argv])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err
