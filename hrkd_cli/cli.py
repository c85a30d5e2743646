"""The `hrkd` command line: parse, load the preset, call one recipe. No training logic here.

Each command imports its recipe (and the preset schema) inside its body: the recipes bring torch and
transformers (about 2 s at start-up, measured with tools/startup_time.py) and hrkd_cli.config brings pydantic
(about 0.15 s), none of which `hrkd --help`, `hrkd --version` or another command needs. Everything else is
imported here, at the top.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from hrkd_cli.cli_common import (
    NprocOpt,
    PrecisionOpt,
    PresetOpt,
    SetOpt,
    SourceOpt,
    TensorboardOpt,
    _load,
    _option_overrides,
    _runtime,
    _toml_str,
    app,
    err,
    out,
    print_error,
    say,
)
from hrkd_cli.errors import FAILURE, HrkdError
from hrkd_cli.fsio import check_outputs, os_error_message, write_json_atomic
from hrkd_cli.tables import counts_table, print_table

presets_app = typer.Typer(help="List and show the shipped presets.", invoke_without_command=True)
app.add_typer(presets_app, name="presets")


# ---------------------------------------------------------------- presets


@presets_app.callback()
def presets_list(ctx: typer.Context) -> None:
    """List the shipped presets with a one-line description."""
    if ctx.invoked_subcommand is not None:
        return
    from hrkd_cli.config import list_presets  # lazy: pydantic (see the module docstring)

    table = Table(title="Presets", title_justify="left")
    table.add_column("Name", style="bold")
    table.add_column("Description")
    for name, desc in list_presets():
        table.add_row(name, desc)
    print_table(out, table)


@presets_app.command("show")
def presets_show(name: str = typer.Argument(..., help="preset name or path"), set_: Optional[List[str]] = SetOpt) -> None:
    """Print the resolved preset (defaults filled in, overrides applied) as TOML."""
    from hrkd_cli.config import preset_to_toml  # lazy: pydantic (see the module docstring)

    # soft_wrap: a line folded at the console's width would make the TOML invalid when redirected to a file
    out.print(preset_to_toml(_load(name, set_, data=False)), highlight=False, markup=False, soft_wrap=True)


# ---------------------------------------------------------------- prepare / teach / eval


@app.command()
def prepare(
    preset: str = PresetOpt,
    source: Optional[str] = SourceOpt,
    sample_rate: Optional[float] = typer.Option(None, "--sample-rate", help="few-shot: keep this front share of each train split"),
    show_augmented: int = typer.Option(0, "--show-augmented", min=0, help="then print N augmented texts, replacements marked [old->new]"),
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Split a source per domain, tokenise once and save it in the run directory (with any transfer set)."""
    # lazy: torch, transformers, datasets (see the module docstring)
    from hrkd_cli.data.store import load_prepared
    from hrkd_cli.recipes.prepare import prepare as run
    from hrkd_cli.recipes.prepare import show_augmented as show
    from hrkd_cli.runs import data_dir

    overrides = list(set_ or [])
    if sample_rate is not None:
        overrides.append(f"data.sample_rate={sample_rate}")
    p = _load(preset, overrides, source=source)
    if show_augmented and not p.data.augment_copies:
        raise HrkdError("--show-augmented needs augmented texts: set data.augment_copies (e.g. --set data.augment_copies=4)")
    manifest = run(p, say)
    print_table(out, counts_table(manifest))
    say(f"manifest hash {manifest['hash']}")
    if show_augmented:
        show(load_prepared(data_dir(p)), show_augmented, lambda m: out.print(m, highlight=False, markup=False, soft_wrap=True))


