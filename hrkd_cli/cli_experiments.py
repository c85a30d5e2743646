"""The experiment commands: `hrkd ablate`, `hrkd fewshot`, `hrkd report`, and `hrkd eval --compare`.

Importing this module registers the three commands on the shared app
(:data:`hrkd_cli.cli_common.app`; cli.py imports this module at its end, and this
module imports only cli_common, never cli). ``compare_command`` is what `hrkd eval --compare`
calls. Thin like cli.py: parse, load the preset, call a recipe, print. As in cli.py, the experiments
(torch) and hrkd_cli.compare (~30 ms, measured with tools/startup_time.py) are imported inside the commands
that use them, so that `hrkd --help` loads neither.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer

from hrkd_cli.cli_common import NprocOpt, PrecisionOpt, PresetOpt, SetOpt, TensorboardOpt, _load, _runtime, app, out, say
from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import check_outputs, write_text_atomic
from hrkd_cli.tables import print_table

SeedsOpt = typer.Option(None, "--seeds", help="student seeds: a count (5 -> 1..5) or a list (1,2,3); finished seeds are reused")
SplitOpt = typer.Option("test", "--split", help="dev or test")
FormatOpt = typer.Option(None, "--format", help="also write the table as markdown | csv | json")
OutputOpt = typer.Option(None, "--output", "-o", help="with --format: file to write (default: <name>.<md|csv|json> here)")


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _check_split(split: str) -> None:
    if split not in ("dev", "test"):
        raise HrkdError(f"--split {split!r}: choose dev or test")


def _check_format(fmt: Optional[str]) -> None:
    from hrkd_cli.compare.render import FORMATS  # lazy: see the module docstring

    if fmt is not None and fmt not in FORMATS:
        raise HrkdError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")


def _table_target(fmt: Optional[str], output: Optional[Path], default_name: str) -> tuple[str, Path] | None:
    """(format, file) the tables go to, or None when neither --format nor --output is given."""
    from hrkd_cli.compare.render import FORMATS  # lazy: see the module docstring

    if fmt is None:
        if output is not None:
            fmt = {".md": "markdown", ".csv": "csv", ".json": "json"}.get(output.suffix.lower())
            if fmt is None:
                raise HrkdError(f"--output {output}: say --format markdown|csv|json (the suffix does not tell)")
        else:
            return None
    return fmt, output or Path(default_name + FORMATS[fmt])


def _check_table_target(fmt: Optional[str], output: Optional[Path], default_name: str) -> None:
    """Before the work: the file the tables will go to can be written."""
    target = _table_target(fmt, output, default_name)
    if target is not None:
        check_outputs(("--output", target[1]))


def _write_tables(tables, fmt: Optional[str], output: Optional[Path], default_name: str) -> None:
    from hrkd_cli.compare.render import render  # lazy: see the module docstring

    target = _table_target(fmt, output, default_name)
    if target is None:
        return
    fmt, path = target
    write_text_atomic(path, render(tables, fmt))
    say(f"wrote {path}")


# ---------------------------------------------------------------- eval --compare


def compare_command(runs: List[Path], fmt: Optional[str] = None, output: Optional[Path] = None,
                    json_path: Optional[Path] = None, split: str = "test", console=None, per_seed: bool = False,
                    paired: bool = False, against: str | None = None):
    """`hrkd eval --compare RUN...`: Tables 2/3 over seeds from run or results directories (no model is loaded).
    ``per_seed`` adds each seed's average; ``paired`` refuses rows that share no seed with their reference;
    ``against`` names the row every student row is tested against."""
    # lazy: see the module docstring
    from hrkd_cli.compare.records import collect
    from hrkd_cli.compare.render import per_seed_rich_table, rich_table
    from hrkd_cli.compare.tables import compare_table, require_partners

    _check_split(split)
    _check_format(fmt)
    _check_table_target(fmt, output, "comparison")
    check_outputs(("--json", json_path))
    table = compare_table(collect(list(runs)), split, against=against)
    table.per_seed = per_seed
    if paired:
        require_partners([table])
    print_table(console or out, rich_table(table))
    if per_seed:
        print_table(console or out, per_seed_rich_table(table))
    _write_tables([table], fmt, output, "comparison")
    if json_path is not None:
        _write_tables([table], "json", json_path, "comparison")
    return table


# ---------------------------------------------------------------- ablate


@app.command()
def ablate(
    preset: str = PresetOpt,
    drop: Optional[List[str]] = typer.Option(
        None, "--drop", help="one configuration per use: self-attention | comp-agg | hierarchical | domain-rel, or several joined by +"),
    progressive: bool = typer.Option(False, "--progressive", help="the paper's cumulative order (HRKD Table 4): 4 configurations"),
    seeds: Optional[str] = SeedsOpt,
    split: str = SplitOpt,
    fmt: Optional[str] = FormatOpt,
    output: Optional[Path] = OutputOpt,
    resume: bool = typer.Option(False, "--resume", help="continue unfinished seeds from their last checkpoint"),
    precision: Optional[str] = PrecisionOpt,
    nproc: Optional[int] = NprocOpt,
    tensorboard: bool = TensorboardOpt,
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Distil full HRKD and its ablations over seeds, then print Table 4 (per domain, Average, drop vs full HRKD)."""
    # lazy: see the module docstring
    from hrkd_cli.compare.render import rich_table
    from hrkd_cli.experiments.ablate import ablate as run
    from hrkd_cli.experiments.ablate import ablation_configs, ablation_results
    from hrkd_cli.experiments.sweep import parse_seeds

    _check_split(split)
    _check_format(fmt)
    _check_table_target(fmt, output, "ablation")
    configs = ablation_configs(drop, progressive)
    p = _load(preset, list(set_ or []), precision, nproc, tensorboard=tensorboard)
    seed_list = parse_seeds(seeds, p.seed)
    rt = _runtime(p)
    runs = run(p, rt, configs, seed_list, resume=resume, say=say)
    if _is_main():
        table = ablation_results(runs, split)
        print_table(out, rich_table(table))
        _write_tables([table], fmt, output, "ablation")


