"""Stream class masks (and optional probabilities) into tiled, compressed GeoTIFFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from rsseg.io.mask_meta import NODATA, write_class_table


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
    """Probabilities 0..1 as stored: uint8, p·255 rounded."""
    return np.rint(np.clip(probs, 0, 1) * 255).astype(np.uint8)


class ClassMaskWriter:
    """Writes finished row bands in order, buffered to whole block rows.

    The class mask is single-band uint8 (nodata 255) with the class table as colormap and tag;
    the optional probability raster has one uint8 band per class (p·255) and an internal mask.
    """

    def __init__(self, path: Path, width: int, height: int, crs: CRS | None, transform: Affine,
                 class_names: list[str], class_colors: list[tuple[int, int, int]],
                 probs_path: Path | None = None, tags: dict | None = None):
        profile = geotiff_profile(width, height, 1, crs, transform, nodata=NODATA)
        self.block = profile["blockysize"]
        self.height = height
        self.mask = rasterio.open(path, "w", **profile)
        write_class_table(self.mask, class_names, class_colors)
        if tags:
            self.mask.update_tags(**tags)
        self.probs = None
        if probs_path is not None:
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                self.probs = rasterio.open(probs_path, "w", **geotiff_profile(
                    width, height, len(class_names), crs, transform))
            self.probs.descriptions = tuple(class_names)
            self.probs.update_tags(RSSEG_PROBABILITY_SCALE="255")
        self._rows: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []
        self._y0 = 0
        self._buffered = 0

    def write(self, classes: np.ndarray, probs: np.ndarray | None = None) -> None:
        """Append the next finished rows: classes n×W and probabilities K×n×W (uint8, see :func:`quantize_probs`)."""
        self._rows.append(classes)
        if self.probs is not None:
            self._probs.append(probs)
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
        if self.probs is not None:
            self.probs.write(np.concatenate(self._probs, 1), window=window)
            self.probs.write_mask(np.where(rows == NODATA, 0, 255).astype(np.uint8), window=window)
        self._y0 += self._buffered
        self._rows, self._probs, self._buffered = [], [], 0

    def close(self) -> None:
        """Flush, close, and build internal overviews (mode for classes, average for probabilities)."""
        self._flush()
        for ds, resampling in ((self.mask, Resampling.mode), (self.probs, Resampling.average)):
            if ds is None:
                continue
            factors = overview_factors(ds.width, ds.height)
            if factors:
                ds.build_overviews(factors, resampling)
                ds.update_tags(ns="rio_overview", resampling=resampling.name)
            ds.close()

    def abort(self) -> None:
        """Close without finishing (the caller removes the files)."""
        for ds in (self.mask, self.probs):
            if ds is not None and not ds.closed:
                ds.close()


def to_cog(src: Path, dst: Path, resampling: str) -> None:
    """Copy a GeoTIFF to a Cloud-Optimized GeoTIFF (DEFLATE, 512 blocks, overviews)."""
    rasterio.shutil.copy(src, dst, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
                         OVERVIEW_RESAMPLING=resampling, BIGTIFF="IF_SAFER")
