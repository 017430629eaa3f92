"""Window-by-window polygonisation whose result equals polygonising the whole raster at once.

The raster is read in full-width strips of rows. Each strip is polygonised with
``rasterio.features.shapes`` (4-connectivity, in pixel coordinates: x = column, y = row).
Polygons that touch a strip edge stay *open*; a union-find over the pixel pairs facing each
other across the edge (same column, same class) joins the parts of one region, and a region
is closed, merged and handed on as soon as none of its parts touches the newest strip's
bottom edge. Open parts keep their holes as compact coordinate arrays (``rings``), so
memory is bounded by one strip plus the open regions' vertices at 8 bytes each, even for a
background region with tens of thousands of holes. Diagonal contacts are not 4-adjacent, so
they never join regions, windowed or whole.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import chain
from typing import Callable, Iterator

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize, shapes
from rasterio.io import DatasetReader
from rasterio.windows import Window

from rsseg.errors import RssegError
from rsseg.vector.rings import OpenPart, RingPolygon, merge

SHAPES_DTYPES = ("uint8", "uint16", "int16", "int32")


@dataclass
class Regions:
    """Finished regions: polygons in pixel coordinates, their classes and probability sums.

    ``geoms`` holds shapely polygons, or (``compact``) :class:`RingPolygon` s for regions
    merged from open parts. ``prob_sum`` is the sum over each region's pixels of its class
    probability (0..255 scale), ``None`` without a probability raster. Pixel counts are the
    polygons' areas.
    """

    geoms: np.ndarray
    class_ids: np.ndarray
    prob_sum: np.ndarray | None

    @property
    def compact(self) -> bool:
        return bool(len(self.geoms)) and isinstance(self.geoms[0], RingPolygon)


class UnionFind:
    """Disjoint sets over integer ids that can forget whole sets once they are closed."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        parent = self.parent
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def forget(self, ids: list[int]) -> None:
        for i in ids:
            del self.parent[i]


def strip_polygons(data: np.ndarray, keep: np.ndarray, row0: int) -> tuple[np.ndarray, np.ndarray]:
    """Polygons (pixel coordinates, rows offset by ``row0``) and class ids of one strip."""
    if data.dtype.name not in SHAPES_DTYPES:
        data = data.astype(np.int32)
    rings, values = [], []
    for geom, value in shapes(data, mask=keep, connectivity=4, transform=Affine.translation(0, row0)):
        rings.append(geom["coordinates"])
        values.append(value)
    return polygons_from_rings(rings), np.array(values, dtype=np.int64)


def polygons_from_rings(rings: list[list[list[tuple[float, float]]]]) -> np.ndarray:
    """Shapely polygons from GeoJSON-style ring lists (shell first), built in bulk."""
    if not rings:
        return np.empty(0, dtype=object)
    flat = list(chain.from_iterable(rings))
    lengths = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
    coords = np.array(list(chain.from_iterable(flat)), dtype=np.float64)
    linear = shapely.linearrings(coords, indices=np.repeat(np.arange(len(flat)), lengths))
    owner = np.repeat(np.arange(len(rings)), [len(r) for r in rings])
    return shapely.polygons(linear, indices=owner)


def edge_labels(geoms: np.ndarray, ids: np.ndarray, y: float, width: int) -> np.ndarray:
    """Which polygon (by id, -1 for none) owns each pixel along the strip edge at row line ``y``.

    A polygon's pixels on the edge are exactly the spans where its exterior ring runs along
    the edge line (holes cannot reach a strip edge).
    """
    labels = np.full(width, -1, dtype=np.int64)
    if len(geoms) == 0:
        return labels
    xy, ring = shapely.get_coordinates(shapely.get_exterior_ring(geoms), return_index=True)
    on = xy[:, 1] == y
    seg = on[:-1] & on[1:] & (ring[:-1] == ring[1:])
    a, b = xy[:-1, 0][seg], xy[1:, 0][seg]
    start = np.minimum(a, b).astype(np.int64)
    length = np.abs(b - a).astype(np.int64)
    offsets = np.repeat(np.cumsum(length) - length, length)
    cols = np.arange(length.sum()) - offsets + np.repeat(start, length)
    labels[cols] = np.repeat(ids[ring[:-1][seg]], length)
    return labels


