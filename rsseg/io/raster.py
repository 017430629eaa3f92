"""Opening scenes with clear errors, checking them against a model, reading windows."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from rsseg.errors import RssegError

GDAL_CACHE_MB = 128  # GDAL's block cache defaults to 5 % of RAM and would grow with the scene


def bounded_gdal_cache() -> rasterio.Env:
    """A rasterio environment whose block cache stays small whatever the raster's size."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


def open_raster(path: str | Path) -> rasterio.DatasetReader:
    """Open any raster GDAL reads; missing, unreadable or truncated files raise :class:`RssegError`."""
    path = Path(path)
    if not path.exists():
        raise RssegError(f"{path}: file not found")
    if path.is_dir():
        raise RssegError(f"{path}: is a folder, not a raster file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(path)
    except RasterioIOError as err:
        raise RssegError(f"{path}: not a raster GDAL can read ({_first_line(err)})") from None
    try:  # a truncated file opens but fails on its last blocks: find out before any work
        ds.read(1, window=Window(0, ds.height - 1, ds.width, 1))
    except RasterioIOError as err:
        ds.close()
        raise RssegError(f"{path}: unreadable pixel data, truncated or corrupt? ({_first_line(err)})") from None
    return ds


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__


def is_georeferenced(ds: rasterio.DatasetReader) -> bool:
    """Whether the raster has a CRS or a non-identity transform."""
    return ds.crs is not None or not ds.transform.is_identity


@dataclass(frozen=True)
class BandPlan:
    """Which scene bands feed the model and how raw values are scaled."""

    bands: list[int]
    input_scale: float


def plan_bands(ds: rasterio.DatasetReader, path: str | Path, in_channels: int,
               bands: list[int] | None, input_scale: float) -> BandPlan:
    """Check that the scene can feed a model of ``in_channels`` inputs; pick its bands.

    Bands default to the first ``in_channels`` non-alpha bands. Integer scenes must match the
    model's input scale (e.g. an 8-bit model on 16-bit data is refused, not silently garbage).
    """
    data_bands = [i + 1 for i, ci in enumerate(ds.colorinterp) if ci != ColorInterp.alpha]
    if bands is None:
        if len(data_bands) < in_channels:
            raise RssegError(f"{path}: has {len(data_bands)} data band(s), the model needs {in_channels}")
        bands = data_bands[:in_channels]
    else:
        if len(bands) != in_channels:
            raise RssegError(f"{path}: bands {list(bands)} are {len(bands)}, the model needs {in_channels}")
        bad = [b for b in bands if not 1 <= b <= ds.count]
        if bad:
            raise RssegError(f"{path}: has {ds.count} band(s), no band {bad[0]}")
    dtype = np.dtype(ds.dtypes[bands[0] - 1])
    if dtype.kind not in "uif":
        raise RssegError(f"{path}: pixel type {dtype} cannot feed a model")
    if dtype.kind in "ui":
        top = np.iinfo(dtype).max
        if input_scale > top or (input_scale <= 255 < top and dtype.itemsize > 1):
            raise RssegError(f"{path}: pixel type {dtype} does not match the model's input scale "
                             f"{input_scale:g} (rescale the scene or pass --input-scale)")
    return BandPlan(list(bands), float(input_scale))


def read_window(ds: rasterio.DatasetReader, bands: list[int], y: int, x: int, h: int, w: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (C×h×w, raw dtype) and validity (h×w bool) of a window inside the scene."""
    window = Window(x, y, w, h)
    try:
        data = ds.read(bands, window=window)
        if all(ds.mask_flag_enums[b - 1] == [MaskFlags.all_valid] for b in bands):
            return data, np.ones((h, w), dtype=bool)
        masks = ds.read_masks(bands, window=window)
    except RasterioIOError as err:
        raise RssegError(f"{ds.name}: read error at rows {y}-{y + h} ({_first_line(err)})") from None
    return data, masks.min(axis=0) > 0
