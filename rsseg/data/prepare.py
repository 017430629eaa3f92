"""Cutting scenes into a patch folder (see :mod:`rsseg.data.patches`): the writer every dataset uses.

The datasets themselves are in :mod:`rsseg.data.datasets` (one module per benchmark, registered by
:func:`rsseg.data.registry.register_dataset`) and :mod:`rsseg.data.generic` (your own scenes).
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from tqdm import tqdm

from rsseg.data.patches import DATASET_YAML, SPLITS, DatasetInfo, write_dataset_info
from rsseg.errors import RssegError
from rsseg.io.atomic import OutputClaim
from rsseg.io.geometry import axis_starts
from rsseg.io.mask_meta import write_class_table
from rsseg.io.outputs import check_outputs
from rsseg.io.raster import is_georeferenced, open_raster
from rsseg.schema import ClassSchema, InputSpec


@dataclass(frozen=True)
class PrepareResult:
    """What a ``prepare_*`` function made: the patch folder's description and a one-line summary."""

    info: DatasetInfo
    summary: str


@dataclass
class Scene:
    """One source image and its labels (class ids, ignore index where unlabelled), in memory."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    transform: Affine | None = None
    crs: CRS | None = None


def read_scene(path: Path) -> tuple[np.ndarray, Affine | None, CRS | None]:
    """All bands of a raster, its transform (``None`` when not georeferenced) and CRS."""
    with open_raster(path) as ds:
        return ds.read(), (ds.transform if is_georeferenced(ds) else None), ds.crs


def input_scale_for(dtype: np.dtype) -> float:
    """The divisor bringing raw values to about [0, 1]: 255 for 8-bit, the type's max for integers."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255.0
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return 1.0


