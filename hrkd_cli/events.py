"""TensorBoard event files of a training run (``runtime.tensorboard = true``).

:func:`hrkd_cli.train.trainer.fit` hands every logged step and every dev evaluation
to an :class:`EventLog`, so each recipe that trains through it (teach, distill,
the baselines) gets the same scalars, written by rank 0 only into
``<run>/tensorboard/``:

- ``loss/total``: the loss optimised (Eq. 5, or Eq. 17 for HRKD)
- ``loss/<term>``: embd (Eq. 1), attn (Eq. 3), hidn (Eq. 4), pred (Eq. 2), summed over domains
- ``loss/<term>/<domain>`` (attn and hidn also ``.../layer<m>``); the teachers' ``loss/ce/<domain>``
- ``dev/<domain>``, ``dev/average``: dev accuracy at each evaluation
- ``ratios/layer<m>/<domain>``: HRKD's domain-relational ratio r_{m,d} (layer 0: the embeddings)
- ``similarity/layer<m>/<domain>/layer<j>``: the hierarchical similarity alpha^H of layer j in layer m's aggregate
- ``gradients/graph/layer<m>``, ``gradients/prototypes/layer<m>``: the gradient norms reaching the relational
  module (as hrkd inspect-ratios reads them)
- ``lr``, ``throughput/examples_per_s``, and ``train/<key>`` for any other number a recipe logs

A narrow student's general stage (hrkd_cli/train/general_kd.py) writes into ``<run>/tensorboard/general/``,
a run of its own in TensorBoard (its steps are not the task stage's): ``loss/total`` (L_general),
``loss/embd``, ``loss/attn``, ``loss/hidn``, ``lr``, ``throughput/examples_per_s``, and the held-out
L_general per domain before and after the stage, ``heldout/<domain>`` and ``heldout/total``.

The x axis is the number of optimiser steps done. All scalars of one step go
into one event (one protobuf, one queue entry): one event per scalar, as
SummaryWriter.add_scalar writes, took 8 ms for 100 scalars on one CPU core
against 0.7 ms. ``hrkd bench distill --tensorboard`` times the writer against a
step. ``tensorboard`` is an optional extra, imported only when the setting is on.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from hrkd_cli.errors import HrkdError

EXTRA = "pip install 'hrkd[tensorboard]'"
EVENTS_DIR = "tensorboard"
# Training scalars reach the file within this many seconds (TensorBoard's default is 120).
FLUSH_SECS = 30
TERMS = ("embd", "attn", "hidn", "pred")


def require_tensorboard():
    """The tensorboard package's writer and protobufs, or a one-line error naming the extra (exit 2)."""
    try:  # lazy: an optional extra; missing, it is the one-line error below
        import tensorboard  # noqa: F401  (the package itself first: a cached submodule would hide its absence)
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise HrkdError(f"runtime.tensorboard = true needs the tensorboard extra: {EXTRA}") from None
    return EventFileWriter, Event, SessionLog, Summary


class EventLog:
    """The event file of one training run (one trainer.fit), opened by :meth:`start`."""

    def __init__(self, log_dir: Path, domains: list[str]):
        self.log_dir = Path(log_dir)
        self.domains = list(domains)
        self._writer = None

    def start(self, step: int) -> None:
        """Open a new event file. Its first event, a session start at ``step``, makes TensorBoard drop the
        steps >= ``step`` of earlier files in the directory: those of a run this one resumes (logged after
        its last checkpoint, so trained again now) or replaces."""
        writer_cls, self._event, session_log, self._summary = require_tensorboard()
        self._writer = writer_cls(str(self.log_dir), flush_secs=FLUSH_SECS)
        self._writer.add_event(self._event(wall_time=time.time(), step=step,
                                           session_log=session_log(status=session_log.START)))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def scalars(self, step: int, values: dict[str, float], flush: bool = False) -> None:
        """Tag -> value at ``step``, as one event."""
        summary = self._summary(value=[self._summary.Value(tag=k, simple_value=v) for k, v in values.items()])
        self._writer.add_event(self._event(wall_time=time.time(), step=step, summary=summary))
        if flush:
            self._writer.flush()

    def train(self, step: int, logs: dict, examples_per_s: float) -> None:
        """One logged training step (the dict a recipe's step function returned, plus lr)."""
        self.scalars(step, train_scalars(logs, examples_per_s, self.domains))

    def dev(self, step: int, scores: dict[str, float]) -> None:
        """One dev evaluation; flushed at once (evaluations are rare and the point of watching)."""
        self.scalars(step, {f"dev/{d}": float(s) for d, s in scores.items()}, flush=True)


def train_scalars(logs: dict, examples_per_s: float, domains: list[str]) -> dict[str, float]:
    """Tag -> value for one logged step (tags as in the module docstring)."""
    out = {"lr": float(logs["lr"]), "throughput/examples_per_s": float(examples_per_s)}
    for key, value in logs.items():
        if key in ("step", "lr") or isinstance(value, (str, bool)) or value is None:
            continue
        if key == "loss":
            out["loss/total"] = float(value)
        elif key in TERMS and isinstance(value, (int, float)):
            out[f"loss/{key}"] = float(value)
        elif key == "terms":  # {term: [per domain: value or [per layer]]}
            for term, per_domain in value.items():
                for d, v in zip(domains, per_domain):
                    if isinstance(v, list):
                        out[f"loss/{term}/{d}"] = float(sum(v))
                        out.update({f"loss/{term}/{d}/layer{m + 1}": float(x) for m, x in enumerate(v)})
                    else:
                        out[f"loss/{term}/{d}"] = float(v)
        elif key == "ratios":  # [M+1][D]
            for m, row in enumerate(value):
                out.update({f"ratios/layer{m}/{d}": float(r) for d, r in zip(domains, row)})
        elif key == "similarity":  # M items, item m-1 [D][m+1]
            for m, per_domain in enumerate(value, start=1):
                for d, alphas in zip(domains, per_domain):
                    out.update({f"similarity/layer{m}/{d}/layer{j}": float(a) for j, a in enumerate(alphas)})
        elif key in ("grad_graph", "grad_prototypes"):  # per layer 0..M (kd_model.ratio_gradients)
            out.update({f"gradients/{key[5:]}/layer{m}": float(g) for m, g in enumerate(value)})
        else:
            _flatten(f"train/{key}", value, out)
    return out


def _flatten(tag: str, value, out: dict[str, float]) -> None:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flatten(f"{tag}/{i}", v, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{tag}/{k}", v, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out[tag] = float(value)


def event_log(preset, out: Path, runtime, domains: list[str], stage: str = "") -> EventLog | None:
    """``<out>/tensorboard``'s log (``<out>/tensorboard/<stage>``'s for a stage before the task's) when
    runtime.tensorboard is on, on rank 0; None otherwise (for fit)."""
    if not preset.runtime.tensorboard or not runtime.is_main:
        return None
    require_tensorboard()
    return EventLog(Path(out) / EVENTS_DIR / stage, domains)


@contextlib.contextmanager
def opened(log: EventLog | None, step: int):
    """``log`` open from ``step`` for the duration of the block (nothing when None), closed even on an error."""
    if log is None:
        yield
        return
    log.start(step)
    try:
        yield
    finally:
        log.close()
