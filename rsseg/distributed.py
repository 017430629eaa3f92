"""torch.distributed in one place: set-up, collectives that are no-ops in one process, and how work
is shared between ``torchrun`` ranks.

Nothing is scheduled at run time: every rank derives its share from its rank and the world size,
so the split is the same on every rank and after a restart.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from rsseg.device import resolve_device
from rsseg.errors import RssegError


@dataclass(frozen=True)
class DistEnv:
    """Rank, world size and local rank (the GPU index on its node) of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environ(cls) -> DistEnv:
        """What ``torchrun`` (or SLURM through it) put in the environment; one process otherwise."""
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                   int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device: str = "auto", backend: str | None = None,
                     timeout: datetime.timedelta | None = None) -> tuple[DistEnv, torch.device]:
    """Join the process group when launched by ``torchrun``; one rank per GPU (``LOCAL_RANK``).

    ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``. The backend
    defaults to NCCL on CUDA and gloo on CPU.
    """
    env = DistEnv.from_environ()
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", env.local_rank if env.enabled or dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if env.enabled and not joined():
        dist.init_process_group(backend or ("nccl" if dev.type == "cuda" else "gloo"), timeout=timeout)
    return env, dev


def joined() -> bool:
    """Whether this process is in a process group (every collective below is a no-op otherwise)."""
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every rank; one that stopped (on its own error, reported there) is one line here too."""
    if joined():
        try:
            dist.barrier()
        except RuntimeError:  # gloo: the peer closed the connection
            raise RssegError(f"rank {dist.get_rank()}: another rank stopped; its error says why") from None


def cleanup() -> None:
    """Leave the process group if this process joined one."""
    if joined():
        dist.destroy_process_group()


def gather_objects(obj: object) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not joined():
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks in place."""
    if joined():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (so that all ranks take the same branch)."""
    if not joined():
        return flag
    tensor = torch.tensor([float(flag)], device=device)
    dist.broadcast(tensor, 0)
    return bool(tensor.item())


def round_robin(n: int, env: DistEnv) -> list[int]:
    """Every ``world_size``-th index of ``range(n)`` from ``rank``: each index on exactly one rank."""
    return list(range(env.rank, n, env.world_size))


def contiguous_share(n: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s contiguous slice of ``n`` items split as evenly as possible over ``world`` ranks."""
    return slice(n * rank // world, n * (rank + 1) // world)


def scene_share(n_scenes: int, env: DistEnv) -> tuple[list[int], bool]:
    """The scenes this rank runs, and whether each is split into row bands across all ranks.

    With at least as many scenes as ranks, whole scenes go round-robin (scene i to rank
    i mod N); with fewer (one huge mosaic), every rank runs every scene on its own rows.
    """
    if not env.enabled:
        return list(range(n_scenes)), False
    if n_scenes >= env.world_size:
        return round_robin(n_scenes, env), False
    return list(range(n_scenes)), True


class ShardSampler(Sampler[int]):
    """This rank's round-robin share of ``length`` items: each exactly once over all ranks, no padding.

    Used for validation so that reduced metrics equal a single-process evaluation.
    """

    def __init__(self, length: int, env: DistEnv):
        self.indices = round_robin(length, env)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
