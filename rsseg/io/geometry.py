"""Grid geometry shared by prediction and patch cutting: window starts along an axis, metres per pixel."""

from __future__ import annotations

import math

from affine import Affine
from rasterio.crs import CRS

EARTH_RADIUS = 6378137.0  # metres (WGS 84 semi-major axis)


def axis_starts(size: int, tile: int, stride: int) -> list[int]:
    """Window starts along one axis: every ``stride``, the last shifted inward to end at ``size``.

    A scene no longer than ``tile`` gets one window at 0 (it is padded to the tile).
    """
    if tile <= 0 or stride <= 0:
        raise ValueError("tile and stride must be positive")
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def gsd_metres(transform: Affine, crs: CRS | None, height: int, width: int) -> float | None:
    """Metres per pixel (geometric mean of x and y) of a grid; a geographic CRS is converted at
    the grid's centre latitude, other units by the CRS's linear unit factor. ``None`` without a CRS;
    ``ValueError`` for a geographic grid whose centre lies at or beyond a pole."""
    if crs is None:
        return None
    dx, dy = math.hypot(transform.a, transform.d), math.hypot(transform.b, transform.e)
    if crs.is_geographic:
        degrees = (transform * (width / 2, height / 2))[1]
        if not -90 < degrees < 90:
            raise ValueError(f"centre latitude {degrees:.6g}° is not within ±90° (a geographic CRS on a "
                             "grid that is not)")
        lat = math.radians(degrees)
        per_degree = math.pi / 180 * EARTH_RADIUS
        dx, dy = dx * per_degree * math.cos(lat), dy * per_degree
    else:
        factor = crs.linear_units_factor[1] if crs.linear_units else 1.0
        dx, dy = dx * factor, dy * factor
    return math.sqrt(dx * dy)
