"""`hrkd bench distill`: speed figures measured side by side in one process.

- the graph's overhead: training-step time of `multi-domain` (Eq. 5) vs `hrkd` (Eq. 17)
- the compression speed-up: teacher vs student inference throughput
- the step's achieved FLOP/s (counted by torch's FlopCounterMode) against this
  machine's measured bf16 (or fp32) matmul rate
- with runtime.tensorboard (--tensorboard): a logged hrkd step with and without
  writing its scalars to an event file (hrkd_cli/events.py)

Timings alternate between the compared configurations so that noise from other
processes hits both alike; each figure is the median of its repeats.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from hrkd_cli.batches import load_splits, make_batch
from hrkd_cli.config import Preset
from hrkd_cli.data.store import load_prepared
from hrkd_cli.events import EventLog, train_scalars
from hrkd_cli.experiments.benchkit import alternating_medians, alternating_times, teacher_for_bench
from hrkd_cli.model.classifier import count_parameters
from hrkd_cli.runs import Say, data_dir
from hrkd_cli.pipeline import ensure_prepared
from hrkd_cli.runtime import Runtime
from hrkd_cli.train.distill import step_logs
from hrkd_cli.train.students import distillation_loss, setup


def matmul_rate(runtime: Runtime, n: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of a square matmul at the run's precision (the machine's practical peak)."""
    dtype = torch.bfloat16 if runtime.precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=runtime.device, dtype=dtype)
    b = torch.randn(n, n, device=runtime.device, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


# (row name, method, distill.graph) timed side by side in bench_distill
BENCHED = (("multi-domain", "multi-domain", "paper"), ("hrkd", "hrkd", "paper"), ("hrkd-residual", "hrkd", "residual"),
           ("hrkd-excess", "hrkd", "excess"))


def bench_distill(preset: Preset, runtime: Runtime, steps: int = 5, say: Say = print) -> dict:
    ensure_prepared(preset, say)
    data = load_prepared(data_dir(preset))
    domains = list(data.domains)
    train = load_splits(data, "train", domains)
    b = preset.distill.batch_per_domain
    batch = make_batch([(d, x, list(range(min(b, len(x))))) for d, x in enumerate(train)]).to(runtime.device)
    tokens = int(batch.input_ids.numel())
    with tempfile.TemporaryDirectory() as tmp:
        teacher_path = teacher_for_bench(preset, data, Path(tmp), say)
        setups = {}
        # Eq. 5, then Eq. 17 with the paper's graph (the preset's graph mode) and with each read-out of ours
        for name, method, graph in BENCHED:
            cfg = preset.distill.model_copy(update={"method": method, "graph": graph})
            setups[name] = setup(preset.model_copy(update={"distill": cfg}, deep=True), runtime, teacher_path, domains, data)

    def train_step(s) -> None:
        s.model.train()
        loss, _, _ = distillation_loss(s, batch, runtime)
        loss.backward()
        s.model.zero_grad(set_to_none=True)

    step_time = alternating_medians({m: (lambda s=s: train_step(s)) for m, s in setups.items()}, steps, runtime.device)

    with FlopCounterMode(display=False) as counter:
        train_step(setups["hrkd"])
    step_flops = counter.get_total_flops()

    s = setups["hrkd"]
    teacher = s.teachers.models[0]
    student = s.model.student

    @torch.no_grad()
    def infer_once(model) -> None:
        model.eval()
        with runtime.autocast():
            model(batch.input_ids, batch.attention_mask, batch.token_type_ids, [(0, batch.input_ids.shape[0])])

    infer_time = alternating_medians({"teacher": lambda: infer_once(teacher), "student": lambda: infer_once(student)}, steps,
                                     runtime.device)
    throughput = {k: batch.input_ids.shape[0] / v for k, v in infer_time.items()}
    peak = matmul_rate(runtime)
    extra = {"tensorboard": tensorboard_overhead(s, batch, runtime, domains, steps)} if preset.runtime.tensorboard else {}
    return {
        "batch": {"examples": int(batch.input_ids.shape[0]), "tokens": tokens, "precision": runtime.precision},
        "step_time_s": step_time,
        "graph_overhead": step_time["hrkd"] / step_time["multi-domain"],
        "graph_overheads": {name: step_time[name] / step_time["multi-domain"] for name, _, _ in BENCHED[1:]},
        "params": {"teacher": count_parameters(teacher), "student": count_parameters(student)},
        "inference_examples_per_s": throughput,
        "speedup": throughput["student"] / throughput["teacher"],
        "step_flops": step_flops,
        "achieved_flops_per_s": step_flops / step_time["hrkd"],
        "matmul_flops_per_s": peak,
        "utilisation": step_flops / step_time["hrkd"] / peak,
        **extra,
    }


def tensorboard_overhead(s, batch, runtime: Runtime, domains: list[str], repeats: int) -> dict:
    """A logged hrkd step (forward, backward, the logs of distill.step_logs) with and without writing its
    scalars to an event file, timed in turn. Optimiser and clipping are left out, so the share is an upper
    bound; a run logs every distill.log_every-th step, so its share is this one over log_every."""
    count, last = itertools.count(1), {}

    def logged_step(events: EventLog | None) -> None:
        s.model.train()
        loss, terms, rel = distillation_loss(s, batch, runtime)
        loss.backward()
        last["logs"] = {"step": 0, "lr": 1e-4, **step_logs(loss, terms, rel, runtime, logged=True)}
        s.model.zero_grad(set_to_none=True)
        if events is not None:
            events.train(next(count), last["logs"], 1.0)

    with tempfile.TemporaryDirectory() as tmp:
        events = EventLog(Path(tmp), domains)
        events.start(0)
        try:
            rounds = alternating_times({"off": lambda: logged_step(None), "on": lambda: logged_step(events)},
                                       repeats, runtime.device, balanced=True)
            # the writer alone, many times: its cost is far below the steps' noise
            write = alternating_medians({"write": lambda: events.train(next(count), last["logs"], 1.0)}, 50)
        finally:
            events.close()
    times = {k: statistics.median(v) for k, v in rounds.items()}
    # the ratio within each round, then their median: load that drifts over seconds cancels out of each ratio
    ratios = [on / off for on, off in zip(rounds["on"], rounds["off"])]
    return {"step_time_s": times, "ratios": ratios, "overhead": statistics.median(ratios), "write_s": write["write"],
            "write_share": write["write"] / times["off"], "scalars": len(train_scalars(last["logs"], 1.0, domains))}


def bench_table(r: dict) -> Table:
    t = Table(title=f"hrkd bench distill ({r['batch']['examples']} examples, {r['batch']['tokens']} tokens per step, "
                    f"{r['batch']['precision']})", title_justify="left")
    t.add_column("Measure", style="bold")
    t.add_column("Value", justify="right")
    t.add_row("step time, multi-domain (Eq. 5)", f"{1000 * r['step_time_s']['multi-domain']:.0f} ms")
    for name, overhead in r.get("graph_overheads", {"hrkd": r["graph_overhead"]}).items():
        label = "hrkd (Eq. 17, paper graph)" if name == "hrkd" else f"hrkd, distill.graph = {name.split('-', 1)[1]}"
        t.add_row(f"step time, {label}", f"{1000 * r['step_time_s'][name]:.0f} ms ({overhead:.2f}x Eq. 5)")
    t.add_row("teacher parameters", f"{r['params']['teacher'] / 1e6:.1f} M")
    t.add_row("student parameters", f"{r['params']['student'] / 1e6:.1f} M")
    t.add_row("teacher inference", f"{r['inference_examples_per_s']['teacher']:.0f} ex/s")
    t.add_row("student inference", f"{r['inference_examples_per_s']['student']:.0f} ex/s")
    t.add_row("compression speed-up", f"{r['speedup']:.2f}x")
    t.add_row("hrkd step FLOPs", f"{r['step_flops'] / 1e9:.1f} GFLOP")
    t.add_row("achieved", f"{r['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s")
    t.add_row("matmul rate (this machine)", f"{r['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s")
    t.add_row("utilisation", f"{100 * r['utilisation']:.0f} %")
    if "tensorboard" in r:
        tb = r["tensorboard"]
        t.add_row("logged hrkd step, no TensorBoard", f"{1000 * tb['step_time_s']['off']:.1f} ms")
        t.add_row("logged hrkd step, TensorBoard writer on",
                  f"{1000 * tb['step_time_s']['on']:.1f} ms ({tb['overhead']:.3f}x, median of {len(tb['ratios'])} rounds)")
        t.add_row(f"TensorBoard write ({tb['scalars']} scalars)",
                  f"{1000 * tb['write_s']:.2f} ms ({100 * tb['write_share']:.2f} % of a step)")
    return t
