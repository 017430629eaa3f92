"""Texture noise as a function of scene position only: value noise on a lattice, periodic fine grain."""

from __future__ import annotations

import numpy as np

NOISE_CELLS = (44.0, 8.0)  # lattice spacing in pixels of the two coarser texture scales
PERIOD = 509  # fine grain and sensor noise: periodic tables, too fine for the period to show


def _periodic_tables() -> tuple[np.ndarray, np.ndarray]:
    """Fine material grain (about 2 px, in [-1, 1]) and sensor noise (4 bands, sigma 2.2)."""
    rng = np.random.default_rng(12345)
    grain = rng.uniform(-1, 1, (PERIOD, PERIOD))
    for axis in (0, 1):  # a circular 1-2-1 smoothing, twice
        for _ in range(2):
            grain = (np.roll(grain, 1, axis) + 2 * grain + np.roll(grain, -1, axis)) / 4
    grain = (grain / np.abs(grain).max()).astype(np.float32)
    return grain, rng.normal(0.0, 2.2, (4, PERIOD, PERIOD)).astype(np.float32)


GRAIN, SENSOR = _periodic_tables()


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """A uniform value in [0, 1) per integer lattice point (a 32-bit integer hash)."""
    h = (ix.astype(np.uint64) * np.uint64(374761393) + iy.astype(np.uint64) * np.uint64(668265263)
         + np.uint64(salt * 2246822519 % 2 ** 32)) & np.uint64(0xFFFFFFFF)
    h = ((h ^ (h >> np.uint64(13))) * np.uint64(1274126177)) & np.uint64(0xFFFFFFFF)
    h = h ^ (h >> np.uint64(16))
    return (h.astype(np.float64) / 2.0 ** 32).astype(np.float32)


def _axis_weights(start: int, n: int, cell: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Lattice index (from the first one) and smoothstep weight of each pixel along one axis."""
    pos = (np.arange(start, start + n, dtype=np.float64) + 0.5) / cell
    i = np.floor(pos).astype(np.int64)
    f = (pos - i).astype(np.float32)
    return i - i[0], f * f * (3 - 2 * f), int(i[0])


def value_noise(x0: int, y0: int, w: int, h: int, cell: float, salt: int) -> np.ndarray:
    """Smooth noise in [-1, 1] on a lattice of ``cell`` pixels, a function of scene position only."""
    ix, fx, bx = _axis_weights(x0, w, cell)
    iy, fy, by = _axis_weights(y0, h, cell)
    gx, gy = np.meshgrid(np.arange(bx, bx + ix[-1] + 2), np.arange(by, by + iy[-1] + 2))
    lattice = _hash01(gx + 1_000_000, gy + 1_000_000, salt) * 2 - 1
    rows = lattice[iy] * (1 - fy)[:, None] + lattice[iy + 1] * fy[:, None]
    return rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx
