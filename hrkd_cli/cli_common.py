"""What every `hrkd` command module shares: the typer app, the option types, loading a preset, the runtime.

Imports point one way: cli.py and cli_experiments.py import this module (and
cli.py imports cli_experiments to register its commands); nothing here imports
either of them.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from hrkd_cli import __version__
from hrkd_cli.errors import HrkdError
from hrkd_cli.events import require_tensorboard
from hrkd_cli.fsio import check_writable_dir

app = typer.Typer(
    name="hrkd",
    help="Hierarchical Relational Knowledge Distillation (HRKD, EMNLP 2021) and its baselines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)

out = Console()
err = Console(stderr=True)

PresetOpt = typer.Option("demo", "--preset", "-p", help="preset name (see `hrkd presets`) or path to a TOML file")
SetOpt = typer.Option(None, "--set", help="override a preset field: section.key=value (repeatable)")
PrecisionOpt = typer.Option(None, "--precision", help="bf16 (CPU autocast) or fp32; default: the preset's runtime.precision")
NprocOpt = typer.Option(None, "--nproc", help="processes under torchrun (DDP; gloo on CPU, NCCL on GPU); at least 1")
TensorboardOpt = typer.Option(False, "--tensorboard", help="also write TensorBoard event files under each run "
                              "directory (sets runtime.tensorboard; needs the tensorboard extra)")
SourceOpt = typer.Option(
    None, "--source", help="source directory or file (sets data.path; the prepared data remembers it for later commands)")


def version() -> str:
    """The installed package's version (package metadata), or the source tree's."""
    # lazy: importlib.metadata costs ~20 ms at start-up and only --version reads it
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("hrkd")
    except PackageNotFoundError:
        return __version__


def _print_version(value: bool) -> None:
    if value:
        out.print(f"hrkd {version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="print the version and exit"),
) -> None:
    pass


def say(msg: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        err.print(f"[cyan]hrkd[/cyan] {msg}", highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    """The one line every failure ends in (the message is printed as it is, never as markup)."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _option_overrides(set_: Optional[List[str]], fields: dict[str, Optional[str]]) -> list[str]:
    """--set overrides, then one `key="value"` override per string option given on the command line."""
    return list(set_ or []) + [f"{key}={_toml_str(value)}" for key, value in fields.items() if value]


def _sets(overrides: list[str], key: str) -> bool:
    return any(o.split("=", 1)[0].strip() == key for o in overrides)


def _load(preset: str, overrides: Optional[List[str]], precision: Optional[str] = None, nproc: Optional[int] = None,
          source: Optional[str] = None, data: bool = True, tensorboard: bool = False):
    """The validated preset with the command line's overrides.

    ``source`` (--source) sets data.path. With ``data`` (every command that reads or prepares data), the
    source is settled as hrkd_cli.data.sources.choose_source says: a source given to a synthetic preset is an
    error, and without one the source the prepared data remembers is used.
    """
    from hrkd_cli.config import load_preset  # lazy: pydantic costs ~0.15 s at start-up; --help needs none

    if nproc is not None and nproc < 1:
        raise HrkdError(f"--nproc {nproc}: the number of processes must be at least 1")
    extra = list(overrides or [])
    if source is not None:
        extra.append(f"data.path={_toml_str(source)}")
    if precision:
        extra.append(f"runtime.precision={precision}")
    if nproc is not None:
        extra.append(f"runtime.nproc={nproc}")
    if tensorboard:
        extra.append("runtime.tensorboard=true")
    p = load_preset(preset, extra)
    if data:
        # lazy: the data package costs ~30 ms at start-up; --help needs none
        from hrkd_cli.data.sources import choose_source, choose_unlabeled

        given, via = (source, "--source") if source is not None else (None, "")
        if given is None and _sets(extra, "data.path"):
            given, via = p.data.path, "--set data.path"
        choose_source(p, given, via=via, say=say)
        choose_unlabeled(p, _sets(extra, "data.unlabeled"), say=say)
    return p


def _relaunch_under_torchrun(nproc: int) -> None:
    """Re-run this very command under torchrun with ``nproc`` processes, then exit with its status."""
    argv = [a for a in sys.argv[1:]]
    cleaned, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        cleaned.append(a)
    # lazy: torch costs ~1.6 s at start-up; only a command run with --nproc > 1 launches
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # torchrun's launcher, called in-process: the children print their own one-line errors,
    # and the launcher's tracebacks and error logs stay out of the user's way.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    try:
        elastic_launch(config, sys.executable)("-m", "hrkd_cli", *cleaned)
    except ChildFailedError as failure:
        codes = [f.exitcode for f in failure.failures.values()]
        raise typer.Exit(next((c for c in codes if c > 0), 1)) from None
    raise typer.Exit(0)


def _runtime(preset):
    """Set up the process (and process group under torchrun); relaunch if more processes are asked for.

    The run directory is checked for writing first, so that a long run does not fail at its first save,
    and runtime.tensorboard's optional package, so that it does not fail at its first step.
    """
    from hrkd_cli.runtime import setup  # lazy: torch costs ~1.6 s at start-up; --help needs none

    if preset.runtime.tensorboard:
        require_tensorboard()
    if int(os.environ.get("RANK", "0")) == 0:
        check_writable_dir(preset.run_dir)
    n = preset.runtime.nproc
    if n > 1 and "WORLD_SIZE" not in os.environ:
        _relaunch_under_torchrun(n)
    return setup(preset.runtime.device, preset.runtime.precision, preset.runtime.threads)
