"""Training-side torch.distributed helpers (set-up lives in :mod:`rsseg.distributed`)."""

from __future__ import annotations

from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from rsseg.distributed import DistEnv


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks in place (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: each item exactly once over all ranks, no padding.

    Used for validation so that reduced metrics equal a single-process evaluation.
    """

    def __init__(self, length: int, env: DistEnv):
        self.indices = list(range(env.rank, length, env.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
