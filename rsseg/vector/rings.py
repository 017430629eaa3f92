"""Rings stored compactly: the holes of regions that stay open across many strips.

A region that crosses strip edges is kept as its parts until it is complete. The parts'
holes never reach a strip edge, so they are final as soon as their strip is polygonised;
they are kept here as one int32 array of pixel-corner coordinates per part (8 bytes a
vertex, no GEOS object per ring) and written out directly as WKB when the region closes,
so no GEOS geometry of a region with tens of thousands of holes is ever built.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import shapely

WKB_POLYGON = bytes([1]) + (3).to_bytes(4, "little")  # byte order little endian, geometry type Polygon


@dataclass
class Rings:
    """Closed rings (first vertex repeated last) as ``coords`` (N×2 int32 x, y) cut at ``offsets``."""

    coords: np.ndarray
    offsets: np.ndarray  # R+1 int64

    @classmethod
    def of(cls, rings: np.ndarray) -> Rings:
        """From shapely LinearRings whose vertices are pixel corners (integers)."""
        xy, index = shapely.get_coordinates(rings, return_index=True)
        counts = np.bincount(index, minlength=len(rings))
        return cls(xy.astype(np.int32), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def area(self) -> float:
        """Total area of the rings in pixels (exact: integer shoelace)."""
        xy = self.coords.astype(np.int64)
        cross = np.concatenate([[0], np.cumsum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1])])
        return float(np.abs(cross[self.offsets[1:] - 1] - cross[self.offsets[:-1]]).sum()) / 2


@dataclass
class RingPolygon:
    """A valid polygon as compact rings: the shell's rings, then the holes, merged only when written."""

    shell: Rings  # exterior ring first, then any holes of the shell itself
    holes: list[Rings]
    area_px: float  # exact pixel area

    def rings(self) -> Iterator[np.ndarray]:
        """Each ring's vertices (n×2 int32), exterior first."""
        for part in (self.shell, *self.holes):
            for a, b in zip(part.offsets[:-1].tolist(), part.offsets[1:].tolist()):
                yield part.coords[a:b]

    def area(self, to_plane: Callable[[np.ndarray], np.ndarray]) -> float:
        """Area after mapping the vertices by ``to_plane`` (N×2 float64 -> N×2, e.g. to an equal-area CRS)."""
        shell, *holes = (abs(shoelace(to_plane(r.astype(np.float64)))) for r in self.rings())
        return shell - sum(holes)

    def to_polygon(self) -> shapely.Polygon:
        """The polygon as a shapely geometry (builds it whole)."""
        shell, *holes = (r.astype(np.float64) for r in self.rings())
        return shapely.Polygon(shell, holes)

    def wkb(self, to_map: Callable[[np.ndarray], np.ndarray]) -> bytes:
        """Little-endian WKB of the polygon with vertices mapped by ``to_map`` (N×2 float64 -> N×2).

        Written ring by ring into one growing buffer whose bytes are handed over without a copy.
        """
        out = io.BytesIO()
        out.write(WKB_POLYGON + sum(map(len, (self.shell, *self.holes))).to_bytes(4, "little"))
        for ring in self.rings():
            out.write(len(ring).to_bytes(4, "little"))
            out.write(np.ascontiguousarray(to_map(ring.astype(np.float64)), dtype="<f8").data)
        return out.getvalue()


def shoelace(xy: np.ndarray) -> float:
    """Signed area of a closed ring (N×2, first vertex repeated last)."""
    x, y = xy[:, 0], xy[:, 1]
    return float(x[:-1] @ y[1:] - x[1:] @ y[:-1]) / 2


@dataclass
class OpenPart:
    """One strip's piece of a region that crosses strip edges: its shell, and its holes kept compact."""

    shell: shapely.Polygon  # the part's exterior ring as a polygon without holes
    holes: Rings
    holes_area: float  # pixels
    valid: bool  # the part as polygonised was valid (GEOS), so its holes are simple rings
    class_id: int
    prob_sum: float

    @classmethod
    def split(cls, geoms: np.ndarray, class_ids: np.ndarray, prob_sums: np.ndarray | None) -> list[OpenPart]:
        """Open parts from one strip's polygons (pixel coordinates)."""
        valid = shapely.is_valid(geoms)
        rings, owner = shapely.get_rings(geoms, return_index=True)
        bounds = np.searchsorted(owner, np.arange(len(geoms) + 1))
        shells = shapely.polygons(rings[bounds[:-1]])
        parts = []
        for k in range(len(geoms)):
            holes = Rings.of(rings[bounds[k] + 1:bounds[k + 1]])
            parts.append(cls(shells[k], holes, holes.area(), bool(valid[k]), int(class_ids[k]),
                             0.0 if prob_sums is None else float(prob_sums[k])))
        return parts


def merge(parts: list[OpenPart]) -> RingPolygon | shapely.Polygon:
    """The region made of ``parts`` (pieces in successive strips, meeting only along strip edges).

    Holes never reach a strip edge, so every part's holes are holes of the region: only the
    shells are unioned and the compact holes are appended to the union's rings. The region
    is 4-connected, so its interior is connected, and with every part valid its rings are
    simple: the result is valid and stays compact (:class:`RingPolygon`). Otherwise it is
    built as a shapely polygon for the caller to repair, as a whole-raster polygon would be.
    """
    shell = parts[0].shell if len(parts) == 1 else shapely.union_all([p.shell for p in parts])
    if shell.geom_type != "Polygon":
        raise RuntimeError("the parts of one region do not join into one polygon")
    region = RingPolygon(Rings.of(shapely.get_rings(shell)), [p.holes for p in parts if len(p.holes)],
                         float(shapely.area(shell)) - sum(p.holes_area for p in parts))
    return region if all(p.valid for p in parts) else region.to_polygon()
