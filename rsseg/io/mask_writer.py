"""Stream class masks (and optional value rasters: probabilities, confidence) into tiled, compressed GeoTIFFs."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from rsseg.io.mask_meta import NODATA, write_class_table
from rsseg.io.output_kind import OutputKind
from rsseg.io.raster import write_georeference


def overview_factors(width: int, height: int, smallest: int = 256) -> list[int]:
    """Powers of two until the overview's longer side drops below ``smallest``."""
    factors, f = [], 2
    while max(width, height) / f >= smallest:
        factors.append(f)
        f *= 2
    return factors


def geotiff_profile(width: int, height: int, count: int, crs: CRS | None, transform: Affine, **extra) -> dict:
    """Tiled, DEFLATE-compressed uint8 GeoTIFF profile (BigTIFF when needed)."""
    block = 512 if max(width, height) >= 512 else 256
    return dict(driver="GTiff", width=width, height=height, count=count, dtype="uint8", crs=crs,
                transform=transform, tiled=True, blockxsize=block, blockysize=block,
                compress="deflate", bigtiff="IF_SAFER", **extra)


def quantize_probs(probs: np.ndarray) -> np.ndarray:
    """Probabilities (or confidence values) 0..1 as stored: uint8, p·255 rounded."""
    return np.rint(np.clip(probs, 0, 1) * 255).astype(np.uint8)


class _ScaledRaster:
    """A multi-band uint8 raster of values in [0, 1] stored × 255, with an internal validity mask."""

    def __init__(self, path: Path, width: int, height: int, crs: CRS | None, transform: Affine,
                 descriptions: list[str], tags: dict[str, str], georef: dict | None = None):
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # reported already
            self.ds = rasterio.open(path, "w", **geotiff_profile(width, height, len(descriptions), crs, transform))
        self.ds.descriptions = tuple(descriptions)
        write_georeference(self.ds, georef)
        self.ds.update_tags(**tags)
        self.rows: list[np.ndarray] = []

    def flush(self, window: Window, valid: np.ndarray) -> None:
        self.ds.write(np.concatenate(self.rows, 1), window=window)
        self.ds.write_mask(valid, window=window)
        self.rows = []


@dataclass(frozen=True)
class ScaledOutput:
    """A value raster written beside the mask: its kind, path and band descriptions."""

    kind: OutputKind
    path: Path
    bands: list[str]


class ClassMaskWriter:
    """Writes finished row bands in order, buffered to whole block rows.

    The class mask is single-band uint8 (nodata 255) with the class table as colormap and tag;
    each ``scaled`` output (probabilities, confidence, ...) has one uint8 band per description
    (value·255, its kind's tags) and an internal mask.
    """

    def __init__(self, path: Path, width: int, height: int, crs: CRS | None, transform: Affine,
                 class_names: list[str], class_colors: list[tuple[int, int, int]], tags: dict | None = None,
                 georef: dict | None = None, scaled: Sequence[ScaledOutput] = ()):
        profile = geotiff_profile(width, height, 1, crs, transform, nodata=NODATA)
        self.block = profile["blockysize"]
        self.height = height
        with warnings.catch_warnings():  # a scene without georeference was reported already
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            self.mask = rasterio.open(path, "w", **profile)
        write_class_table(self.mask, class_names, class_colors)
        write_georeference(self.mask, georef)
        if tags:
            self.mask.update_tags(**tags)
        self.scaled: dict[str, _ScaledRaster] = {}
        self.resampling = {self.mask: Resampling.mode}
        for out in scaled:
            raster = _ScaledRaster(out.path, width, height, crs, transform, out.bands, dict(out.kind.tags), georef)
            self.scaled[out.kind.name] = raster
            self.resampling[raster.ds] = Resampling[out.kind.resampling.lower()]
        self._rows: list[np.ndarray] = []
        self._y0 = 0
        self._buffered = 0

    def write(self, classes: np.ndarray, values: Mapping[str, np.ndarray] | None = None) -> None:
        """Append the next finished rows: classes n×W and each scaled output's C×n×W uint8 ``values``
        (by kind name, see :func:`quantize_probs`)."""
        self._rows.append(classes)
        for name, raster in self.scaled.items():
            raster.rows.append((values or {})[name])
        self._buffered += classes.shape[0]
        end = self._y0 + self._buffered
        if end == self.height or end // self.block > self._y0 // self.block:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        rows = np.concatenate(self._rows, 0)
        window = Window(0, self._y0, rows.shape[1], rows.shape[0])
        self.mask.write(rows, 1, window=window)
        valid = np.where(rows == NODATA, 0, 255).astype(np.uint8)
        for raster in self.scaled.values():
            raster.flush(window, valid)
        self._y0 += self._buffered
        self._rows, self._buffered = [], 0

    def close(self) -> None:
        """Flush, close, and build internal overviews (each output's resampling: mode for classes)."""
        self._flush()
        for ds, resampling in self.resampling.items():
            factors = overview_factors(ds.width, ds.height)
            ds.close()
            if factors:  # on the finished file: GDAL's write mode hides its palette from the overview code
                with rasterio.open(ds.name, "r+") as done:
                    done.build_overviews(factors, resampling)
                    done.update_tags(ns="rio_overview", resampling=resampling.name)

    def abort(self) -> None:
        """Close without finishing (the caller removes the files)."""
        for ds in self.resampling:
            if not ds.closed:
                ds.close()


def to_cog(src: Path, dst: Path, resampling: str) -> None:
    """Copy a GeoTIFF to a Cloud-Optimized GeoTIFF (DEFLATE, 512 blocks, overviews)."""
    rasterio.shutil.copy(src, dst, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
                         OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER")
