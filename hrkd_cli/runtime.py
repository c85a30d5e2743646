"""Where and how the engine runs: device, precision, seeds, threads, processes.

Everything distributed goes through this module so that recipes read the same
with one process or many: rank 0 writes, every rank computes.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from hrkd_cli.errors import HrkdError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "bf16" or "fp32"
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        """bf16 autocast for the matrix products; losses are computed in fp32 by the loss functions."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


def cpu_supports_bf16() -> bool:
    # AVX512-BF16 or AMX make bf16 matmuls several times faster than fp32; without them
    # bf16 is emulated and slower, so "auto" falls back to fp32.
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_supports_bf16() else "fp32"


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise HrkdError("runtime.device='cuda' but no CUDA device is available")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def setup(device: str = "auto", precision: str = "auto", threads: int = 0) -> Runtime:
    """Initialise the process group when launched by torchrun, pick device and precision."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = resolve_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if dev.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    if threads <= 0:
        threads = max(1, (os.cpu_count() or 1) // world_size)
    torch.set_num_threads(threads)
    return Runtime(device=dev, precision=resolve_precision(precision, dev), rank=rank, world_size=world_size)


def all_reduce_sum(t: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Sum across ranks with gradient (the backward all-reduces the gradient too)."""
    if not runtime.distributed:
        return t
    # lazy: a torch built without distributed support (USE_DISTRIBUTED=0) raises ImportError here, and only
    # a run over several processes comes this far
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(t, op=dist.ReduceOp.SUM)


def all_reduce_mean_detached(t: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Mean across ranks of a value that is only logged."""
    if not runtime.distributed:
        return t.detach()
    t = t.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / runtime.world_size


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()


class RngState:
    """CPU (and the model's CUDA device) RNG state, to replay the same dropout masks."""

    def __init__(self, device: torch.device):
        self.device = device if device.type == "cuda" else None
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(self.device) if self.device is not None else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.device is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


@contextlib.contextmanager
def requires_grad(params: Sequence[torch.Tensor], flag: bool):
    """Temporarily set requires_grad on ``params`` (the previous flags are restored)."""
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(flag)
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
