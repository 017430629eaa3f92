"""Stream class masks (and optional probabilities) into tiled, compressed GeoTIFFs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from rsseg.io.mask_meta import NODATA, write_class_table
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


class ClassMaskWriter:
    """Writes finished row bands in order, buffered to whole block rows.

    The class mask is single-band uint8 (nodata 255) with the class table as colormap and tag;
    the optional probability raster has one uint8 band per class (p·255), the optional
    confidence raster one uint8 band per named measure (value·255); both have an internal mask.
    """

    def __init__(self, path: Path, width: int, height: int, crs: CRS | None, transform: Affine,
                 class_names: list[str], class_colors: list[tuple[int, int, int]],
                 probs_path: Path | None = None, tags: dict | None = None,
                 confidence_path: Path | None = None, confidence_bands: list[str] | None = None,
                 georef: dict | None = None):
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
        self.probs = None if probs_path is None else _ScaledRaster(
            probs_path, width, height, crs, transform, class_names, {"RSSEG_PROBABILITY_SCALE": "255"}, georef)
        self.confidence = None if confidence_path is None else _ScaledRaster(
            confidence_path, width, height, crs, transform, confidence_bands or [], {"RSSEG_CONFIDENCE_SCALE": "255"},
            georef)
        self._rows: list[np.ndarray] = []
        self._y0 = 0
        self._buffered = 0

    def write(self, classes: np.ndarray, probs: np.ndarray | None = None, confidence: np.ndarray | None = None) -> None:
        """Append the next finished rows: classes n×W, probabilities K×n×W and confidence C×n×W.

        Probabilities and confidence are uint8, see :func:`quantize_probs`.
        """
        self._rows.append(classes)
        for raster, values in ((self.probs, probs), (self.confidence, confidence)):
            if raster is not None:
                raster.rows.append(values)
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
        for raster in self._scaled():
            raster.flush(window, valid)
        self._y0 += self._buffered
        self._rows, self._buffered = [], 0

    def _scaled(self) -> list[_ScaledRaster]:
        return [r for r in (self.probs, self.confidence) if r is not None]

    def close(self) -> None:
        """Flush, close, and build internal overviews (mode for classes, average for the scaled rasters)."""
        self._flush()
        for ds, resampling in ((self.mask, Resampling.mode), *((r.ds, Resampling.average) for r in self._scaled())):
            factors = overview_factors(ds.width, ds.height)
            if factors:
                ds.build_overviews(factors, resampling)
                ds.update_tags(ns="rio_overview", resampling=resampling.name)
            ds.close()

    def abort(self) -> None:
        """Close without finishing (the caller removes the files)."""
        for ds in (self.mask, *(r.ds for r in self._scaled())):
            if not ds.closed:
                ds.close()


def to_cog(src: Path, dst: Path, resampling: str) -> None:
    """Copy a GeoTIFF to a Cloud-Optimized GeoTIFF (DEFLATE, 512 blocks, overviews)."""
    rasterio.shutil.copy(src, dst, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
                         OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER")
