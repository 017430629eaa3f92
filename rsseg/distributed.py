"""torch.distributed set-up shared by training and prediction: one code path, one process or ``torchrun``."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rsseg.device import resolve_device


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
    if env.enabled and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if dev.type == "cuda" else "gloo"), timeout=timeout)
    return env, dev


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def gather_objects(obj: object) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
