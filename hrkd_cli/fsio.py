"""Writing files and directories: every failure is one line that names the path (exit 1).

A write can fail for reasons that have nothing to do with the input: the run
directory is not writable, the disk is full, a parent is a file. Those are
:class:`~hrkd_cli.errors.RunError`s naming the path, never tracebacks:

    with writing(out_dir):          # any OSError inside -> "cannot write OUT_DIR...: reason"
        ...
    write_text_atomic(path, text)   # temporary sibling + rename, under writing()
    write_json_atomic(path, obj)
    with replacing(path) as tmp: ...   # for writers that take a file name (safetensors)
    write_png_atomic(path, fig)     # a matplotlib figure, through replacing()
    tmp = staging_dir(out_dir); ...; replace_dir(tmp, out_dir)   # a whole directory, swapped in at once
    recover_dir(out_dir)            # before reading it: undo a swap killed between its renames
    read_json(path)                 # missing or damaged -> one-line HrkdError naming the file (exit 2)
    read_json_if_present(path)      # None when the file is absent (an optional record); damaged -> HrkdError
    check_writable_dir(run_dir)     # before long work: create it and write a probe file
    check_outputs(("--json", path)) # before long work: a file (or, directory=True, a folder) the user named

``os_error_message`` formats an OSError that escaped all of these (the CLI's
last resort), naming ``filename``/``filename2`` where the error carries them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from hrkd_cli.errors import HrkdError, RunError


def _reason(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__


def os_error_message(err: OSError) -> str:
    """One line for an OSError: '<path>: <reason>' (both paths of a rename), or the reason alone."""
    if err.filename is not None and err.filename2 is not None:
        return f"{err.filename} -> {err.filename2}: {_reason(err)}"
    if err.filename is not None:
        return f"{err.filename}: {_reason(err)}"
    return _reason(err)


def write_failure(path, err: OSError) -> RunError:
    """The RunError for a failed write to ``path``; names the exact file the OS refused when it says which."""
    exact = err.filename if err.filename is not None else None
    where = str(path) if exact is None or str(exact) == str(path) else f"{path} ({exact})"
    return RunError(f"cannot write {where}: {_reason(err)}")


@contextlib.contextmanager
def writing(path):
    """Turn any OSError raised inside the block into a one-line RunError naming ``path``."""
    try:
        yield
    except RunError:
        raise
    except OSError as err:
        raise write_failure(path, err) from None


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary sibling and a rename; a failure leaves ``path`` as it was."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return path


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary sibling of ``path`` for a writer that takes a file name (safetensors); on success it
    replaces ``path``, on failure it is removed and ``path`` is as it was. Write failures name ``path``."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def write_png_atomic(path, fig, dpi: int = 120) -> Path:
    """Save the matplotlib figure ``fig`` to ``path`` as PNG through :func:`replacing` (the format is named, so the
    temporary sibling's suffix does not matter)."""
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def staging_dir(final_dir) -> Path:
    """A new empty temporary sibling of ``final_dir`` (parents created) to build a directory in."""
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=final_dir.parent, prefix=f".{final_dir.name}.tmp-"))


def replace_dir(new, final_dir) -> None:
    """Swap the fully written directory ``new`` into place as ``final_dir``: the old one is set aside, the new one
    renamed in, the old one deleted; if the second rename fails the old one is put back."""
    new, final_dir = Path(new), Path(final_dir)
    old = None
    if final_dir.exists():
        old = final_dir.parent / f".{final_dir.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final_dir, old)
    try:
        os.replace(new, final_dir)
    except BaseException:
        if old is not None:
            os.replace(old, final_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(final_dir) -> None:
    """Undo a :func:`replace_dir` killed between its two renames: bring the old directory back."""
    final_dir = Path(final_dir)
    if final_dir.exists():
        return
    olds = sorted(final_dir.parent.glob(f".{final_dir.name}.old-*"))
    if olds:
        os.replace(olds[-1], final_dir)


def write_json_atomic(path, obj) -> Path:
    """``obj`` as indented, key-sorted JSON (the layout of every record hrkd writes), atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path, missing: str = "missing"):
    """The JSON value in ``path``; a missing file is ``"<path>: <missing>"``, a damaged one ``"<path>: damaged JSON
    file (reason)"``, both one-line HrkdErrors (the user's files, exit 2)."""
    path = Path(path)
    if not path.is_file():
        raise HrkdError(f"{path}: {missing}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f"{err.msg}, line {err.lineno}" if isinstance(err, json.JSONDecodeError) else str(err)
        raise HrkdError(f"{path}: damaged JSON file ({where})") from None
    except OSError as err:
        raise HrkdError(f"{path}: cannot read ({_reason(err)})") from None


def read_json_if_present(path):
    """:func:`read_json` of an optional file (a run's record, a log): None when there is no such file."""
    return read_json(path) if Path(path).is_file() else None


def check_writable_dir(path) -> Path:
    """Create ``path`` (and parents) and write a probe file into it, so long work does not fail at its first save."""
    path = Path(path)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".hrkd-write-probe-")
        os.close(fd)
        os.unlink(probe)
    return path


def _output_problem(path: Path, directory: bool) -> str | None:
    """Why ``path`` cannot be written as a file (or created as a directory), or None. Changes nothing on disk."""
    if path.is_dir() and not directory:
        return "is a directory; give a file path"
    if path.exists() and directory and not path.is_dir():
        return "is a file, not a directory"
    # Files are written through a temporary sibling and a rename, so the directory they go in must be writable,
    # whether or not the file exists; missing parents are created then, so the nearest existing one decides.
    ancestor = path.absolute() if directory else path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"directory {ancestor} is not writable"
    return None


def check_outputs(*options: tuple[str, object], directory: bool = False) -> None:
    """Before any work: every (option, path) given (None and "-" = stdout are skipped) can be written.

    The path must not be a directory (or, with ``directory``, a file); its nearest existing ancestor must be a
    writable directory. The problem is the user's input, so this is a one-line HrkdError (exit 2) naming the
    option and the path, raised before an evaluation or run that would only fail at its end."""
    for option, path in options:
        if path is None or str(path) == "-":
            continue
        problem = _output_problem(Path(path), directory)
        if problem:
            raise HrkdError(f"{option} {path}: {problem}")
