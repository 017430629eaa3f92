"""``vectorize_mask``: a class-mask GeoTIFF to polygons with class, area and probability attributes."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import shapely
from tqdm import tqdm

from rsseg.errors import RssegError
from rsseg.io.outputs import check_outputs
from rsseg.io.qgis_style import polygon_qml
from rsseg.io.raster import bounded_gdal_cache
from rsseg.vector.polygonize import Regions, polygonize_windows
from rsseg.vector.postgis import is_postgis
from rsseg.vector.simplify import simplify_coverage, valid_polygons
from rsseg.vector.source import Georef, MaskSource
from rsseg.vector.write import LayerWriter, open_layers, resolve_format, sidecars

WINDOW_PIXELS = 1 << 24  # pixels per strip when window_rows is not given (16 MiB of uint8)
CHUNK_FEATURES = 10_000  # polygons per write (bounds what waits in memory)


@dataclass
class VectorizeSummary:
    """What a vectorisation wrote: polygons and total area per class, regions removed, time."""

    path: Path | str  # a file, or a PostGIS table (shown without credentials)
    counts: dict[str, int]
    areas: dict[str, float]
    area_unit: str
    removed: int
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary_line(self) -> str:
        """One line: total polygons, output, seconds, then polygons and area per class."""
        unit = "m²" if self.area_unit == "m2" else "px"
        per_class = ", ".join(f"{name} {n} ({self.areas[name]:,.0f} {unit})" for name, n in self.counts.items())
        removed = f", {self.removed} below `min_area` removed" if self.removed else ""
        return f"{self.total} polygons -> {self.path} in {self.seconds:.1f} s{removed}: {per_class or 'none'}"


@dataclass
class _Pending:
    """Finished polygons waiting to be written: WKB in map coordinates, or pixel geometries to simplify."""

    geoms: list[np.ndarray] = field(default_factory=list)
    class_ids: list[np.ndarray] = field(default_factory=list)
    areas: list[np.ndarray] = field(default_factory=list)
    mean_prob: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(g) for g in self.geoms)

    def add(self, regions: Regions, georef: Georef, min_area: float | None, keep_pixels: bool) -> int:
        """Queue valid regions of at least ``min_area``; return how many were too small.

        Compact regions (merged from open parts, valid by construction) go straight to WKB,
        never building a GEOS geometry, unless they are kept in pixels for simplification.
        """
        geoms = regions.geoms
        if regions.compact and keep_pixels:
            geoms = np.array([g.to_polygon() for g in geoms], dtype=object)
        if regions.compact and not keep_pixels:
            area, pixels = georef.ring_areas(geoms), np.array([g.area_px for g in geoms])
        else:
            geoms = valid_polygons(geoms)
            area, pixels = georef.areas(geoms), None
        keep = area >= min_area * (1 - 1e-9) if min_area else np.ones(len(geoms), dtype=bool)
        if keep_pixels:
            self.geoms.append(geoms[keep])
        elif pixels is not None:
            self.geoms.append(np.array([g.wkb(georef.map_xy) for g in geoms[keep]], dtype=object))
        else:
            self.geoms.append(shapely.to_wkb(georef.to_map(geoms[keep])))
        self.class_ids.append(regions.class_ids[keep])
        self.areas.append(area[keep])
        if regions.prob_sum is not None:
            pixels = shapely.area(geoms[keep]) if pixels is None else pixels[keep]
            self.mean_prob.append(regions.prob_sum[keep] / pixels / 255.0)
        return int((~keep).sum())

    def take(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        geoms, ids, areas = (np.concatenate(x) for x in (self.geoms, self.class_ids, self.areas))
        mean_prob = np.concatenate(self.mean_prob) if self.mean_prob else None
        self.geoms, self.class_ids, self.areas, self.mean_prob = [], [], [], []
        return geoms, ids, areas, mean_prob


class _Layers:
    """Routes polygons to the output layer(s), counting polygons and area per class."""

    def __init__(self, writer: LayerWriter, src: MaskSource, georef: Georef, layer: str, per_class: bool,
                 fields: list[str]) -> None:
        self.writer, self.src, self.georef, self.layer, self.per_class = writer, src, georef, layer, per_class
        self.fields = fields
        self.counts: Counter[int] = Counter()
        self.areas: Counter[int] = Counter()

    def write(self, wkb: np.ndarray, class_ids: np.ndarray, areas: np.ndarray, mean_prob: np.ndarray | None) -> None:
        uniq, inverse = np.unique(class_ids, return_inverse=True)
        columns = {"class_id": class_ids.astype(np.int32),
                   "class_name": np.array([self.src.name(int(c)) for c in uniq], dtype=object)[inverse],
                   self.georef.area_field: areas.astype(np.float64), "mean_prob": mean_prob}
        columns = {f: columns[f] for f in self.fields}
        for k, c in enumerate(uniq):
            here = inverse == k
            self.counts[int(c)] += int(here.sum())
            self.areas[int(c)] += float(areas[here].sum())
        groups = [(self.src.name(int(c)), inverse == k) for k, c in enumerate(uniq)] if self.per_class else \
            [(self.layer, slice(None))]
        for layer, rows in groups:
            self.writer.write(layer, wkb[rows], {f: v[rows] for f, v in columns.items()})

    def add_empty(self) -> None:
        """Create the layers that received no polygon, so that every expected layer exists."""
        if self.per_class:
            expected = self.src.selected if self.src.selected is not None else range(len(self.src.names or []))
            layers = [self.src.name(c) for c in expected]
        else:
            layers = [self.layer]
        empty = {"class_id": np.empty(0, np.int32), "class_name": np.empty(0, object),
                 self.georef.area_field: np.empty(0), "mean_prob": np.empty(0)}
        for layer in layers:
            if layer not in self.writer.written:
                self.writer.write(layer, np.empty(0, dtype=object), {f: empty[f] for f in self.fields})


def vectorize_mask(mask_path: str | os.PathLike, out_path: str | os.PathLike, *,
                   classes: Iterable[int | str] | None = None, min_area: float | None = None,
                   simplify: float | None = None, layer_per_class: bool = False, driver: str | None = None,
                   probs_path: str | os.PathLike | None = None, overwrite: bool = False, progress: bool = True,
                   window_rows: int | None = None, append: bool = False) -> VectorizeSummary:
    """Polygonise a class mask window by window into a GeoPackage/Shapefile/GeoJSON/FlatGeobuf, or a
    PostGIS table (``postgresql://user@host/db?table=NAME``, see :mod:`rsseg.vector.postgis`; ``append``
    adds to an existing table).

    The result equals polygonising the whole raster at once (4-connected regions of one class;
    nodata and classes outside ``classes`` give no polygons) while memory stays bounded by one
    strip of ``window_rows`` rows plus the regions crossing its edge. Attributes: ``class_id``,
    ``class_name``, ``area_m2`` (``area_px`` for a mask without CRS) and, with ``probs_path``,
    ``mean_prob``. ``min_area`` (m², pixels without CRS) drops every region (measured whole,
    across windows) smaller than it: it gives no polygon and its pixels stay uncovered.
    ``simplify`` (map units) simplifies the polygons as one coverage; this keeps all polygons
    (as compact geometries) until the end. ``driver`` is ``gpkg`` (default by suffix), ``shp``,
    ``geojson`` or ``fgb``; ``layer_per_class`` writes one GeoPackage layer per class.
    """
    if is_postgis(out_path):
        from rsseg.vector.postgis import vectorize_to_postgis

        return vectorize_to_postgis(mask_path, str(out_path), classes=classes, min_area=min_area, simplify=simplify,
                                    layer_per_class=layer_per_class, probs_path=probs_path, overwrite=overwrite,
                                    append=append, progress=progress, window_rows=window_rows)
    if append:
        raise RssegError(f"{out_path}: `append` applies to PostGIS tables only")
    start = time.perf_counter()
    out_path = Path(out_path)
    fmt = resolve_format(out_path, driver, layer_per_class)
    for name, value in (("min_area", min_area), ("simplify", simplify)):
        if value is not None and value < 0:
            raise RssegError(f"{out_path}: {name} must not be negative (got {value})")
    check_outputs({"-o": out_path, **{f"{what} (-o)": path for what, path in sidecars(out_path, fmt).items()}},
                  [mask_path, probs_path], overwrite)
    with contextlib.ExitStack() as stack:
        stack.enter_context(bounded_gdal_cache())
        src = MaskSource.open(mask_path, classes)
        stack.callback(src.close)
        probs = src.open_probs(probs_path) if probs_path is not None else None
        if probs is not None:
            stack.callback(probs.close)
        georef = Georef.of(src.ds, src.path)
        fields = ["class_id", "class_name", georef.area_field] + (["mean_prob"] if probs is not None else [])
        writer = stack.enter_context(open_layers(out_path, fmt, georef.crs_wkt, fields, overwrite))
        layers = _Layers(writer, src, georef, out_path.stem, layer_per_class, fields)
        bar = stack.enter_context(tqdm(total=src.ds.height, unit="row", desc=f"vectorize {src.path.name}",
                                       disable=not progress, leave=False))
        rows = window_rows or max(1, WINDOW_PIXELS // src.ds.width)
        pending, removed = _Pending(), 0
        for regions in polygonize_windows(src.ds, src.valid, rows, probs, bar.update):
            removed += pending.add(regions, georef, min_area, keep_pixels=simplify is not None)
            del regions  # a compact region's rings are not needed while its WKB is written
            if simplify is None and len(pending) >= CHUNK_FEATURES:
                layers.write(*pending.take())
        if len(pending):
            geoms, class_ids, areas, mean_prob = pending.take()
            if simplify is not None:
                geoms = shapely.to_wkb(simplify_coverage(geoms, georef, simplify))
            layers.write(geoms, class_ids, areas, mean_prob)
        layers.add_empty()
        if src.colors:
            writer.add_style(polygon_qml([src.name(i) for i in range(len(src.colors))], src.colors))
    ids = sorted(layers.counts)
    return VectorizeSummary(out_path, {src.name(c): layers.counts[c] for c in ids},
                            {src.name(c): layers.areas[c] for c in ids}, georef.area_unit, removed,
                            time.perf_counter() - start)
