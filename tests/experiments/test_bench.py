"""`hrkd bench distill` and `hrkd bench students`: figures measured side by side, and ratios that follow from them."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from hrkd_cli.data.store import load_prepared
from hrkd_cli.experiments import bench_students as BS
from hrkd_cli.experiments.bench import bench_distill, bench_table
from hrkd_cli.experiments.benchkit import alternating_medians, alternating_times
from hrkd_cli.runs import data_dir
from hrkd_cli.pipeline import ensure_prepared


def test_alternating_medians_times_each_callable_in_turn():
    calls = []
    medians = alternating_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 4  # one warm-up each, then alternating
    assert set(medians) == {"a", "b"} and all(v >= 0 for v in medians.values())
    calls.clear()
    rounds = alternating_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 4, balanced=True)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up, then each goes first in turn
    assert [len(v) for v in rounds.values()] == [4, 4]


def test_bench_figures_are_consistent(tiny_preset, cpu_runtime):
    said = []
    r = bench_distill(tiny_preset(), cpu_runtime, steps=2, say=said.append)
    assert any("untrained one of the same architecture" in m for m in said)  # no teacher trained yet
    st = r["step_time_s"]
    assert r["graph_overhead"] == pytest.approx(st["hrkd"] / st["multi-domain"])
    assert set(r["graph_overheads"]) == {"hrkd", "hrkd-residual", "hrkd-excess"}  # every read-out, side by side
    assert r["graph_overheads"]["hrkd-residual"] == pytest.approx(st["hrkd-residual"] / st["multi-domain"])
    ips = r["inference_examples_per_s"]
    assert r["speedup"] == pytest.approx(ips["student"] / ips["teacher"])
    assert r["params"]["student"] < r["params"]["teacher"]  # 2 of the teacher's 4 layers
    assert r["step_flops"] > 0 and r["utilisation"] == pytest.approx(r["achieved_flops_per_s"] / r["matmul_flops_per_s"])
    assert r["batch"]["examples"] == 3 * 4  # one sub-batch of 4 from each of 3 domains
    assert bench_table(r).row_count == 13  # Eq. 5 and three Eq. 17 read-outs replace two step rows and the ratio


# ---------------------------------------------------------------- hrkd bench students

# Shapes of the tiny 4-layer, 32-wide, 4-head teacher (the shipped ones name its layer 6 and 12 heads).
TINY_SHAPES = (
    ("preset", ()),
    ("1 layer", ("student.teacher_layers=[4]", 'distill.tag="1L"')),
    ("narrow", ('student.init="random"', "student.num_layers=2", "student.hidden_size=16", "student.num_heads=4",
                "student.intermediate_size=64", "student.general_epochs=1", 'distill.tag="2x16"')),
)


def _fabricate_run(preset, tag: str, average: float, data_hash: str, seed: int = 1) -> None:
    path = BS.run_dir(preset) / "student" / tag / f"seed-{seed}"
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"role": "student", "preset": preset.model_dump(mode="json"),
                                               "data_hash": data_hash, "test": {"average": average}}))


def test_bench_students_table(tiny_preset, cpu_runtime):
    p = tiny_preset()
    ensure_prepared(p, lambda m: None)
    data = load_prepared(data_dir(p))
    one = BS.shape_preset(p, "1 layer", TINY_SHAPES[1][1])
    _fabricate_run(one, "hrkd-1L", 0.8125, data.hash, seed=1)
    _fabricate_run(one, "hrkd-1L", 0.7875, data.hash, seed=2)
    # not this shape's recipe (another distill.lr), and not this data: neither counts
    _fabricate_run(one.model_copy(update={"distill": one.distill.model_copy(update={"lr": 9e-4})}), "hrkd-1L-lr", 0.1, data.hash)
    _fabricate_run(one, "hrkd-1L-old", 0.2, "another-hash")
    # a run of the shape on a transfer set is another configuration
    on_transfer = one.model_copy(update={"data": one.data.model_copy(update={"unlabeled": "u.jsonl", "windows": 2})})
    _fabricate_run(on_transfer, "hrkd+transfer-unlabeled-windows2-1L", 0.3, data.hash)
    # an older run.json whose student section predates general_epochs still matches the preset's student
    old = p.model_dump(mode="json")
    del old["student"]["general_epochs"]
    (BS.run_dir(p) / "student" / "hrkd" / "seed-1").mkdir(parents=True)
    (BS.run_dir(p) / "student" / "hrkd" / "seed-1" / "run.json").write_text(
        json.dumps({"preset": old, "data_hash": data.hash, "test": {"average": 0.75}}))

    r = BS.bench_students(p, cpu_runtime, steps=2, shapes=TINY_SHAPES, say=lambda m: None)
    has_onnxruntime = importlib.util.find_spec("onnxruntime") is not None
    rows = {x["name"]: x for x in r["students"]}
    assert list(rows) == ["preset", "1 layer", "narrow"]  # one row per shape, in order
    assert (rows["preset"]["layers"], rows["1 layer"]["layers"], rows["narrow"]["hidden"]) == (2, 1, 16)
    # hand count of the 1-layer student (vocab 30522, width 32, 128 positions, 2 token types, FFN 64, 3 domains x 2 labels)
    emb = 30522 * 32 + 128 * 32 + 2 * 32 + 2 * 32
    layer = 4 * (32 * 32 + 32) + 2 * 32 + (32 * 64 + 64) + (64 * 32 + 32) + 2 * 32
    pooler = 32 * 32 + 32  # BERT's pooler of the default head (student.head = "pooler")
    assert rows["1 layer"]["params"] == emb + layer + pooler + 3 * (32 * 2 + 2)
    # speed-ups are the teacher's time over the model's, from the same measurements
    t = r["time_s"]
    for name, x in rows.items():
        assert x["speedup"] == pytest.approx(t["teacher"] / t[name])
        assert x["examples_per_s"] == pytest.approx(r["batch"]["examples"] / t[name])
        if has_onnxruntime:  # the onnx extra; CI installs only [test], where the next test's path applies
            assert x["int8_speedup"] == pytest.approx(t["teacher"] / t[f"{name} [int8]"])
            assert x["int8_vs_int8_speedup"] == pytest.approx(t["teacher [int8]"] / t[f"{name} [int8]"])
    assert r["teacher"]["speedup"] == 1.0 and r["onnx"]["int8"] == has_onnxruntime
    # accuracy: the mean of this shape's two runs; "-" (None) for the narrow shape, never distilled
    assert rows["1 layer"]["test_average"] == pytest.approx(0.8) and len(rows["1 layer"]["runs"]) == 2
    assert rows["preset"]["test_average"] == pytest.approx(0.75)
    assert rows["narrow"]["test_average"] is None and r["teacher"]["test_average"] is None
    # each shape is printed with the line that distils it
    assert rows["narrow"]["command"].startswith("hrkd distill --preset tiny --set 'student.init=\"random\"'")
    assert BS.shape_preset(p, "narrow", TINY_SHAPES[2][1]).student.general_epochs == 1
    table = BS.students_table(r)
    assert table.row_count == 4 and len(table.columns) == (11 if has_onnxruntime else 7)  # int8 columns need the extra
    # fabricated runs have no weights to serve as int8: no int8 accuracy
    assert all(x["int8_test_average"] is None for x in [r["teacher"], *r["students"]])
    assert [c.startswith("1 layer: hrkd distill") for c in BS.shape_commands(r)] == [False, True, False]


def test_bench_students_leaves_out_onnx_without_onnxruntime(tiny_preset, cpu_runtime, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    said = []
    r = BS.bench_students(tiny_preset(), cpu_runtime, steps=1, shapes=TINY_SHAPES[:2], say=said.append)
    assert any("onnxruntime is not installed" in m for m in said)
    assert r["onnx"] == {"int8": False, "skipped": "onnxruntime not installed"}
    assert all(x["int8_examples_per_s"] is None and x["int8_speedup"] is None and x["int8_vs_int8_speedup"] is None for x in [r["teacher"], *r["students"]])
    assert not any(k.endswith("[int8]") for k in r["time_s"])
    table = BS.students_table(r)
    assert len(table.columns) == 7 and "onnxruntime not installed" in table.caption


def test_shipped_shapes_build_on_a_minilm_shaped_teacher():
    """The shipped shapes are valid presets, and fit a 6-layer, 12-head teacher's layer map and heads."""
    from hrkd_cli.config import load_preset
    from hrkd_cli.model.classifier import uniform_layer_map

    base = load_preset("amazon-cpu")
    assert [n for n, _ in BS.STUDENT_SHAPES] == ["preset", "2 layers", "1 layer", "narrow"]
    for name, sets in BS.STUDENT_SHAPES:
        s = BS.shape_preset(base, name, sets).student
        depth = len(s.teacher_layers) if s.init in ("general", "teacher-layers", "teacher-slice") else s.num_layers
        uniform_layer_map(6, depth)  # raises where the depth does not divide 6
        if s.init == "teacher-slice":  # as wide as its heads allow, cut from the 384-wide teacher
            assert s.num_heads == 12 and s.hidden_size % s.num_heads == 0 and s.intermediate_size == 4 * s.hidden_size
            assert s.hidden_size < 384 and s.general_epochs == 0


