"""`hrkd bench students`: how much faster each student shape is than its teacher, measured side by side.

Every shape is a list of `--set` overrides on the preset (STUDENT_SHAPES), so the line that distils it is
printed with it: `hrkd distill --preset P --set ...`. On one batch (a sub-batch of distill.batch_per_domain
from each domain's training split, as `hrkd bench distill` uses) the teacher and every student are timed in
turn (benchkit.alternating_medians): inference in PyTorch at the run's precision and, where onnxruntime is
installed, the same model exported to ONNX and quantised to dynamic int8 (hrkd_cli/model/export.py's exporter and
quantiser) run in ONNX Runtime on the CPU. Speed-ups divide the teacher's PyTorch time by the model's time
from those same measurements. Timing needs no trained weights: without a trained teacher an untrained one of
the same architecture is timed. The accuracy column is the test average of distilled students of the shape
found in the run directory (matched by the recorded student and distill sections, distill.tag aside, and the
data hash), "-" where none was distilled; where onnxruntime is installed, the int8 accuracy column scores
those runs' best checkpoints served as int8 ONNX on the whole test split (onnx_test_scores).
"""

from __future__ import annotations

import shlex
import statistics
import tempfile
from pathlib import Path

import torch
from rich.table import Table

from hrkd_cli.batches import Batch, Split, load_splits, make_batch
from hrkd_cli.config import (
    TRANSFER_FIELDS,
    Preset,
    apply_overrides,
    recorded_preset,
    validate_preset,
)
from hrkd_cli.data.store import load_prepared
from hrkd_cli.errors import HrkdError
from hrkd_cli.experiments.benchkit import alternating_medians, teacher_for_bench
from hrkd_cli.model import export
from hrkd_cli.fsio import read_json_if_present
from hrkd_cli.model.classifier import DomainClassifier, count_parameters
from hrkd_cli.pipeline import ensure_prepared
from hrkd_cli.runs import Say, data_dir, run_dir
from hrkd_cli.runtime import Runtime
from hrkd_cli.train.evaluation import accuracy, domain_heads, scores_with_average
from hrkd_cli.train.students import setup

# (name, --set overrides): the student shapes compared with the teacher, defined for a 6-layer, 12-head teacher
# such as the embedded MiniLM-L6 (width 384). Each distils with `hrkd distill --preset P --set ...`; distill.tag
# keeps its runs apart from the preset's own student. The narrow one is the teacher's layers 2, 4, 6 cut to half
# the width (teacher-slice): 3 layers because the uniform layer map (student layer m -> teacher layer m * N / M)
# needs the student depth to divide the teacher's 6, the teacher's 12 heads (head size 16) because the attention
# loss (Eq. 3) compares heads one to one. It replaced a random start with general distillation on the training
# text, which stayed near chance on amazon-cpu (results/faster-students.md, results/transfer-students.md).
STUDENT_SHAPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("preset", ()),
    ("2 layers", ('student.init="teacher-layers"', "student.teacher_layers=[3, 6]", 'distill.tag="2L"')),
    ("1 layer", ('student.init="teacher-layers"', "student.teacher_layers=[6]", 'distill.tag="1L"')),
    ("narrow", ('student.init="teacher-slice"', "student.teacher_layers=[2, 4, 6]", "student.hidden_size=192",
                "student.num_heads=12", "student.intermediate_size=768", 'distill.tag="3x192s"')),
)


def shape_preset(preset: Preset, name: str, sets: tuple[str, ...]) -> Preset:
    """The preset with one shape's overrides applied and validated (the preset `hrkd distill --set ...` builds)."""
    return validate_preset(apply_overrides(preset.model_dump(mode="json"), list(sets)), f"student shape {name!r}")


def distill_command(preset: Preset, sets: tuple[str, ...]) -> str:
    return " ".join(["hrkd distill --preset", shlex.quote(preset.name)] + [f"--set {shlex.quote(s)}" for s in sets])


def bench_batch(preset: Preset, data, runtime: Runtime) -> Batch:
    """The batch `hrkd bench distill` times: the first distill.batch_per_domain training examples of each domain."""
    b = preset.distill.batch_per_domain
    train = load_splits(data, "train", list(data.domains))
    return make_batch([(d, x, list(range(min(b, len(x))))) for d, x in enumerate(train)]).to(runtime.device)


# ---------------------------------------------------------------- the accuracy column


