"""Format-aware, chunked, atomic writing of polygon layers (GeoPackage, Shapefile, GeoJSON, FlatGeobuf)."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
from pyogrio.raw import write

from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output
from rsseg.io.qgis_style import sidecar_path, store_gpkg_styles, write_sidecar

DRIVERS = {"gpkg": "GPKG", "shp": "ESRI Shapefile", "geojson": "GeoJSON", "fgb": "FlatGeobuf"}
SUFFIXES = {".gpkg": "gpkg", ".shp": "shp", ".geojson": "geojson", ".json": "geojson", ".fgb": "fgb"}
MULTI_LAYER = {"gpkg"}
GPKG_VERSION = "1.2"  # the GeoPackage version every QGIS 3 reads without a warning (GDAL writes 1.4 by default)
FORMAT_SUFFIX = {"gpkg": ".gpkg", "shp": ".shp", "geojson": ".geojson", "fgb": ".fgb"}  # of temporary files


SHAPEFILE_PARTS = (".shx", ".dbf", ".prj", ".cpg")  # written beside a Shapefile's .shp


def sidecars(path: Path, fmt: str) -> dict[str, Path]:
    """The files written beside vector output ``path`` (what they are -> path): a Shapefile's parts,
    the ``.qml`` style of every format but GeoPackage (which holds its style)."""
    parts = {f"its {ext}": path.with_suffix(ext) for ext in SHAPEFILE_PARTS} if fmt == "shp" else {}
    return {**parts, "its QGIS style": sidecar_path(path)} if fmt != "gpkg" else parts


def resolve_format(path: str | Path, fmt: str | None, layer_per_class: bool = False) -> str:
    """The output format (``gpkg``, ``shp``, ``geojson``, ``fgb``) from ``fmt`` or the file suffix."""
    path = Path(path)
    by_suffix = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        if by_suffix is None:
            raise RssegError(f"{path}: unknown vector format (use a suffix {', '.join(SUFFIXES)} or `driver`)")
        fmt = by_suffix
    fmt = fmt.lower()
    if fmt not in DRIVERS:
        raise RssegError(f"{path}: unknown format {fmt!r} (choose from {', '.join(DRIVERS)})")
    if by_suffix not in (None, fmt):
        raise RssegError(f"{path}: suffix {path.suffix} does not match format {fmt}")
    if fmt == "shp" and path.suffix.lower() != ".shp":
        raise RssegError(f"{path}: a Shapefile's name must end in .shp (its .dbf/.shx/.prj go beside it)")
    if layer_per_class and fmt not in MULTI_LAYER:
        raise RssegError(f"{path}: format {fmt} holds one layer only (use .gpkg for one layer per class)")
    return fmt


class LayerWriter:
    """Appends chunks of polygons with attribute columns to named layers of one output.

    Field names are at most 10 characters, so they survive the Shapefile format unchanged; a
    Shapefile's single layer takes the file's name and gets a ``.prj`` from ``crs_wkt``.
    """

    def __init__(self, tmp_path: Path, fmt: str, crs_wkt: str | None, fields: list[str]) -> None:
        self.path, self.fmt, self.crs_wkt, self.fields = tmp_path, fmt, crs_wkt, fields
        self.written: set[str] = set()

    def write(self, layer: str, wkb: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Append polygons (WKB, already in the output CRS) and their attribute columns to ``layer``."""
        if layer in self.written and not len(wkb):
            return
        with warnings.catch_warnings():  # a mask without CRS was already reported by the caller
            warnings.filterwarnings("ignore", message="'crs' was not provided")
            write(str(self.path), wkb, [columns[f] for f in self.fields], self.fields,
                  layer=None if self.fmt == "shp" else layer, driver=DRIVERS[self.fmt], geometry_type="Polygon",
                  crs=self.crs_wkt, encoding="UTF-8" if self.fmt == "shp" else None, append=layer in self.written,
                  dataset_options={"VERSION": GPKG_VERSION} if self.fmt == "gpkg" and not self.written else None)
        self.written.add(layer)

    def add_style(self, qml: str) -> None:
        """Make ``qml`` the QGIS style of every layer written (GeoPackage table, or ``.qml`` sidecar)."""
        if self.fmt == "gpkg":
            store_gpkg_styles(self.path, sorted(self.written), qml, "rsseg classes")
        else:
            write_sidecar(self.path, qml)


@contextlib.contextmanager
def open_layers(path: str | Path, fmt: str, crs_wkt: str | None, fields: list[str],
                overwrite: bool = False) -> Iterator[LayerWriter]:
    """A :class:`LayerWriter` on a temporary file renamed to ``path`` when the block succeeds."""
    with atomic_output(path, overwrite, suffix=FORMAT_SUFFIX[fmt]) as tmp:
        yield LayerWriter(tmp, fmt, crs_wkt, fields)