def test_bench_students_cli_writes_json(tmp_path, tiny_teacher_dir, capsys, monkeypatch):
    from tiny import tiny_preset_dict

    from hrkd_cli import cli
    from hrkd_cli.config import preset_to_toml, validate_preset

    preset = tmp_path / "tiny.toml"
    preset.write_text(preset_to_toml(validate_preset(tiny_preset_dict(tmp_path / "run", tiny_teacher_dir), "tiny")))
    monkeypatch.setattr(BS, "STUDENT_SHAPES", TINY_SHAPES[:2])
    monkeypatch.setattr(sys, "argv", ["hrkd", "bench", "students", "--preset", str(preset), "--steps", "1",
                                      "--no-onnx", "--json", str(tmp_path / "b.json")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr().out
    assert e.value.code in (0, None)
    assert "1 layer: hrkd distill --preset tiny --set 'student.teacher_layers=[4]'" in out
    saved = json.loads((tmp_path / "b.json").read_text())
    assert [x["name"] for x in saved["students"]] == ["preset", "1 layer"] and saved["onnx"]["skipped"] == "--no-onnx"


def test_onnx_test_scores_reproduce_hrkd_eval_and_int8_scores_runs_with_weights(tiny_preset, cpu_runtime, tmp_path):
    ort = pytest.importorskip("onnxruntime")  # the onnx extra
    pytest.importorskip("onnx")
    from hrkd_cli.train.evaluation import evaluate_checkpoint
    from hrkd_cli.pipeline import teach

    p = tiny_preset()
    out = teach(p, cpu_runtime, say=lambda m: None)
    data = load_prepared(data_dir(p))
    splits = BS.load_splits(data, "test", list(data.domains))
    want = evaluate_checkpoint(out / "best", splits, cpu_runtime)
    (tmp_path / "fp32").mkdir()
    # fp32 ONNX over the whole test split, head by head: hrkd eval's accuracies exactly
    assert BS.onnx_test_scores(out / "best", splits, tmp_path / "fp32", ort, quantize=False) == pytest.approx(want)
    runs = [{"run": str(out)}, {"run": str(tmp_path / "no-weights")}]  # a run.json whose checkpoint is gone
    said = []
    mean = BS.int8_accuracy(runs, splits, ort, said.append)
    assert 0.0 <= mean <= 1.0 and runs[0]["int8_test_average"] == mean
    assert "int8_test_average" not in runs[1] and len(said) == 1
    assert BS.int8_accuracy(runs[1:], splits, ort, said.append) is None
    # with a trained teacher in the run directory, bench students scores it as int8 too (the per-domain group)
    r = BS.bench_students(p, cpu_runtime, steps=1, shapes=TINY_SHAPES[:1], say=said.append)
    assert any(m == f"scoring {out} as ONNX int8 on the test split" for m in said)
    assert r["teacher"]["test_average"] == pytest.approx(want["average"])
    assert 0.0 <= r["teacher"]["int8_test_average"] <= 1.0


def test_distilled_accuracy_reads_a_record_that_predates_a_setting_as_it_ran(tiny_preset):
    """A student record from before `student.head` existed ran with the "cls" head: it is a run of a "cls" shape,
    never of today's default "pooler" one (and a record with the head it names counts for that head)."""
    from hrkd_cli.runs import run_dir

    def record(seed: int, student: dict) -> None:
        path = run_dir(pooler) / "student" / "hrkd" / f"seed-{seed}" / "run.json"
        path.parent.mkdir(parents=True)
        preset = pooler.model_dump(mode="json")
        preset["student"] = student
        path.write_text(json.dumps({"role": "student", "preset": preset, "data_hash": "h",
                                    "test": {"average": 80.0 + seed}}))

    pooler = tiny_preset(student={"head": "pooler"})
    cls = tiny_preset(student={"head": "cls"})
    old = {k: v for k, v in pooler.student.model_dump(mode="json").items() if k != "head"}
    record(1, old)
    record(2, {**old, "head": "pooler"})
    assert [r["test_average"] for r in BS.distilled_accuracy(pooler, "h")["runs"]] == [82.0]
    assert [r["test_average"] for r in BS.distilled_accuracy(cls, "h")["runs"]] == [81.0]
    assert BS.distilled_accuracy(pooler, "other")["runs"] == []  # another prepared data set


def test_students_table_shows_each_students_gap_to_the_teacher():
    def row(name, acc, runs=1):
        return {"name": name, "layers": 1, "hidden": 8, "heads": 2, "params": 1e6, "examples_per_s": 10.0,
                "speedup": 1.0, "test_average": acc, "runs": [{}] * runs, "int8_test_average": None}
    r = {"batch": {"examples": 4, "tokens": 64, "precision": "fp32", "threads": 1},
         "onnx": {"int8": False, "skipped": "--no-onnx"},
         "teacher": row("teacher", 0.8962, runs=0), "students": [row("a", 0.835), row("b", None)]}
    table = BS.students_table(r)
    gap = next(c for c in table.columns if c.header == "vs\nteacher")
    assert list(gap._cells) == ["-", "-6.12", "-"]  # the teacher is the reference, not a row to compare


def test_students_table_is_printed_whole_off_a_terminal():
    """A log or a pipe is 80 columns to rich: the ten-column table must still print without cut cells."""
    import io

    from rich.console import Console

    from hrkd_cli.tables import print_table

    def row(name, acc):
        return {"name": name, "layers": 2, "hidden": 384, "heads": 12, "params": 15.5e6, "examples_per_s": 70.4,
                "int8_examples_per_s": 92.2, "speedup": 3.79, "int8_speedup": 4.96, "int8_vs_int8_speedup": 2.47, "test_average": acc,
                "runs": [{}], "int8_test_average": acc}
    r = {"batch": {"examples": 32, "tokens": 4096, "precision": "fp32", "threads": 2},
         "onnx": {"int8": True, "skipped": None},
         "teacher": row("teacher", 0.8962), "students": [row("2 layers", 0.835)]}
    buf = io.StringIO()
    print_table(Console(file=buf, width=80), BS.students_table(r))
    text = buf.getvalue()
    assert "…" not in text and "2 layers" in text and "-6.12" in text and "4.96x" in text and "2.47x" in text


def test_bench_times_the_tensorboard_writer_side_by_side(tiny_preset, cpu_runtime):
    pytest.importorskip("tensorboard")  # the extra
    r = bench_distill(tiny_preset(runtime={"tensorboard": True}), cpu_runtime, steps=2, say=lambda m: None)
    tb = r["tensorboard"]
    assert set(tb["step_time_s"]) == {"off", "on"} and all(v > 0 for v in tb["step_time_s"].values())
    assert len(tb["ratios"]) == 2 and tb["overhead"] == pytest.approx(sum(tb["ratios"]) / 2)  # the median of 2
    assert 0 < tb["write_s"] and tb["write_share"] == pytest.approx(tb["write_s"] / tb["step_time_s"]["off"])
    # 3 domains, 2 student layers: lr, examples/s, the loss and its 4 sums; per domain embd, pred and
    # attn, hidn (each a sum and 2 layers); 3 x 3 ratios; alpha^H of 2 + 3 layers per domain
    assert tb["scalars"] == 7 + 3 * 8 + 3 * 3 + 3 * (2 + 3)
    table = bench_table(r)
    assert table.row_count == 16
    assert "TensorBoard" not in str([c._cells for c in bench_table({k: v for k, v in r.items() if k != "tensorboard"}).columns])
