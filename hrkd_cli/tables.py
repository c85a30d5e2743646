"""Rich tables: results laid out like HRKD Tables 2 and 3 (one row per model, one column per domain, then
Average), a manifest's counts, and printing any table whole where the console is narrower than it."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def results_table(title: str, domains: list[str], rows: list[tuple[str, dict[str, float]]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Method", style="bold")
    for d in domains:
        table.add_column(d.capitalize(), justify="right")
    table.add_column("Average", justify="right")
    for name, scores in rows:
        table.add_row(name, *[f"{100 * scores[d]:.1f}" if d in scores else "-" for d in domains],
                      f"{100 * scores['average']:.1f}" if "average" in scores else "-")
    return table


def counts_table(manifest: dict) -> Table:
    """Examples per domain and split (HRKD Table 1), with the label balance of train."""
    table = Table(title=f"Prepared data ({manifest['source']}, hash {manifest['hash'][:12]})", title_justify="left")
    table.add_column("Domain", style="bold")
    for col in ("#Train", "#Dev", "#Test"):
        table.add_column(col, justify="right")
    transfer = manifest.get("transfer")
    if transfer:  # the students' transfer set, by origin (hrkd_cli/data/transfer.py)
        for col in ("#Unlabelled", "#Windows", "#Augmented"):
            table.add_column(col, justify="right")
    table.add_column("Train labels", justify="left")
    for d in manifest["domains"]:
        c = manifest["counts"][d]
        labels = ", ".join(f"{k} {v}" for k, v in c["train"].items() if k != "total")
        extra = [str(transfer["counts"][d][k]) for k in ("unlabeled", "window", "augmented")] if transfer else []
        table.add_row(d, str(c["train"]["total"]), str(c["dev"]["total"]), str(c["test"]["total"]), *extra, labels)
    return table


def print_table(console, renderable, max_width: int = 250) -> None:
    """Print without truncating cells: a table wider than the console (80 columns off a terminal) is printed at
    its natural width, up to ``max_width``."""
    need = min(Measurement.get(console, console.options.update_width(max_width), renderable).maximum, max_width)
    if need <= console.width:
        console.print(renderable)
        return
    wide = Console(file=console.file, width=need, force_terminal=console.is_terminal, color_system=console.color_system,
                   highlight=False)
    wide.print(renderable)