# ---------------------------------------------------------------- fewshot


@app.command()
def fewshot(
    preset: str = PresetOpt,
    rates: Optional[str] = typer.Option(
        None, "--rates", help="samples as percentages of each domain's training split, in (0, 100] (default 1,2,5,10,20)"),
    counts: Optional[str] = typer.Option(
        None, "--counts", help="samples as absolute training sizes: 1390,2000 = that many training examples of every "
        "domain; telephone:1500+travel:1390+... = each domain its own count (name every domain); with or instead of --rates"),
    seeds: Optional[str] = SeedsOpt,
    meta_kd: bool = typer.Option(False, "--meta-kd", help="also run Meta-KD (meta-teacher, meta-distillation) per rate"),
    methods: Optional[str] = typer.Option(
        None, "--methods", help="run only these arms: tinybert (the baseline), hrkd, meta-kd; the table reads every finished run of the points"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="draw the improvement rates (HRKD Figure 2) to this PNG"),
    split: str = SplitOpt,
    fmt: Optional[str] = typer.Option(None, "--format", help="also write the summary as markdown | json"),
    output: Optional[Path] = OutputOpt,
    resume: bool = typer.Option(False, "--resume", help="continue unfinished seeds from their last checkpoint"),
    precision: Optional[str] = PrecisionOpt,
    nproc: Optional[int] = NprocOpt,
    tensorboard: bool = TensorboardOpt,
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Teach and distil on the front of each training split per sample (a rate, or a count per domain); print the improvement of HRKD (and Meta-KD) over BERT-single -(TinyBERT-KD)-> BERT_S with its 90% CI (HRKD Figure 2)."""
    # lazy: see the module docstring
    from hrkd_cli.experiments.fewshot import arm_tags, fewshot as run, parse_counts, parse_methods, parse_rates
    from hrkd_cli.experiments.samples import Sample
    from hrkd_cli.experiments.fewshot_results import fewshot_results, plot_fewshot
    from hrkd_cli.experiments.sweep import parse_seeds

    _check_split(split)
    summary_fmt = _fewshot_format(fmt, output)
    points = [Sample(percent=r) for r in parse_rates(rates)] if rates is not None else []
    points += [Sample(counts=n) if isinstance(n, tuple) else Sample(per_domain=n)
               for n in parse_counts(counts)] if counts is not None else []
    points = points or [Sample(percent=r) for r in parse_rates("1,2,5,10,20")]
    if plot is not None and plot.suffix.lower() != ".png":
        raise HrkdError(f"--plot {plot}: the figure is written as PNG; give a .png path")
    summary_path = _fewshot_path(summary_fmt, output)
    check_outputs(("--plot", plot), ("--output", summary_path))
    arms = parse_methods(methods) if methods is not None else None
    p = _load(preset, list(set_ or []), precision, nproc, tensorboard=tensorboard)
    seed_list = parse_seeds(seeds, p.seed)
    rt = _runtime(p)
    runs = run(p, rt, points, seed_list, meta_kd=meta_kd, resume=resume, say=say, methods=arms)
    if not _is_main():
        return
    # A subset of the arms is one part of a point: its table reads every run of the point on disk,
    # so that the part that finishes last prints the whole comparison.
    tags = arm_tags(p)  # this call's configuration of each arm, where a point holds several
    result = (fewshot_results(Path(p.run_dir), split=split, runs=runs, tags=tags) if arms is None
              else fewshot_results(Path(p.run_dir), rates=points, split=split, tags=tags))
    print_table(out, result.rich_table())
    if plot is not None:
        plot_fewshot(result, plot)
        say(f"wrote {plot}")
    if summary_fmt is not None:
        text = result.to_markdown() if summary_fmt == "markdown" else json.dumps(result.to_json(), indent=2) + "\n"
        write_text_atomic(summary_path, text)
        say(f"wrote {summary_path}")


def _fewshot_path(summary_fmt: Optional[str], output: Optional[Path]) -> Optional[Path]:
    if summary_fmt is None:
        return None
    return output or Path("fewshot" + (".md" if summary_fmt == "markdown" else ".json"))


def _fewshot_format(fmt: Optional[str], output: Optional[Path]) -> Optional[str]:
    if fmt is None and output is None:
        return None
    fmt = fmt or {".md": "markdown", ".json": "json"}.get(output.suffix.lower())
    if fmt not in ("markdown", "json"):
        raise HrkdError(f"--format {fmt or '?'}: the few-shot summary is written as markdown or json")
    return fmt


# ---------------------------------------------------------------- report


@app.command()
def report(
    results_dir: Path = typer.Argument(..., help="a preset's run directory (e.g. runs/demo)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Markdown file (default: RESULTS_DIR/report.md)"),
    split: str = SplitOpt,
    case_study: bool = typer.Option(True, "--case-study/--no-case-study", help="run inspect-ratios on an HRKD student"),
) -> None:
    """Write one Markdown report: every table the results allow (2/3, 4, Figure 2, case study), environment, preset and data hashes."""
    from hrkd_cli.experiments.report import report as run  # lazy: see the module docstring

    _check_split(split)
    default = results_dir / "report.md" if results_dir.is_dir() else None  # a missing directory: report says so
    check_outputs(("--output", output) if output is not None else ("the report", default))
    run(results_dir, output, split=split, case_study=case_study, say=say)