def distilled_accuracy(shape: Preset, data_hash: str) -> dict:
    """Test averages of the student runs under the run directory distilled as ``shape`` describes.

    A run counts when its run.json (student/<tag>/seed-N/run.json) records the same student section, the
    same distill section apart from distill.tag, the same transfer settings (a run on a transfer set is
    another configuration) and the prepared data's hash."""
    def configuration(p: Preset) -> tuple:
        distill = {k: v for k, v in p.distill.model_dump(mode="json").items() if k != "tag"}
        return p.student.model_dump(mode="json"), distill, {k: v for k, v in p.data.model_dump(mode="json").items() if k in TRANSFER_FIELDS}

    mine = configuration(shape)
    runs = []
    for path in sorted((run_dir(shape) / "student").glob("*/seed-*/run.json")):
        record = read_json_if_present(path)
        if not isinstance(record, dict) or record.get("role", "student") != "student":
            continue
        average = (record.get("test") or {}).get("average")
        if average is None or record.get("data_hash") != data_hash:
            continue
        try:  # a setting the record predates counts as it ran before it existed (config.LATE_FIELDS)
            recorded = recorded_preset(record.get("preset") or {})
        except ValueError:  # not a preset this version can read: not a run of this shape
            continue
        if configuration(recorded) != mine:
            continue
        runs.append({"run": str(path.parent), "test_average": float(average)})
    mean = statistics.fmean(r["test_average"] for r in runs) if runs else None
    return {"test_average": mean, "runs": runs}


# ---------------------------------------------------------------- ONNX Runtime, dynamic int8


def ort_feeds(batch: Batch) -> dict:
    """A batch as ONNX Runtime's inputs (export.ONNX_INPUTS)."""
    return {"input_ids": batch.input_ids.cpu().numpy(), "attention_mask": batch.attention_mask.cpu().numpy(),
            "token_type_ids": batch.token_type_ids.cpu().numpy()}


def onnx_session(path: Path, ort):
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the threads PyTorch uses, for a fair comparison
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_test_scores(checkpoint: Path, splits: list[Split], where: Path, ort, quantize: bool = True) -> dict[str, float]:
    """Per-domain test accuracy and average of a checkpoint served as ONNX (dynamic int8 with ``quantize``).

    Each domain's head is exported as `hrkd export --format onnx [--quantize int8]` does and run by ONNX
    Runtime over the domain's test split in length-sorted batches of 64 (as `hrkd eval` batches it), so the
    accuracy is that of the model a user would serve; without ``quantize`` it reproduces `hrkd eval`'s."""
    runtime = Runtime(torch.device("cpu"), "fp32")
    scores = {}
    for k, (split, model, head) in enumerate(domain_heads(Path(checkpoint), splits, runtime)):
        stock = export.stock_classifier(model, head, export.label_names(None, model.heads[0].out_features))
        order = sorted(range(len(split)), key=lambda i: len(split.input_ids[i]))
        first = make_batch([(0, split, order[-2:])])  # traced on two rows of different lengths: padding present
        path = where / f"{k}.onnx"
        export.export_onnx_file(stock, (first.input_ids, first.attention_mask, first.token_type_ids), path)
        if quantize:
            export.quantize_int8(path, where / f"{k}.int8.onnx")
            path = where / f"{k}.int8.onnx"
        session = onnx_session(path, ort)
        pred = [0] * len(split)
        for i in range(0, len(order), 64):
            rows = order[i : i + 64]
            logits = session.run(["logits"], ort_feeds(make_batch([(0, split, rows)])))[0]
            for r, label in zip(rows, logits.argmax(-1).tolist()):
                pred[r] = int(label)
        scores[split.domain] = accuracy(pred, split.label)
    return scores_with_average(scores)


def int8_accuracy(runs: list[dict], splits: list[Split], ort, say: Say) -> float | None:
    """Mean int8 test average over the runs whose best checkpoint is still there (None if none is)."""
    found = []
    for r in runs:
        best = Path(r["run"]) / "best"
        if not (best / "model.safetensors").is_file():
            continue
        say(f"scoring {best} as ONNX int8 on the test split")
        with tempfile.TemporaryDirectory() as tmp:
            r["int8_test_average"] = onnx_test_scores(best, splits, Path(tmp), ort)["average"]
        found.append(r["int8_test_average"])
    return statistics.fmean(found) if found else None


