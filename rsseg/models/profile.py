"""Model cost: parameters, FLOPs (``torch.utils.flop_counter``), CPU latency and peak tensor memory.

FLOPs follow :class:`torch.utils.flop_counter.FlopCounterMode`: two per multiply-add of
convolutions and matrix products (``mm``, ``bmm``, ``einsum`` through them); element-wise ops,
softmax and normalisation are not counted.
"""

from __future__ import annotations

import statistics
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from rsseg.models.registry import create_model, get_entry


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(fn: Callable[..., Any], *args: Any) -> int:
    """FLOPs of one call ``fn(*args)`` without autograd (2 per multiply-add)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def cpu_time_ms(fn: Callable[..., Any], *args: Any, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall-clock milliseconds of ``fn(*args)`` under ``torch.inference_mode``."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            fn(*args)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


class _PeakMemory(TorchDispatchMode):
    """Tracks bytes of tensor storages allocated by ops while active (inputs not counted).

    A storage counts from the op that creates it until the last tensor viewing it is freed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: dict[int, list[int]] = {}  # storage pointer -> [bytes, tensors alive]

    def _release(self, ptr: int) -> None:
        entry = self._live[ptr]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._live[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - dispatch protocol
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr == 0 or (ptr in inputs and ptr not in self._live):
                continue  # empty, or a view of memory that existed before
            if ptr not in self._live:
                self._live[ptr] = [storage.nbytes(), 0]
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            self._live[ptr][1] += 1
            weakref.finalize(t, self._release, ptr)
        return out


def peak_memory_bytes(fn: Callable[..., Any], *args: Any) -> int:
    """Peak bytes of tensors that ``fn(*args)`` allocates (without autograd), beyond its inputs."""
    tracker = _PeakMemory()
    with torch.no_grad(), tracker:
        result = fn(*args)
    del result
    return tracker.peak


@dataclass(frozen=True)
class ModelProfile:
    """Cost of a registered model at one input size."""

    name: str
    paper: str
    backbone: str
    params: int
    gflops: float
    cpu_ms: float | None


def profile_model(name: str, size: int = 512, in_channels: int = 3, num_classes: int = 6,
                  timing: bool = True, repeats: int = 3, **kwargs: Any) -> ModelProfile:
    """Build ``name`` (eval mode, random weights) and measure it on a ``1×C×size×size`` input.

    ``kwargs`` go to the model builder (e.g. ``backbone``); ``repeats`` timed runs give the median.
    """
    entry = get_entry(name)
    model = create_model(name, num_classes, in_channels, **kwargs).eval()
    x = torch.randn(1, in_channels, size, size)
    gflops = count_flops(model, x) / 1e9
    ms = cpu_time_ms(model, x, repeats=repeats) if timing else None
    return ModelProfile(name, entry.paper, kwargs.get("backbone", entry.default_backbone),
                        count_parameters(model), gflops, ms)