@dataclass
class PatchFolderWriter:
    """Cuts scenes into patches, writes them and collects band statistics of the train split.

    Use it as a context manager: patches go to a temporary folder beside ``out`` that
    :meth:`finish` moves into place; a run that fails or is interrupted leaves nothing.
    """

    out: Path
    table: ClassSchema
    name: str
    patch: int
    stride: int
    overwrite: bool = False
    bands: list[int] | None = None
    gsd: float | None = None
    input_scale: float | None = None
    inputs: list[Path] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    unknown: Counter = field(default_factory=Counter)
    test_references: Counter = field(default_factory=Counter)  # benchmark test tiles: "eroded" / "full" labels
    _sum: np.ndarray | None = None
    _sumsq: np.ndarray | None = None
    _n: int = 0

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        check_outputs({"-o": self.out}, self.inputs, overwrite=True, folders=["-o"])
        if self.out.is_dir():
            if not (self.out / DATASET_YAML).is_file() and any(self.out.iterdir()):
                raise RssegError(f"{self.out}: output folder exists and is not a patch folder; choose another")
            if (self.out / DATASET_YAML).is_file() and not self.overwrite:
                raise RssegError(f"{self.out}: patch folder exists (pass overwrite to replace it)")
        self.root = self.out  # where patches go: a temporary folder while writing
        self._claim: OutputClaim | None = None

    def __enter__(self) -> PatchFolderWriter:
        """Write into a temporary folder beside ``out``; it replaces ``out`` in :meth:`finish`."""
        self._claim = OutputClaim(self.out)
        self._claim.acquire()
        self._claim.tmp.mkdir()
        self.root = self._claim.tmp
        return self

    def __exit__(self, *exc) -> None:
        """Remove the temporary folder of a run that did not finish (nothing is left behind)."""
        if self._claim is not None:
            self._claim.discard()

    def windows(self, height: int, width: int, overlap: bool) -> Iterator[Window]:
        """Patch windows; the last row/column shifted inward (a scene smaller than a patch: one window)."""
        stride = self.stride if overlap else self.patch
        for y in axis_starts(height, self.patch, stride):
            for x in axis_starts(width, self.patch, stride):
                yield Window(x, y, min(self.patch, width - x), min(self.patch, height - y))

    def add(self, split: str, scene: Scene) -> None:
        """Write the patches of one scene (overlapping in train/val, tiled in test)."""
        image = scene.image
        if image.shape[1:] != scene.mask.shape:
            raise RssegError(f"{scene.name}: image is {image.shape[1]}×{image.shape[2]} but its labels "
                             f"{scene.mask.shape[0]}×{scene.mask.shape[1]}")
        if self.input_scale is None:
            self.input_scale = input_scale_for(image.dtype)
        if split == "train":
            flat = image.reshape(image.shape[0], -1).astype(np.float64) / self.input_scale
            s, ss = flat.sum(1), np.square(flat).sum(1)
            self._sum = s if self._sum is None else self._sum + s
            self._sumsq = ss if self._sumsq is None else self._sumsq + ss
            self._n += flat.shape[1]
        images, masks = self.root / split / "images", self.root / split / "masks"
        images.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        for win in self.windows(*scene.mask.shape, overlap=split != "test"):
            rows, cols = win.toslices()
            stem = f"{scene.name}_{win.row_off}_{win.col_off}"
            tf = window_transform(win, scene.transform) if scene.transform is not None else None
            with open_patch(images / f"{stem}.tif", image[:, rows, cols], tf, scene.crs):
                pass
            with open_patch(masks / f"{stem}.tif", scene.mask[None, rows, cols], tf, scene.crs,
                            nodata=self.table.ignore_index) as ds:
                write_class_table(ds, list(self.table.names), list(self.table.colors))
            self.counts[split] += 1

    def finish(self) -> DatasetInfo:
        """Write ``dataset.yaml`` (classes, band statistics of the train split, patch counts) and
        move the finished patch folder into place, replacing a previous one."""
        if not self.counts["train"]:
            raise RssegError(f"{self.out}: no training patches were made (check the source folder and names)")
        mean = self._sum / self._n
        std = np.sqrt(np.maximum(self._sumsq / self._n - mean ** 2, 0.0))
        std = np.where(std > 1e-6, std, 1.0)
        spec = InputSpec(tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std),
                         float(self.input_scale), self.bands, self.gsd)
        info = DatasetInfo(self.name, self.table, spec, self.patch, {s: int(self.counts[s]) for s in SPLITS})
        write_dataset_info(self.root, info)
        if self._claim is not None:
            self._claim.commit(overwrite=True)
            self.root = self.out
        return info

    def summary(self) -> str:
        """One line: patch counts and unknown label colours (set to the ignore index)."""
        counts = ", ".join(f"{self.counts[s]} {s}" for s in SPLITS)
        line = f"{self.out}: {counts} patches of {self.patch} px"
        if self.unknown:
            top = ", ".join(f"{c}×{n}" for c, n in self.unknown.most_common(3))
            line += (f"; {sum(self.unknown.values())} label pixels of unknown colours set to ignore "
                     f"{self.table.ignore_index} ({top})")
        if self.test_references:
            eroded, full = self.test_references["eroded"], self.test_references["full"]
            line += f"; test labels: {eroded} eroded (noBoundary), {full} full"
            if full:
                line += (" (scores on full labels do not compare with the papers'; "
                         "`rsseg evaluate --protocol isprs` erodes them)")
        return line


@contextlib.contextmanager
def open_patch(path: Path, array: np.ndarray, transform: Affine | None, crs: CRS | None,
               nodata: int | None = None) -> Iterator[rasterio.io.DatasetWriter]:
    """Write a bands×H×W patch as a compressed GeoTIFF (georeferenced when the source is).

    Yields the open dataset so that callers can add tags or a colormap before it is closed.
    """
    predictor = 2 if array.dtype.kind in "ui" and nodata is None else 1
    profile = dict(driver="GTiff", count=array.shape[0], height=array.shape[1], width=array.shape[2],
                   dtype=array.dtype, compress="deflate", predictor=predictor, nodata=nodata)
    if transform is not None:
        profile.update(transform=transform, crs=crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(array)
            yield ds


def find_files(src: Path, name: str) -> list[Path]:
    """Files under ``src`` (recursively) matching the pattern ``name``, sorted."""
    return sorted(p for p in src.rglob(name) if p.is_file())


def progress_bar(items: list, desc: str, progress: bool) -> tqdm:
    """A progress bar over source tiles (none when ``progress`` is false)."""
    return tqdm(items, desc=desc, unit="tile", leave=False, disable=not progress)

