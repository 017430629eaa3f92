"""The mask being vectorised: checks, class names and selection, georeferencing and areas."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.io import DatasetReader

from rsseg.errors import RssegError
from rsseg.io.mask_meta import NODATA, read_class_table
from rsseg.io.raster import open_raster, require_map_grid

MAX_CLASS_ID = 2**31 - 1  # polygonisation works in int32


@dataclass
class Georef:
    """Maps pixel-coordinate polygons to the output CRS and measures their areas.

    Areas are in m² for a projected CRS (scaled by its linear unit), in m² of a Lambert
    azimuthal equal-area projection centred on the mask for a geographic CRS, and in
    square pixels for a mask without CRS (whose polygons stay in pixel coordinates).
    """

    transform: Affine
    crs_wkt: str | None
    area_unit: str
    unit_area: float
    equal_area: Transformer | None

    @classmethod
    def of(cls, ds: DatasetReader, path: Path) -> Georef:
        require_map_grid(ds, path, "polygons")
        if ds.crs is None:
            warnings.warn(f"{path}: no CRS, polygons are written in pixel coordinates and areas in pixels",
                          UserWarning, stacklevel=3)
            return cls(Affine.identity(), None, "px", 1.0, None)
        crs = CRS.from_wkt(ds.crs.to_wkt())
        pixel_area = abs(ds.transform.determinant)
        if crs.is_geographic:
            left, bottom, right, top = ds.bounds
            laea = CRS.from_proj4(f"+proj=laea +lat_0={(bottom + top) / 2} +lon_0={(left + right) / 2} "
                                  "+datum=WGS84 +units=m +no_defs")
            return cls(ds.transform, crs.to_wkt(), "m2", 1.0, Transformer.from_crs(crs, laea, always_xy=True))
        metres = crs.axis_info[0].unit_conversion_factor
        return cls(ds.transform, crs.to_wkt(), "m2", pixel_area * metres**2, None)

    @property
    def area_field(self) -> str:
        return f"area_{self.area_unit}"

    def map_xy(self, xy: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N×2) in the output CRS."""
        t = self.transform
        return xy @ np.array([[t.a, t.d], [t.b, t.e]]) + np.array([t.c, t.f])

    def to_map(self, geoms: np.ndarray) -> np.ndarray:
        """Pixel-coordinate geometries in the output CRS."""
        return shapely.transform(geoms, self.map_xy)

    def _equal_area_xy(self, xy: np.ndarray) -> np.ndarray:
        return np.column_stack(self.equal_area.transform(xy[:, 0], xy[:, 1]))

    def areas(self, pixel_geoms: np.ndarray) -> np.ndarray:
        """Areas of pixel-coordinate regions (shapely polygons) in ``area_unit``."""
        if self.equal_area is None:
            return shapely.area(pixel_geoms) * self.unit_area
        return shapely.area(shapely.transform(self.to_map(pixel_geoms), self._equal_area_xy))

    def ring_areas(self, polygons: np.ndarray) -> np.ndarray:
        """Areas of compact pixel-coordinate regions (:class:`RingPolygon`) in ``area_unit``."""
        if self.equal_area is None:
            return np.array([p.area_px for p in polygons]) * self.unit_area
        return np.array([p.area(lambda xy: self._equal_area_xy(self.map_xy(xy))) for p in polygons])


@dataclass
class MaskSource:
    """An opened class mask with its class names, selection and nodata."""

    path: Path
    ds: DatasetReader
    names: list[str] | None
    colors: list[tuple[int, int, int]] | None
    selected: list[int] | None
    nodata: int | None

    @classmethod
    def open(cls, path: str | Path, classes: Iterable[int | str] | None = None) -> MaskSource:
        path = Path(path)
        ds = open_raster(path)
        try:
            if ds.count != 1:
                raise RssegError(f"{path}: has {ds.count} bands, expected a single-band class mask")
            dtype = np.dtype(ds.dtypes[0])
            if dtype.kind not in "ui":
                raise RssegError(f"{path}: pixel type {dtype} is not a class mask (integer class ids expected)")
            names, colors = read_class_table(ds)
            nodata = None if ds.nodata is None else int(ds.nodata)
            selected = None if classes is None else resolve_classes(path, list(classes), names)
        except BaseException:
            ds.close()
            raise
        return cls(path, ds, names, colors, selected, nodata)

    def name(self, class_id: int) -> str:
        """The class's name, ``class_<id>`` when the mask does not name it."""
        if self.names is not None and 0 <= class_id < len(self.names):
            return self.names[class_id]
        return f"class_{class_id}"

    def valid(self, data: np.ndarray) -> np.ndarray:
        """Pixels that may become polygons: not nodata and of a selected class."""
        if data.dtype.itemsize >= 4 and data.size and int(data.max()) > MAX_CLASS_ID:
            raise RssegError(f"{self.path}: class id {int(data.max())} is larger than {MAX_CLASS_ID}")
        keep = np.ones(data.shape, dtype=bool) if self.nodata is None else data != self.nodata
        if self.selected is not None:
            keep &= np.isin(data, self.selected)
        return keep

    def open_probs(self, probs_path: str | Path) -> DatasetReader:
        """Open the K-band uint8 probability raster matching this mask's grid."""
        probs_path = Path(probs_path)
        probs = open_raster(probs_path)
        problem = None
        if (probs.width, probs.height) != (self.ds.width, self.ds.height):
            problem = f"is {probs.width}x{probs.height}, the mask {self.ds.width}x{self.ds.height}"
        elif not probs.transform.almost_equals(self.ds.transform):
            problem = "is not on the mask's pixel grid"
        elif set(probs.dtypes) != {"uint8"}:
            problem = f"pixel type {probs.dtypes[0]} (uint8 probabilities x255 expected)"
        elif self.names is not None and probs.count != len(self.names):
            problem = f"has {probs.count} bands, the mask has {len(self.names)} classes"
        if problem:
            probs.close()
            raise RssegError(f"{probs_path}: {problem}")
        return probs

    def close(self) -> None:
        self.ds.close()


def resolve_classes(path: Path, classes: list[int | str], names: list[str] | None) -> list[int]:
    """Class ids from ids or names, matched without regard to case (``class_<id>`` for an unnamed mask)."""
    lookup = {str(i): i for i in range(len(names) if names is not None else NODATA)}
    lookup.update({n.lower(): i for i, n in enumerate(names or [f"class_{i}" for i in range(NODATA)])})
    tokens = [str(c).strip() for c in classes]
    unknown = [t for t in tokens if t.lower() not in lookup]
    if unknown:
        known = ", ".join(f"{i} {n}" for i, n in enumerate(names)) if names else f"ids 0-{NODATA - 1}"
        raise RssegError(f"{path}: unknown class(es) {', '.join(unknown)} (mask has {known})")
    return sorted({lookup[t.lower()] for t in tokens})
