"""A scene's layout as data: primitives in the city frame and the plan that holds them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Prim:
    """One drawable: an axis-aligned box in the city frame (a disc for trees) and its paint."""

    kind: str
    layer: int
    box: tuple[float, float, float, float]  # u0, v0, u1, v1 (discs: cu, cv, r, height)
    color: tuple[int, int, int, int] = (0, 0, 0, 0)
    material: str = "paving"
    extra: float = 0.0  # roof: 0 flat, 1/2 ridge along u/v; car: 1/2 along u/v; shadow: caster height (px);
    # tree: crown shape (index into CROWNS)


@dataclass
class ScenePlan:
    """A scene's layout: the city frame, the sun, and its primitives bucketed by 512-pixel block."""

    width: int
    height: int
    seed: int
    cos: float
    sin: float
    shadow: tuple[float, float]  # shadow offset in pixels per pixel of height (image x, y)
    landscape: str = "urban"
    ground: tuple[tuple[str, float], ...] = ()  # (material, share): open ground painted by large-scale noise
    prims: list[Prim] = field(default_factory=list)
    bounds: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # per primitive: x0, y0, x1, y1
    buckets: dict[tuple[int, int], list[int]] = field(default_factory=lambda: defaultdict(list))

    def to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cos * u - self.sin * v, self.sin * u + self.cos * v

    def to_city(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cos * x + self.sin * y, -self.sin * x + self.cos * y
