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

from rsseg.errors import RssegError, reason
from rsseg.io.remote import RemoteScene, is_remote, network_reason, open_remote, public_name

GDAL_CACHE_MB = 128  # GDAL's block cache defaults to 5 % of RAM and would grow with the scene


def bounded_gdal_cache() -> rasterio.Env:
    """A rasterio environment whose block cache stays small whatever the raster's size."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


def open_raster(path: str | Path | RemoteScene) -> rasterio.DatasetReader:
    """Open any raster GDAL reads, local or remote (:mod:`rsseg.io.remote`); missing, unreadable or
    truncated files raise :class:`RssegError`."""
    if isinstance(path, RemoteScene):
        return open_remote(path)  # reading its last row to find truncation would cost a row of blocks
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
        raise RssegError(f"{path}: not a raster GDAL can read ({reason(err)})") from None
    try:  # a truncated file opens but fails on its last blocks: find out before any work
        ds.read(1, window=Window(0, ds.height - 1, ds.width, 1))
    except RasterioIOError as err:
        ds.close()
        raise RssegError(f"{path}: unreadable pixel data, truncated or corrupt? ({reason(err)})") from None
    return ds


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
                             f"{input_scale:g} (rescale the scene or pass `input_scale`)")
    return BandPlan(list(bands), float(input_scale))


def read_window(ds: rasterio.DatasetReader, bands: list[int], y: int, x: int, h: int, w: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (C×h×w, raw dtype) and validity (h×w bool) of a window inside the scene.

    Non-finite values (NaN, ±inf) of a float scene are invalid, like nodata, and read as 0.
    """
    window = Window(x, y, w, h)
    try:
        data = ds.read(bands, window=window)
        if all(ds.mask_flag_enums[b - 1] == [MaskFlags.all_valid] for b in bands):
            valid = np.ones((h, w), dtype=bool)
        else:
            valid = ds.read_masks(bands, window=window).min(axis=0) > 0
    except RasterioIOError as err:
        why = network_reason(err) if is_remote(ds.name) else reason(err)
        raise RssegError(f"{public_name(ds.name)}: read error at rows {y}-{y + h} ({why})") from None
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            valid &= finite.all(axis=0)
            data = np.where(finite, data, 0).astype(data.dtype, copy=False)
    return data, valid


class RowStrip:
    """Windows of a scene read from a strip of its rows held in memory, for windows that move down the scene.

    Reading each overlapping window on its own decodes a compressed block once for every window
    that touches it (GDAL's block cache does not spare unaligned reads: on the JPEG demo scene
    its 81 windows read 4× slower than the same pixels in row strips). The strip spans the scene's width,
    grows downwards in reads that end on a block boundary (where blocks are no taller than the
    window) and drops the rows above the window asked for: it holds about a window and a block of rows.
    """

    def __init__(self, ds: rasterio.DatasetReader, bands: list[int]):
        self.ds, self.bands = ds, bands
        self.block = ds.block_shapes[bands[0] - 1][0] if ds.block_shapes else 1
        self.top = self.bottom = 0
        self.data = np.empty((len(bands), 0, ds.width), dtype=ds.dtypes[bands[0] - 1])
        self.valid = np.empty((0, ds.width), dtype=bool)

    def read(self, y: int, x: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (C×h×w, raw dtype) and validity (h×w bool) of a window, as :func:`read_window` reads them."""
        if not self.top <= y <= self.bottom:  # above the strip (a new run), or below it: start afresh
            self.top = self.bottom = y
            self.data, self.valid = self.data[:, :0], self.valid[:0]
        if y + h > self.bottom:
            stop = y + h
            if self.block <= h:
                stop = min(self.ds.height, -(-stop // self.block) * self.block)
            data, valid = read_window(self.ds, self.bands, self.bottom, 0, stop - self.bottom, self.ds.width)
            keep = y - self.top
            self.data = np.concatenate([self.data[:, keep:], data], 1)
            self.valid = np.concatenate([self.valid[keep:], valid])
            self.top, self.bottom = y, stop
        r = y - self.top
        return self.data[:, r:r + h, x:x + w], self.valid[r:r + h, x:x + w]


def sample_values(ds: rasterio.DatasetReader, bands: list[int], grid: int = 4, size: int = 64) -> np.ndarray:
    """Valid, finite values of ``bands`` from ``grid``×``grid`` small windows spread over the scene."""
    values = []
    for y in np.linspace(0, max(0, ds.height - size), grid).astype(int):
        for x in np.linspace(0, max(0, ds.width - size), grid).astype(int):
            data, valid = read_window(ds, bands, int(y), int(x), min(size, ds.height), min(size, ds.width))
            values.append(data[:, valid].ravel())
    return np.concatenate(values).astype(np.float64)


def check_value_range(ds: rasterio.DatasetReader, path: str | Path, bands: list[int], input_scale: float,
                      scale_given: bool) -> None:
    """Refuse a float scene whose values do not fit ``input_scale`` (only warn when the user chose it).

    Inputs are ``raw / input_scale``; a model expects about 0..1 there, so reflectance in 0..1
    given to an 8-bit model (scale 255), or 0..10000 values with scale 255, give nonsense masks.
    """
    if np.dtype(ds.dtypes[bands[0] - 1]).kind != "f":
        return
    values = sample_values(ds, bands)
    if not values.size:
        return
    lo, hi = np.percentile(values, [0.5, 99.5])
    problem = None
    if hi > 2 * input_scale or lo < -input_scale:
        problem = f"reach {lo:g}..{hi:g}, beyond the input scale {input_scale:g}"
    elif input_scale >= 10 and max(abs(lo), abs(hi)) <= input_scale / 50:
        problem = f"stay within {lo:g}..{hi:g}, tiny for the input scale {input_scale:g} (0..1 reflectance?)"
    if problem is None:
        return
    message = (f"{path}: float pixel values {problem}; pass `input_scale` matching the data "
               f"(e.g. `input_scale=1` for 0..1 values) or rescale the scene")
    if scale_given:
        warnings.warn(message, stacklevel=2)
        return
    raise RssegError(message)


def georeference(ds: rasterio.DatasetReader) -> dict | None:
    """Georeferencing an output must carry beyond CRS and transform: GCPs (when there is no
    transform) and RPCs, as ``{"gcps": (gcps, crs), "rpcs": rpcs}``; ``None`` when there is none."""
    extra = {}
    gcps, gcp_crs = ds.gcps
    if gcps and ds.transform.is_identity:
        extra["gcps"] = (gcps, gcp_crs)
    if ds.rpcs:
        extra["rpcs"] = ds.rpcs
    return extra or None


def require_map_grid(ds: rasterio.DatasetReader, path: str | Path, purpose: str) -> None:
    """Refuse a raster placed on the map only by GCPs or RPCs for ``purpose`` (e.g. polygons)."""
    if ds.crs is None and ds.transform.is_identity and (ds.gcps[0] or ds.rpcs):
        raise RssegError(f"{path}: georeferenced by GCPs/RPCs only, so {purpose} cannot be placed on the map; "
                         "warp it to a map grid first (gdalwarp -r near -t_srs EPSG:XXXX IN OUT)")


def write_georeference(ds: rasterio.io.DatasetWriter, extra: dict | None) -> None:
    """Give an output the GCPs/RPCs found by :func:`georeference`."""
    if extra and "gcps" in extra:
        ds.gcps = extra["gcps"]
    if extra and "rpcs" in extra:
        ds.rpcs = extra["rpcs"]