@app.command()
def teach(
    preset: str = PresetOpt,
    kind: Optional[str] = typer.Option(None, "--kind", help="single | mix | mtl | multi-domain | meta (default: the preset's)"),
    exclude_domain: Optional[str] = typer.Option(None, "--exclude-domain", help="train the teacher without this domain"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint"),
    source: Optional[str] = SourceOpt,
    precision: Optional[str] = PrecisionOpt,
    nproc: Optional[int] = NprocOpt,
    tensorboard: bool = TensorboardOpt,
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Fine-tune a teacher (prepares the data first if needed)."""
    from hrkd_cli.pipeline import teach as run  # lazy: torch (see the module docstring)

    overrides = _option_overrides(set_, {"teacher.kind": kind, "teacher.exclude_domain": exclude_domain})
    p = _load(preset, overrides, precision, nproc, source=source, tensorboard=tensorboard)
    rt = _runtime(p)
    run(p, rt, resume=resume, say=say)


@app.command("eval")
def evaluate(
    checkpoints: List[Path] = typer.Argument(..., help="checkpoint directories; with --compare: run or results directories"),
    split: str = typer.Option("test", "--split", help="dev or test"),
    data: Optional[Path] = typer.Option(None, "--data", help="prepared data directory (default: the one the model was trained on)"),
    compare: bool = typer.Option(False, "--compare", help="Tables 2/3 over seeds (mean±std; Welch, paired t and example-level sign-flip tests, two-sided) from recorded runs; loads no model"),
    fmt: Optional[str] = typer.Option(None, "--format", help="with --compare: also write markdown | csv | json"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="with --format: the file to write"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="also write the numbers to this JSON file"),
    per_seed: bool = typer.Option(False, "--per-seed", help="with --compare: also each seed's average accuracy"),
    paired: bool = typer.Option(False, "--paired", help="with --compare: fail if a row shares no seed with its reference"),
    against: Optional[str] = typer.Option(None, "--against", help="with --compare: test every student row against this one (its directory tag, e.g. meta-kd, or its directory), seed by seed, whatever its teacher"),
    soft: bool = typer.Option(False, "--soft-labels", help="accuracy, confidence and entropy of the soft labels (train split allowed)"),
    temperature: float = typer.Option(1.0, "--temperature", help="with --soft-labels: the T of Eq. 2"),
) -> None:
    """Score checkpoints per domain and on average, as a table like HRKD Tables 2 and 3."""
    check_outputs(("--json", json_path), ("--output", output))  # before scoring anything
    if soft:
        # lazy: torch (see the module docstring)
        from hrkd_cli.recipes.evaluate import soft_labels
        from hrkd_cli.runtime import setup

        if split not in ("train", "dev", "test") or temperature <= 0:
            raise HrkdError(f"--soft-labels: --split must be train, dev or test and --temperature > 0 (got {split!r}, {temperature})")
        soft_labels(checkpoints, split, temperature, data, json_path, setup(), out, say)
        return
    if split not in ("dev", "test"):
        raise HrkdError(f"--split {split!r}: choose dev or test")
    if (per_seed or paired or against) and not compare:
        raise HrkdError("--per-seed, --paired and --against go with --compare (they read recorded runs)")
    if compare:
        cli_experiments.compare_command(checkpoints, fmt=fmt, output=output, json_path=json_path, split=split, console=out,
                        per_seed=per_seed, paired=paired, against=against)
        return
    # lazy: torch (see the module docstring)
    from hrkd_cli.recipes.evaluate import evaluate as run
    from hrkd_cli.runtime import setup

    run(checkpoints, split, data, json_path, setup(), out, say)


# ---------------------------------------------------------------- distill / inspect-ratios / bench


@app.command()
def distill(
    preset: str = PresetOpt,
    method: Optional[str] = typer.Option(None, "--method", "-m", help="tinybert | multi-domain | hrkd | meta-kd | mtn-kd"),
    drop: Optional[List[str]] = typer.Option(None, "--drop", help="ablation: self-attention | comp-agg | hierarchical | domain-rel (repeatable)"),
    graph_mode: Optional[str] = typer.Option(None, "--graph-mode", help="frozen (released code) | joint | meta"),
    teacher_kind: Optional[str] = typer.Option(None, "--teacher", help="teacher kind to distil from (default: the method's)"),
    exclude_domain: Optional[str] = typer.Option(None, "--exclude-domain", help="distil from a teacher trained without this domain"),
    seed: Optional[int] = typer.Option(None, "--seed", help="student seed (default: the preset's)"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="several student seeds: a count (5) or a list (1,2,3); finished seeds are reused"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint"),
    source: Optional[str] = SourceOpt,
    precision: Optional[str] = PrecisionOpt,
    nproc: Optional[int] = NprocOpt,
    tensorboard: bool = TensorboardOpt,
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Distil a student; prepares the data and trains the teacher first when they are missing."""
    from hrkd_cli.experiments.sweep import distill_seeds, parse_seeds  # lazy: torch (see the module docstring)

    overrides = _option_overrides(set_, {"distill.method": method, "distill.graph_mode": graph_mode,
                                         "distill.teacher_kind": teacher_kind, "teacher.exclude_domain": exclude_domain})
    if drop:
        overrides.append("distill.drop=[" + ", ".join(_toml_str(d) for d in drop) + "]")
    if seed is not None:
        overrides.append(f"seed={seed}")
    p = _load(preset, overrides, precision, nproc, source=source, tensorboard=tensorboard)
    seed_list = parse_seeds(seeds, p.seed)
    rt = _runtime(p)
    # A plain call distils again; a sweep (--seeds) reuses the seeds that already finished.
    distill_seeds(p, rt, seed_list, resume=resume, reuse=seeds is not None, say=say)


@app.command("inspect-ratios")
def inspect_ratios(
    checkpoint: Path = typer.Argument(..., help="an HRKD student run directory (student/<tag>/seed-N) or its best/ checkpoint"),
    examples: Optional[Path] = typer.Option(None, "--examples", help="JSONL with one example per domain: domain, text[, text_b], label"),
    sample: bool = typer.Option(False, "--sample", help="pick one test example per domain (as HRKD Tables 5 and 6)"),
    labels: Optional[str] = typer.Option(None, "--labels", help="with --sample: the label wanted per domain, e.g. pos,pos,neg,pos"),
    seed: int = typer.Option(0, "--seed", help="with --sample: which examples are picked"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="draw the ratios to this PNG"),
) -> None:
    """Show the domain-relational and hierarchical similarity ratios of an HRKD student."""
    check_outputs(("--plot", plot))
    from hrkd_cli.recipes.inspect_ratios import inspect_ratios as run  # lazy: torch (see the module docstring)

    run(checkpoint, examples=examples, sample=sample, labels=labels, seed=seed, plot=plot, console=out, say=say)


bench_app = typer.Typer(help="Speed figures measured side by side in one process.")
app.add_typer(bench_app, name="bench")


@bench_app.command("distill")
def bench_distill(
    preset: str = PresetOpt,
    steps: int = typer.Option(5, "--steps", help="timed repeats of each configuration"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="also write the figures to this JSON file"),
    precision: Optional[str] = PrecisionOpt,
    tensorboard: bool = typer.Option(False, "--tensorboard", help="also time a logged hrkd step with and without "
                                     "the TensorBoard writer (needs the tensorboard extra)"),
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Step time of multi-domain vs hrkd, teacher vs student throughput, achieved FLOP/s."""
    check_outputs(("--json", json_path))
    from hrkd_cli.experiments.bench import bench_distill as run, bench_table  # lazy: torch (see the module docstring)

    p = _load(preset, set_, precision, tensorboard=tensorboard)
    result = run(p, _runtime(p), steps=steps, say=say)
    print_table(out, bench_table(result))
    if json_path:
        write_json_atomic(json_path, result)


@bench_app.command("students")
def bench_students(
    preset: str = PresetOpt,
    steps: int = typer.Option(5, "--steps", help="timed repeats of each model"),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="also time each model as ONNX dynamic int8 (needs onnxruntime)"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="also write the figures to this JSON file"),
    precision: Optional[str] = PrecisionOpt,
    set_: Optional[List[str]] = SetOpt,
) -> None:
    """Student shapes vs the teacher: parameters, examples/s (PyTorch, ONNX int8), speed-up, distilled accuracy."""
    check_outputs(("--json", json_path))
    # lazy: torch (see the module docstring)
    from hrkd_cli.experiments.bench_students import bench_students as run, shape_commands, students_table

    if steps < 1:
        raise HrkdError(f"--steps {steps}: at least one timed repeat is needed")
    p = _load(preset, set_, precision)
    result = run(p, _runtime(p), steps=steps, onnx=onnx, say=say)
    print_table(out, students_table(result))
    out.print("Distil a shape (accuracy column) with:", highlight=False)
    for line in shape_commands(result):
        out.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
    if json_path:
        write_json_atomic(json_path, result)


# ---------------------------------------------------------------- export / predict


@app.command("export")
def export_model(
    run: Path = typer.Argument(..., help="a teacher or student run directory (or one of its checkpoints)"),
    fmt: str = typer.Option("hf", "--format", help="hf (a transformers folder per domain) or onnx (needs the onnx extra)"),
    domain: Optional[str] = typer.Option(None, "--domain", help="export this domain only (default: every domain)"),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="with --format onnx: also write a dynamic int8 model"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write OUTPUT/<domain>/ (default: RUN/export/<format>)"),
) -> None:
    """Write each domain's classifier as a folder plain transformers (or ONNX Runtime) loads, with a model card."""
    check_outputs(("--output", output), directory=True)
    from hrkd_cli.recipes.export import export as run_export  # lazy: torch (see the module docstring)

    run_export(run, fmt=fmt, domain=domain, out=output, quantize=quantize, say=say)


@app.command()
def predict(
    model: Path = typer.Argument(..., help="a teacher or student run directory, or a folder written by `hrkd export`"),
    domain: str = typer.Option(..., "--domain", help="the domain whose head labels the input"),
    source: str = typer.Option(..., "--input", help="CSV, JSON lines or plain text (one example per line); - for stdin"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write here (default: stdout)"),
    fmt: Optional[str] = typer.Option(None, "--format", help="jsonl or csv (default: from the output's extension, else jsonl)"),
    batch_size: int = typer.Option(32, "--batch-size", help="examples per forward pass"),
) -> None:
    """Label text with one domain's head: the label and the probability of every class, per example."""
    check_outputs(("--output", output))
    # lazy: torch (see the module docstring)
    from hrkd_cli.recipes.predict import predict as run_predict
    from hrkd_cli.runtime import setup

    run_predict(model, domain, source, output, fmt, batch_size, setup(precision="fp32").device, err, say)


# ---------------------------------------------------------------- entry point


def main() -> None:
    """Run the app; every failure ends in one line and an exit code (README: 2 usage, 1 failed run)."""
    try:
        app()
    except HrkdError as e:
        print_error(str(e))
        sys.exit(e.exit_code)
    except OSError as e:  # a write or read no recipe wrapped: still one line, naming the path
        print_error(os_error_message(e))
        sys.exit(FAILURE)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        sys.exit(130)


# ablate, fewshot and report register themselves on `app` (imported last: that is their place in --help);
# `eval --compare` calls cli_experiments.compare_command.
from hrkd_cli import cli_experiments  # noqa: E402
