"""Valid polygons, and simplification that keeps neighbours gap-free and non-overlapping."""

from __future__ import annotations

import numpy as np
import shapely

from rsseg.vector.source import Georef


def valid_polygons(geoms: np.ndarray) -> np.ndarray:
    """``geoms`` with invalid ones repaired by ``make_valid`` (structure method, areas kept)."""
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    return geoms


def simplify_coverage(pixel_geoms: np.ndarray, georef: Georef, tolerance: float) -> np.ndarray:
    """Pixel-coordinate polygons in map coordinates, simplified as one coverage.

    A vertex is first put at every pixel corner along the boundaries (``shapes`` output leaves
    out some), so neighbours share identical vertices on common edges: a valid coverage.
    ``shapely.coverage_simplify`` (Visvalingam–Whyatt, ``tolerance`` in map units) then
    simplifies each shared edge once for both sides, so neighbours stay gap-free and
    non-overlapping.
    """
    if not len(pixel_geoms):
        return georef.to_map(pixel_geoms)
    coverage = georef.to_map(shapely.segmentize(pixel_geoms, 1.0))
    return valid_polygons(shapely.coverage_simplify(coverage, tolerance, simplify_boundary=True))
