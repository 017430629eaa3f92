"""Blending weight windows."""

from __future__ import annotations

import math

import torch


def blend_window(height: int, width: int, floor: float = 1e-3) -> torch.Tensor:
    """A smooth separable window: ~1 at the centre, ``floor`` (> 0) at the edges.

    Each axis is ``floor + (1 - floor)·sin²(π(i + ½)/n)``; being strictly positive, a pixel
    covered by a single window (a scene edge) keeps a defined, normalisable weight.
    """
    if not 0 < floor <= 1:
        raise ValueError("floor must be in (0, 1]")

    def axis(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float64)
        return floor + (1 - floor) * torch.sin(math.pi * (i + 0.5) / n) ** 2

    return (axis(height)[:, None] * axis(width)[None, :]).float()
