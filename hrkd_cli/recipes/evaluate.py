"""`hrkd eval`: score saved teachers and students on dev or test."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from hrkd_cli.batches import load_splits
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json_if_present, write_json_atomic
from hrkd_cli.model.checkpoint import read_meta
from hrkd_cli.runs import Say
from hrkd_cli.runtime import Runtime
from hrkd_cli.tables import print_table, results_table
from hrkd_cli.train.evaluation import evaluate_checkpoint
from hrkd_cli.train.soft_labels import checkpoint_soft_labels


def row_name(path: Path, meta: dict) -> str:
    record = read_json_if_present(Path(path) / "run.json") or {}
    return record.get("row") or meta.get("row") or str(path)


def evaluate(checkpoints: list[Path], split: str, data_dir: Path | None, json_path: Path | None, runtime: Runtime, console, say: Say) -> dict:
    rows, results, domains, data_cache = [], {}, None, {}
    for ckpt in checkpoints:
        meta = read_meta(ckpt)
        ddir = Path(data_dir or meta.get("data_dir") or "")
        if not str(ddir) or not ddir.is_dir():
            raise HrkdError(f"{ckpt}: its prepared data {ddir} is gone; pass --data DIR")
        if ddir not in data_cache:
            data_cache[ddir] = load_prepared(ddir)
        data = data_cache[ddir]
        ckpt_domains = [d for d in meta["domains"] if d in data.domains]
        scores = evaluate_checkpoint(ckpt, load_splits(data, split, ckpt_domains), runtime, data.hash)
        name = row_name(ckpt, meta)
        rows.append((name, scores))
        results[str(ckpt)] = {"row": name, "split": split, "data_hash": data.hash, "scores": scores}
        domains = domains or list(data.domains)
    print_table(console, results_table(f"Accuracy (%) on {split}", domains, rows))
    if json_path:
        write_json_atomic(json_path, results)
        say(f"wrote {json_path}")
    return results


def soft_labels(checkpoints: list[Path], split: str, temperature: float, data_dir: Path | None, json_path: Path | None,
                runtime: Runtime, console, say: Say) -> dict:
    """`hrkd eval --soft-labels`: accuracy, confidence and relative entropy of each checkpoint's soft labels
    at temperature T on a split (train too: the split a student is distilled on)."""
    results = {}
    table = Table(title=f"Soft labels on {split} at T = {temperature:g} (per domain: accuracy % / mean confidence / "
                  "mean entropy relative to log C)", title_justify="left")
    table.add_column("Model")
    domains = None
    for ckpt in checkpoints:
        meta = read_meta(ckpt)
        ddir = Path(data_dir or meta.get("data_dir") or "")
        if not str(ddir) or not ddir.is_dir():
            raise HrkdError(f"{ckpt}: its prepared data {ddir} is gone; pass --data DIR")
        data = load_prepared(ddir)
        ckpt_domains = [d for d in meta["domains"] if d in data.domains]
        stats = checkpoint_soft_labels(ckpt, load_splits(data, split, ckpt_domains), runtime, temperature)
        if domains is None:
            domains = ckpt_domains
            for d in domains + ["average"]:
                table.add_column(d, justify="right")
        name = row_name(ckpt, meta)
        table.add_row(name, *[f"{100 * stats[d]['accuracy']:.1f} / {stats[d]['confidence']:.3f} / {stats[d]['entropy']:.3f}"
                              if d in stats else "-" for d in domains + ["average"]])
        results[str(ckpt)] = {"row": name, "split": split, "temperature": temperature, "data_hash": data.hash, "stats": stats}
    print_table(console, table)
    if json_path:
        write_json_atomic(json_path, results)
        say(f"wrote {json_path}")
    return results