def _int8_runner(model: DomainClassifier, batch: Batch, label_names: list[str], where: Path, ort):
    """Export ``model`` (its first head) to ONNX, check it against PyTorch on ``batch``, quantise it to int8,
    and return a callable that runs the int8 model on ``batch`` in ONNX Runtime."""
    stock = export.stock_classifier(model, 0, export.label_names(label_names, model.heads[0].out_features)).cpu()
    ids, mask, types = (t.cpu() for t in (batch.input_ids, batch.attention_mask, batch.token_type_ids))
    # Traced on two short rows, one of them padded; checked below on the whole batch, whose shape differs.
    n = min(12, ids.shape[1])
    sample = [ids[:2, :n].clone(), torch.ones_like(ids[:2, :n]), types[:2, :n].clone()]
    sample[1][-1, n // 2:] = 0
    fp32, int8 = where / "model.onnx", where / "model.int8.onnx"
    export.export_onnx_file(stock, tuple(sample), fp32)
    feeds = ort_feeds(batch)

    def session(path: Path):
        return onnx_session(path, ort)

    with torch.no_grad():
        reference = export.StockLogits(stock)(ids, mask, types).float()
    got = torch.from_numpy(session(fp32).run(["logits"], feeds)[0]).float()
    diff = float((got - reference).abs().max())
    if not diff <= export.ONNX_TOLERANCE:
        raise HrkdError(f"ONNX Runtime's logits differ from PyTorch's by {diff:.2e} (more than "
                        f"{export.ONNX_TOLERANCE:g}); the int8 timing would not be of this model")
    export.quantize_int8(fp32, int8)
    quantised = session(int8)
    return lambda: quantised.run(["logits"], feeds)


def _onnx_runtime(say: Say):
    try:
        return export.onnx_runtime()
    except HrkdError:
        say('onnxruntime is not installed: the ONNX int8 columns are left out (pip install -e ".[onnx]")')
        return None


# ---------------------------------------------------------------- the bench


def _shape_of(model: DomainClassifier) -> dict:
    c = model.config
    return {"layers": c.num_hidden_layers, "hidden": c.hidden_size, "heads": c.num_attention_heads,
            "intermediate": c.intermediate_size, "params": count_parameters(model)}


def bench_students(preset: Preset, runtime: Runtime, steps: int = 5, shapes=None, onnx: bool = True,
                   say: Say = print) -> dict:
    """Time the teacher and each of ``shapes`` ((name, --set overrides), default STUDENT_SHAPES) side by side."""
    shapes = STUDENT_SHAPES if shapes is None else shapes
    ensure_prepared(preset, say)
    data = load_prepared(data_dir(preset))
    domains = list(data.domains)
    batch = bench_batch(preset, data, runtime)
    shaped = [(name, sets, shape_preset(preset, name, sets)) for name, sets in shapes]
    ort = _onnx_runtime(say) if onnx else None
    models: dict[str, DomainClassifier] = {}
    int8: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        teacher_path = teacher_for_bench(preset, data, Path(tmp), say)
        teacher_record = read_json_if_present(teacher_path / "run.json")  # None for the untrained stand-in
        for name, _, p in shaped:
            # Timing needs no general stage: build the shape's student as it starts task distillation.
            timing = p.model_copy(update={"student": p.student.model_copy(update={"general_epochs": 0})}, deep=True)
            s = setup(timing, runtime, teacher_path, domains, data)
            models.setdefault("teacher", s.teachers.models[0])
            models[name] = s.model.student
        for name, model in models.items():
            model.eval()
            if ort is not None:
                say(f"exporting {name} to ONNX and quantising it to int8")
                where = Path(tmp) / "onnx" / str(len(int8))
                where.mkdir(parents=True)
                int8[name] = _int8_runner(model, batch, data.label_names, where, ort)

        @torch.no_grad()
        def infer(model: DomainClassifier) -> None:
            with runtime.autocast():
                model(batch.input_ids, batch.attention_mask, batch.token_type_ids, [(0, batch.input_ids.shape[0])])

        fns = {name: (lambda m=model: infer(m)) for name, model in models.items()}
        fns.update({f"{name} [int8]": fn for name, fn in int8.items()})
        say(f"timing the teacher and {len(shapes)} students, {steps} repeats each, in turn")
        times = alternating_medians(fns, steps, runtime.device)

    n = int(batch.input_ids.shape[0])

    def row(name: str, sets: tuple[str, ...] | None, accuracy: dict) -> dict:
        t, q = times[name], times.get(f"{name} [int8]")
        return {"name": name, **_shape_of(models[name]), "sets": list(sets or ()),
                "command": distill_command(preset, sets) if sets is not None else None,
                "examples_per_s": n / t, "int8_examples_per_s": None if q is None else n / q,
                "speedup": times["teacher"] / t, "int8_speedup": None if q is None else times["teacher"] / q,
                # against the teacher served the same way: int8 student vs int8 teacher
                "int8_vs_int8_speedup": None if q is None else times["teacher [int8]"] / q,
                **accuracy}

    teacher_test = ((teacher_record or {}).get("test") or {}).get("average")
    test = load_splits(data, "test", domains) if int8 else []
    teacher_int8 = None
    if int8 and teacher_record is not None:  # a trained teacher: what serving it as int8 costs in accuracy
        say(f"scoring {teacher_path} as ONNX int8 on the test split")
        with tempfile.TemporaryDirectory() as tmp:
            teacher_int8 = onnx_test_scores(teacher_path, test, Path(tmp), ort)["average"]
    return {
        "batch": {"examples": n, "tokens": int(batch.input_ids.numel()), "precision": runtime.precision,
                  "threads": torch.get_num_threads()},
        "onnx": {"int8": bool(int8), "skipped": None if int8 else ("--no-onnx" if not onnx else "onnxruntime not installed")},
        "time_s": times,
        "teacher": row("teacher", None, {"test_average": teacher_test, "runs": [], "int8_test_average": teacher_int8}),
        "students": [row(name, sets, _with_int8(distilled_accuracy(p, data.hash), test, ort if int8 else None, say))
                     for name, sets, p in shaped],
    }


def _with_int8(accuracy: dict, test: list[Split], ort, say: Say) -> dict:
    """The shape's accuracy with the int8 test average of its distilled runs where ONNX Runtime is there."""
    return {**accuracy, "int8_test_average": None if ort is None else int8_accuracy(accuracy["runs"], test, ort, say)}


def students_table(r: dict) -> Table:
    b = r["batch"]
    t = Table(title=f"hrkd bench students ({b['examples']} examples, {b['tokens']} tokens per batch, {b['precision']}, "
                    f"{b['threads']} threads)", title_justify="left",
              caption=None if r["onnx"]["int8"] else f"ONNX int8 columns left out: {r['onnx']['skipped']}",
              caption_justify="left")
    int8 = r["onnx"]["int8"]
    t.add_column("model", style="bold")
    t.add_column("layers x width\n(heads)")
    t.add_column("params", justify="right")
    t.add_column(f"PyTorch\n{b['precision']} ex/s", justify="right")
    if int8:
        t.add_column("ORT int8\nex/s", justify="right")
    t.add_column("speed-up", justify="right")
    if int8:
        t.add_column("int8\nspeed-up", justify="right")
        t.add_column("int8 vs\nint8 teacher", justify="right")
    t.add_column("test acc.", justify="right")
    t.add_column("vs\nteacher", justify="right")
    if int8:
        t.add_column("int8\ntest acc.", justify="right")
    teacher = r["teacher"]["test_average"]
    for x in [r["teacher"], *r["students"]]:
        acc = "-" if x["test_average"] is None else f"{100 * x['test_average']:.2f}"
        if len(x["runs"]) > 1:
            acc += f" (n={len(x['runs'])})"
        # points of test accuracy against the teacher's, the figure the 1.5-point goal is about
        gap = "-" if teacher is None or x["test_average"] is None or x is r["teacher"] else f"{100 * (x['test_average'] - teacher):+.2f}"
        accs = [acc, gap]
        if int8:
            accs.append("-" if x.get("int8_test_average") is None else f"{100 * x['int8_test_average']:.2f}")
        cells = [x["name"], f"{x['layers']} x {x['hidden']} ({x['heads']})", f"{x['params'] / 1e6:.1f} M",
                 f"{x['examples_per_s']:.1f}"]
        if int8:
            cells.append(f"{x['int8_examples_per_s']:.1f}")
        cells.append(f"{x['speedup']:.2f}x")
        if int8:
            cells.extend([f"{x['int8_speedup']:.2f}x", f"{x['int8_vs_int8_speedup']:.2f}x"])
        t.add_row(*cells, *accs)
    return t


def shape_commands(r: dict) -> list[str]:
    """The line that distils each shape."""
    return [f"{x['name']}: {x['command']}" for x in r["students"]]
