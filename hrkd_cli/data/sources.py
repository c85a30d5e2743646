"""Which source a command reads: the one given, the one the prepared data remembers, or the preset's.

``hrkd prepare --source DIR`` records DIR in the prepared data's manifest
(``source_path``, resolved, and ``source_arg``, as given). A later command on the
same preset (same run directory) without ``--source`` reads that source again
instead of the preset's ``data.path``, so `prepare --source` once is enough. A
``--source`` (or ``--set data.path=``) naming another place wins, and the data is
prepared again from it. Only the manifest is read here (no torch, no datasets).

The unlabelled text of a transfer set (``data.unlabeled``, with ``data.unlabeled_domain``)
is remembered the same way, for the same source: a command whose preset names none reads
the file the data was prepared with; ``--set data.unlabeled='""'`` leaves it out.
"""

from __future__ import annotations

from pathlib import Path

from hrkd_cli.data.mnli import _find_files
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present

MANIFEST = "manifest.json"
FILE_SUFFIXES = (".csv", ".tsv", ".jsonl")
KINDS = {
    "amazon": "a sorted_data_acl directory",
    "mnli": "a GLUE or MultiNLI 1.0 directory, or hub",
    "custom": "a .csv, .tsv or .jsonl file",
}


def canonical(path: str) -> str:
    """The resolved absolute form of a data.path ('' and 'hub' stay as they are)."""
    text = str(path or "").strip()
    if not text or text == "hub":
        return text
    return str(Path(text).expanduser().resolve())


def guess_source(path: str) -> str | None:
    """The data.source a path looks like: amazon, mnli or custom; None when it is none of them (or absent)."""
    if str(path).strip() == "hub":
        return "mnli"
    p = Path(str(path)).expanduser()
    if p.is_file() or not p.exists():
        return "custom" if p.suffix.lower() in FILE_SUFFIXES else None
    try:
        _find_files(p)
        return "mnli"
    except HrkdError:
        pass
    try:
        if any((d / "positive.review").is_file() or (d / "negative.review").is_file() for d in p.iterdir() if d.is_dir()):
            return "amazon"
    except OSError:
        pass
    return None


def remembered_source(run_dir: str | Path, kind: str) -> tuple[str, str, bool] | None:
    """(spelling, resolved path, spelling recorded) of the ``kind`` source <run_dir>/data was prepared from.

    The spelling is the data.path as it was given (the prepared data's and the runs' hashes were made with
    it) where the manifest records one that still leads to the same place, else the resolved path.
    """
    manifest = _manifest(run_dir)
    if manifest is None or manifest.get("source") != kind or not manifest.get("source_path"):
        return None
    resolved = str(manifest["source_path"])
    spelling = str(manifest.get("source_arg") or "")
    if spelling and canonical(spelling) == resolved:
        return spelling, resolved, True
    return resolved, resolved, False


def choose_source(preset, given: str | None, via: str = "--source", say=print) -> None:
    """Settle ``preset.data.path`` (in place) for a command that reads or prepares data.

    ``given``: the path named on the command line (``via``: --source or --set data.path), or None.
    A synthetic preset refuses a given path (naming the data.source to set). Otherwise, where the run
    directory holds prepared data of the same kind, its remembered source is used unless ``given`` names
    another place; and a path that leads to the remembered place takes the remembered spelling, so the
    hashes that decide reuse do not depend on how the path was written.
    """
    cfg = preset.data
    if cfg.source == "synthetic":
        if given is not None:
            kind = guess_source(given)
            hint = (f"for {KINDS[kind]} add --set data.source='\"{kind}\"'" if kind else
                    "add --set data.source= with one of " + "; ".join(f"'\"{k}\"' ({v})" for k, v in KINDS.items()))
            raise HrkdError(f"{via} {given}: preset {preset.name!r} generates its data (data.source = \"synthetic\") "
                            f"and reads no source; {hint}")
        return
    remembered = remembered_source(preset.run_dir, cfg.source)
    if remembered is None:
        return
    spelling, resolved, recorded = remembered
    current = given if given is not None else cfg.path
    if canonical(current) == resolved:
        if recorded and current != spelling:
            cfg.path = spelling
        return
    if given is not None:
        return  # a new source: the data is prepared again from it
    say(f"data: reading {spelling}, the source {Path(preset.run_dir) / 'data'} was prepared from "
        f"(the preset says {cfg.path or 'nothing'}; pass --source to read another)")
    cfg.path = spelling


def _manifest(run_dir) -> dict | None:
    """The manifest of <run_dir>/data; None when it is absent, damaged or unreadable (nothing is remembered)."""
    try:
        manifest = read_json_if_present(Path(run_dir) / "data" / MANIFEST)
    except HrkdError:
        return None
    return manifest if isinstance(manifest, dict) else None


def choose_unlabeled(preset, given: bool, say=print) -> None:
    """Settle ``preset.data.unlabeled`` (in place) after :func:`choose_source`.

    ``given``: the command line sets data.unlabeled (possibly to "", which leaves the file out). Where the
    preset names no file and the run directory's data, prepared from this same source, holds unlabelled
    text, that file (and its data.unlabeled_domain) is used again; a path that leads to the remembered file
    takes the remembered spelling, so the hashes that decide reuse do not depend on how it was written.
    """
    cfg = preset.data
    manifest = _manifest(preset.run_dir)
    u = ((manifest or {}).get("transfer") or {}).get("unlabeled")
    if not u or manifest.get("source") != cfg.source or manifest.get("source_path", "") != canonical(cfg.path if cfg.source != "synthetic" else ""):
        return
    resolved, spelling = str(u.get("path") or ""), str(u.get("arg") or "")
    if not resolved:
        return
    if not (spelling and canonical(spelling) == resolved):
        spelling = resolved
    if cfg.unlabeled:
        if canonical(cfg.unlabeled) == resolved and cfg.unlabeled != spelling:
            cfg.unlabeled = spelling
        return
    if given:
        return  # set to "" on the command line: no unlabelled text
    say(f"data: unlabelled text from {spelling}, which {Path(preset.run_dir) / 'data'} was prepared with "
        f"(the preset names none; --set data.unlabeled='\"\"' leaves it out)")
    cfg.unlabeled = spelling
    if u.get("domain") and not cfg.unlabeled_domain:
        cfg.unlabeled_domain = str(u["domain"])
