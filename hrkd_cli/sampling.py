"""Which examples make up training step s.

Every step holds one equal-sized sub-batch from every stream (a stream is a
domain, or all domains pooled). The order is a pure function of (seed, step),
so a resumed run continues at exactly the same examples, and a run on W
processes sees the same global batch as a run on one: rank r takes rows
r, r+W, ... of each global sub-batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hrkd_cli.errors import HrkdError


@dataclass
class StepSchedule:
    sizes: list[int]  # examples per stream
    batch: int  # global rows per stream per step
    seed: int
    epochs: float

    def __post_init__(self):
        self._perms: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def steps_per_epoch(self) -> int:
        # An epoch is one pass over the largest stream; smaller streams cycle.
        return max(1, math.ceil(max(self.sizes) / self.batch))

    @property
    def total_steps(self) -> int:
        return max(1, math.ceil(self.epochs * self.steps_per_epoch))

    def _perm(self, stream: int, cycle: int) -> torch.Tensor:
        key = (stream, cycle)
        if key not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + stream * 10_007 + cycle)
            self._perms[key] = torch.randperm(self.sizes[stream], generator=g)
            # Keep the cache small: a stream needs at most its current and next cycle.
            for old in [k for k in self._perms if k[0] == stream and k[1] < cycle - 1]:
                del self._perms[old]
        return self._perms[key]

    def global_indices(self, step: int) -> list[list[int]]:
        out = []
        for stream, n in enumerate(self.sizes):
            rows = []
            for pos in range(step * self.batch, (step + 1) * self.batch):
                rows.append(int(self._perm(stream, pos // n)[pos % n]))
            out.append(rows)
        return out


def shard(rows: list[int], rank: int, world_size: int) -> list[int]:
    return rows[rank::world_size]


def check_shardable(batch: int, world_size: int, sizes: list[int], what: str) -> None:
    if batch % world_size:
        raise HrkdError(
            f"{what}={batch} is not divisible by --nproc {world_size}: every process needs an equal share of each sub-batch"
        )
    if min(sizes) < world_size:
        raise HrkdError(f"--nproc {world_size} is larger than the smallest domain's {min(sizes)} training examples")
