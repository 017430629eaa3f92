"""Format-aware, chunked, atomic writing of polygon layers (GeoPackage, Shapefile, GeoJSON, FlatGeobuf)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np
import shapely
from pyogrio.raw import write

from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output

DRIVERS = {"gpkg": "GPKG", "shp": "ESRI Shapefile", "geojson": "GeoJSON", "fgb": "FlatGeobuf"}
SUFFIXES = {".gpkg": "gpkg", ".shp": "shp", ".geojson": "geojson", ".json": "geojson", ".fgb": "fgb"}
MULTI_LAYER = {"gpkg"}
SHAPEFILE_FIELD_CHARS = 10


def resolve_format(path: str | Path, fmt: str | None) -> str:
    """The output format (``gpkg``, ``shp``, ``geojson``, ``fgb``) from ``fmt`` or the file suffix."""
    path = Path(path)
    by_suffix = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        if by_suffix is None:
            raise RssegError(f"{path}: unknown vector format (use a suffix {', '.join(SUFFIXES)} or --format)")
        return by_suffix
    fmt = fmt.lower()
    if fmt not in DRIVERS:
        raise RssegError(f"{path}: unknown format {fmt!r} (choose from {', '.join(DRIVERS)})")
    if by_suffix not in (None, fmt):
        raise RssegError(f"{path}: suffix {path.suffix} does not match format {fmt}")
    return fmt


class LayerWriter:
    """Appends chunks of polygons with attribute columns to named layers of one output."""

    def __init__(self, tmp_path: Path, fmt: str, crs_wkt: str | None, fields: list[str]) -> None:
        self.path, self.fmt, self.crs_wkt, self.fields = tmp_path, fmt, crs_wkt, fields
        if fmt == "shp":
            long = [f for f in fields if len(f) > SHAPEFILE_FIELD_CHARS]
            assert not long, f"field names too long for a Shapefile: {long}"
        self.written: set[str] = set()

    def write(self, layer: str, geoms: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Append polygons (already in the output CRS) and their attribute columns to ``layer``."""
        if layer in self.written and not len(geoms):
            return
        if self.written and layer not in self.written and self.fmt not in MULTI_LAYER:
            raise RssegError(f"{self.path}: format {self.fmt} holds one layer only")
        write(str(self.path), shapely.to_wkb(geoms), [columns[f] for f in self.fields], self.fields,
              layer=layer, driver=DRIVERS[self.fmt], geometry_type="Polygon", crs=self.crs_wkt,
              encoding="UTF-8" if self.fmt == "shp" else None, append=layer in self.written)
        self.written.add(layer)


@contextlib.contextmanager
def open_layers(path: str | Path, fmt: str, crs_wkt: str | None, fields: list[str],
                overwrite: bool = False) -> Iterator[LayerWriter]:
    """A :class:`LayerWriter` on a temporary file renamed to ``path`` when the block succeeds."""
    with atomic_output(path, overwrite) as tmp:
        yield LayerWriter(tmp, fmt, crs_wkt, fields)