def strip_prob_sums(probs: DatasetReader, geoms: np.ndarray, data: np.ndarray, keep: np.ndarray,
                    row0: int) -> np.ndarray:
    """Sum of each polygon's own-class probability over its pixels (uint8 scale)."""
    h, w = data.shape
    window = Window(0, row0, w, h)
    classes = np.where(keep, data, 0).astype(np.int64)
    if keep.any() and classes.max() >= probs.count:
        raise RssegError(f"{probs.name}: has {probs.count} band(s) but the mask has class {classes.max()}")
    labels = rasterize(zip(geoms, range(1, len(geoms) + 1)), out_shape=(h, w),
                       transform=Affine.translation(0, row0), fill=0, dtype="int32") if len(geoms) else \
        np.zeros((h, w), np.int32)
    prob = np.zeros((h, w), dtype=np.float64)
    for band in np.unique(classes[keep]):
        here = keep & (classes == band)
        prob[here] = probs.read(int(band) + 1, window=window)[here]
    return np.bincount(labels.ravel(), weights=prob.ravel(), minlength=len(geoms) + 1)[1:]


def polygonize_windows(ds: DatasetReader, valid: Callable[[np.ndarray], np.ndarray], window_rows: int,
                       probs: DatasetReader | None = None,
                       on_rows: Callable[[int], None] | None = None) -> Iterator[Regions]:
    """Polygonise band 1 of ``ds`` strip by strip; yield regions as soon as they are complete.

    ``valid(strip) -> bool array`` says which pixels may become polygons (nodata and
    unselected classes excluded). The union of everything yielded equals
    ``rasterio.features.shapes`` run on the whole raster: same regions, same geometries.
    """
    height, width = ds.height, ds.width
    uf = UnionFind()
    parts: dict[int, OpenPart] = {}
    prev_labels = prev_values = None
    next_id = 0
    for row0 in range(0, height, window_rows):
        rows = min(window_rows, height - row0)
        row1 = row0 + rows
        data = ds.read(1, window=Window(0, row0, width, rows))
        keep = valid(data)
        geoms, values = strip_polygons(data, keep, row0)
        sums = strip_prob_sums(probs, geoms, data, keep, row0) if probs is not None else None
        bounds = shapely.bounds(geoms).reshape(-1, 4)
        top = (bounds[:, 1] == row0) & (row0 > 0)
        bottom = (bounds[:, 3] == row1) & (row1 < height)
        inner = ~(top | bottom)
        finished = [Regions(geoms[inner], values[inner], None if sums is None else sums[inner])]

        ids = np.full(len(geoms), -1, dtype=np.int64)
        ids[~inner] = np.arange(next_id, next_id + int((~inner).sum()))
        next_id += int((~inner).sum())
        parts.update(zip(ids[~inner].tolist(), OpenPart.split(geoms[~inner], values[~inner],
                                                              None if sums is None else sums[~inner])))
        if prev_labels is not None:
            top_labels = edge_labels(geoms[top], ids[top], row0, width)
            join = (prev_labels >= 0) & (top_labels >= 0) & (prev_values == data[0])
            for a, b in np.unique(np.stack([prev_labels[join], top_labels[join]], axis=1), axis=0):
                uf.union(int(a), int(b))
        prev_labels = edge_labels(geoms[bottom], ids[bottom], row1, width) if row1 < height else None
        prev_values = data[-1].copy()

        still_open = {uf.find(int(i)) for i in ids[bottom]}
        closing: dict[int, list[int]] = defaultdict(list)
        for i in parts:
            root = uf.find(i)
            if root not in still_open:
                closing[root].append(i)
        merged = []
        for members in closing.values():
            region = [parts.pop(i) for i in members]
            uf.forget(members)
            merged.append((merge(region), region[0].class_id, sum(p.prob_sum for p in region)))
        for compact in (False, True):
            chosen = [m for m in merged if isinstance(m[0], RingPolygon) == compact]
            if chosen:
                geoms, class_ids, prob_sums = zip(*chosen)
                finished.append(Regions(np.array(geoms, dtype=object), np.array(class_ids, dtype=np.int64),
                                        None if probs is None else np.array(prob_sums)))
        for batch in finished:
            if len(batch.geoms):
                yield batch
        if on_rows is not None:
            on_rows(rows)
