"""Turn benchmark tiles or a user's scene + labels into a patch folder (see :mod:`rsseg.data.patches`)."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from tqdm import tqdm

from rsseg.data.classes import CLASS_TABLES, ISPRS, UAVID
from rsseg.data.patches import DATASET_YAML, SPLITS, DatasetInfo, write_dataset_info
from rsseg.errors import RssegError, reason
from rsseg.io.atomic import OutputClaim
from rsseg.io.mask_meta import write_class_table
from rsseg.io.outputs import check_outputs
from rsseg.io.raster import is_georeferenced, open_raster
from rsseg.schema import ClassSchema, InputSpec, colors_to_index
from rsseg.tiling.grid import axis_starts

VAIHINGEN_SPLIT = {
    "test": (2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31, 33, 35, 38),
    "val": (30,),
}
POTSDAM_SPLIT = {
    "test": ("2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14", "5_15", "6_13",
             "6_14", "6_15", "7_13"),
    "val": ("2_10",),
}
POTSDAM_EXCLUDED = ("7_10",)  # faulty label
POTSDAM_VARIANTS = {"RGB": "2_Ortho_RGB", "IRRG": "3_Ortho_IRRG", "RGBIR": "4_Ortho_RGBIR"}
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb")
BOUNDARY_COLOR = (0, 0, 0)


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


def _read(path: Path) -> tuple[np.ndarray, Affine | None, CRS | None]:
    with open_raster(path) as ds:
        return ds.read(), (ds.transform if is_georeferenced(ds) else None), ds.crs


def read_color_label(path: Path, table: ClassSchema, unknown: Counter, eroded: bool = False) -> np.ndarray:
    """Read an RGB label file as class ids, adding its unknown colours to ``unknown``."""
    rgb, _, _ = _read(path)
    if rgb.shape[0] < 3:
        raise RssegError(f"{path}: colour label expected (3 bands), found {rgb.shape[0]} band(s)")
    mask, found = colors_to_index(rgb[:3], table.colors, table.ignore_index, BOUNDARY_COLOR if eroded else None)
    unknown.update(found)
    return mask


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
                raise RssegError(f"{self.out}: patch folder exists (use --overwrite to replace it)")
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


def _find(src: Path, name: str) -> list[Path]:
    return sorted(p for p in src.rglob(name) if p.is_file())


def _progress(items: list, desc: str, progress: bool) -> tqdm:
    return tqdm(items, desc=desc, unit="tile", leave=False, disable=not progress)


def prepare_vaihingen(src: str | os.PathLike, out: str | os.PathLike, patch: int = 1024, stride: int = 512,
                      overwrite: bool = False, progress: bool = True) -> PrepareResult:
    """ISPRS Vaihingen: ``top/top_mosaic_09cm_area{N}.tif`` with full and eroded colour labels."""
    src = Path(src)
    tiles = [p for p in _find(src, "top_mosaic_09cm_area*.tif") if p.parent.name == "top"]
    if not tiles:
        raise RssegError(f"{src}: no Vaihingen tiles top/top_mosaic_09cm_area{{N}}.tif found")
    with PatchFolderWriter(Path(out), ISPRS, "vaihingen", patch, stride, overwrite, gsd=0.09,
                           inputs=[src]) as writer:
        for tile in _progress(tiles, "vaihingen", progress):
            area = int(re.search(r"area(\d+)", tile.stem).group(1))
            split = next((s for s, areas in VAIHINGEN_SPLIT.items() if area in areas), "train")
            _add_isprs_tile(writer, split, tile, tile.name, tile.stem + "_noBoundary.tif", src)
        return PrepareResult(writer.finish(), writer.summary())


def prepare_potsdam(src: str | os.PathLike, out: str | os.PathLike, patch: int = 1024, stride: int = 512,
                    variant: str = "RGB", overwrite: bool = False, progress: bool = True) -> PrepareResult:
    """ISPRS Potsdam: ``2_Ortho_RGB`` (or IRRG/RGBIR) tiles with ``5_Labels_all`` labels."""
    src = Path(src)
    if variant not in POTSDAM_VARIANTS:
        raise RssegError(f"{src}: unknown Potsdam variant {variant!r}; choose {', '.join(POTSDAM_VARIANTS)}")
    tiles = _find(src, f"top_potsdam_*_{variant}.tif")
    if not tiles:
        raise RssegError(f"{src}: no Potsdam tiles {POTSDAM_VARIANTS[variant]}/top_potsdam_X_Y_{variant}.tif found")
    name = f"potsdam-{variant.lower()}"
    with PatchFolderWriter(Path(out), ISPRS, name, patch, stride, overwrite, gsd=0.05, inputs=[src]) as writer:
        for tile in _progress(tiles, "potsdam", progress):
            tile_id = re.search(r"top_potsdam_(\d+_\d+)_", tile.name).group(1)
            if tile_id in POTSDAM_EXCLUDED:
                continue
            split = next((s for s, ids in POTSDAM_SPLIT.items() if tile_id in ids), "train")
            base = f"top_potsdam_{tile_id}_label"
            _add_isprs_tile(writer, split, tile, base + ".tif", base + "_noBoundary.tif", src)
        return PrepareResult(writer.finish(), writer.summary())


def _add_isprs_tile(writer: PatchFolderWriter, split: str, tile: Path, label_name: str, eroded_name: str,
                    src: Path) -> None:
    """Add one ISPRS tile, with eroded labels for test when present; tiles without labels are skipped."""
    eroded = _find(src, eroded_name) if split == "test" else []
    labels = eroded or [p for p in _find(src, label_name) if p != tile]
    if not labels:
        tqdm.write(f"{tile}: no label file {label_name} found; skipped")
        return
    image, transform, crs = _read(tile)
    mask = read_color_label(labels[0], ISPRS, writer.unknown, eroded=bool(eroded))
    name = tile.stem.removesuffix("_RGB").removesuffix("_IRRG").removesuffix("_RGBIR")
    writer.add(split, Scene(name, image, mask, transform, crs))


def prepare_uavid(src: str | os.PathLike, out: str | os.PathLike, patch: int = 1024, stride: int = 512,
                  overwrite: bool = False, progress: bool = True) -> PrepareResult:
    """UAVid: ``uavid_{train,val,test}/seqN/{Images,Labels}/NNNNNN.png`` frames (test only if labelled)."""
    src = Path(src)
    with PatchFolderWriter(Path(out), UAVID, "uavid", patch, stride, overwrite, inputs=[src]) as writer:
        for split in SPLITS:
            frames = sorted((src / f"uavid_{split}").glob("seq*/Images/*.png"))
            if not frames and split != "test":
                raise RssegError(f"{src}: no frames uavid_{split}/seqN/Images/*.png found")
            for frame in _progress(frames, f"uavid {split}", progress):
                label = frame.parent.parent / "Labels" / frame.name
                if not label.is_file():
                    tqdm.write(f"{frame}: no label {label}; skipped")
                    continue
                image, _, _ = _read(frame)
                mask = read_color_label(label, UAVID, writer.unknown)
                writer.add(split, Scene(f"{frame.parent.parent.name}_{frame.stem}", image[:3], mask))
        return PrepareResult(writer.finish(), writer.summary())


def parse_classes(classes: str) -> ClassSchema:
    """A preset name (``isprs``, ``vaihingen``, ``potsdam``, ``uavid``) or comma-separated class names."""
    if classes.lower() in CLASS_TABLES:
        return CLASS_TABLES[classes.lower()]
    names = tuple(n.strip() for n in classes.split(",") if n.strip())
    if len(names) < 2 or len({n.lower() for n in names}) != len(names):
        raise RssegError(f"classes {classes!r}: give at least two distinct names (ignoring case) or a preset "
                         f"({', '.join(CLASS_TABLES)})")
    return ClassSchema(names)


def parse_palette(palette: str, table: ClassSchema) -> ClassSchema:
    """Class colours from a preset name or ``r,g,b;r,g,b;...`` (one colour per class)."""
    if palette.lower() in CLASS_TABLES:
        colors = CLASS_TABLES[palette.lower()].colors
    else:
        try:
            colors = tuple(tuple(int(v) for v in c.split(",")) for c in palette.split(";"))
        except ValueError:
            colors = ()
    if len(colors) != table.num_classes or any(len(c) != 3 for c in colors):
        raise RssegError(f"palette {palette!r}: needs {table.num_classes} colours 'r,g,b;...' or a preset name")
    return replace(table, colors=tuple(colors))


def rasterize_vector(path: Path, table: ClassSchema, class_field: str, shape: tuple[int, int],
                     transform: Affine | None, crs: CRS | None) -> np.ndarray:
    """Rasterise polygons with a class attribute (name or id) onto the image grid."""
    import geopandas as gpd
    from rasterio.features import rasterize

    if transform is None or crs is None:
        raise RssegError(f"{path}: vector labels need a georeferenced image (the image has no CRS)")
    try:
        frame = gpd.read_file(path)
    except Exception as err:  # noqa: BLE001 - any reading failure is the file's fault
        raise RssegError(f"{path}: unreadable vector file ({reason(err)})") from None
    if class_field not in frame.columns:
        raise RssegError(f"{path}: no attribute {class_field!r} (has {', '.join(map(str, frame.columns))}); "
                         "use --class-field")
    if frame.crs is None:
        raise RssegError(f"{path}: layer has no CRS")
    if CRS.from_user_input(frame.crs) != crs:
        frame = frame.to_crs(crs.to_wkt())
    shapes = []
    for geom, value in zip(frame.geometry, frame[class_field]):
        if geom is None or geom.is_empty:
            continue
        cls = table.lookup(value)
        if cls is None:
            raise RssegError(f"{path}: {class_field}={value!r} is not one of the classes {', '.join(table.names)}")
        shapes.append((geom, cls))
    if not shapes:
        raise RssegError(f"{path}: no polygons")
    return rasterize(shapes, out_shape=shape, transform=transform, fill=table.ignore_index, dtype="uint8")


def read_raster_label(path: Path, table: ClassSchema, shape: tuple[int, int], transform: Affine | None,
                      crs: CRS | None, colors: bool, unknown: Counter) -> np.ndarray:
    """Class ids from an index or colour label raster, warped onto the image grid when they differ."""
    data, src_transform, src_crs = _read(path)
    if colors:
        mask, found = colors_to_index(data[:3], table.colors, table.ignore_index)
        unknown.update(found)
    else:
        if data.shape[0] != 1:
            raise RssegError(f"{path}: index label expected (1 band), found {data.shape[0]}; "
                             "a colour label needs --palette")
        mask = data[0]
        bad = (mask >= table.num_classes) & (mask != table.ignore_index)
        if bad.any():
            raise RssegError(f"{path}: value {mask[bad][0]} is not a class id (0..{table.num_classes - 1}) "
                             f"nor the ignore index {table.ignore_index}")
        mask = mask.astype(np.uint8)
    if mask.shape == shape and (src_transform is None or transform is None or src_transform == transform):
        return mask
    if src_transform is None or transform is None:
        raise RssegError(f"{path}: labels are {mask.shape[0]}×{mask.shape[1]}, the image {shape[0]}×{shape[1]}, "
                         "and without georeference they cannot be aligned")
    from rasterio.warp import Resampling, reproject

    warped = np.full(shape, table.ignore_index, dtype=np.uint8)
    reproject(mask, warped, src_transform=src_transform, src_crs=src_crs or crs, dst_transform=transform,
              dst_crs=crs or src_crs, resampling=Resampling.nearest, src_nodata=table.ignore_index,
              dst_nodata=table.ignore_index)
    return warped


def check_label_cover(mask: np.ndarray, ignore_index: int, label_path: Path, image_path: Path,
                      warn_below: float = 0.01) -> None:
    """Refuse labels that label no pixel of the image; warn when they label almost none."""
    labelled = np.count_nonzero(mask != ignore_index) / max(mask.size, 1)
    if labelled == 0:
        raise RssegError(f"{label_path}: labels no pixel of {image_path} (do they overlap it? same CRS?)")
    if labelled < warn_below:
        warnings.warn(f"{label_path}: labels only {100 * labelled:.2g} % of {image_path} (do they overlap it?)",
                      stacklevel=2)


def split_rows(height: int, val_fraction: float, test_fraction: float) -> dict[str, tuple[int, int]]:
    """Row ranges of the train/val/test strips of a scene (val and test at the bottom)."""
    test_rows = round(height * test_fraction)
    val_rows = round(height * val_fraction)
    train_rows = height - val_rows - test_rows
    if train_rows <= 0:
        raise RssegError(f"validation fraction {val_fraction} + test fraction {test_fraction} leave no rows "
                         "for training")
    bounds = {"train": (0, train_rows), "val": (train_rows, train_rows + val_rows),
              "test": (train_rows + val_rows, height)}
    return {s: b for s, b in bounds.items() if b[1] > b[0]}


def prepare_generic(images: Sequence[str | os.PathLike], labels: Sequence[str | os.PathLike], classes: str,
                    out: str | os.PathLike, patch: int = 512, stride: int = 256, palette: str | None = None,
                    class_field: str = "class", bands: Sequence[int] | None = None, val_fraction: float = 0.2,
                    test_fraction: float = 0.0, overwrite: bool = False) -> PrepareResult:
    """Any GeoTIFF(s) with label rasters or vector labels; val/test are strips at the bottom of each scene."""
    if len(images) != len(labels) or not images:
        raise RssegError(f"{out}: give one --labels per --image ({len(images)} images, {len(labels)} labels)")
    table = parse_classes(classes)
    if palette:
        table = parse_palette(palette, table)
    band_list = list(bands) if bands else None
    writer = PatchFolderWriter(Path(out), table, Path(images[0]).stem, patch, stride, overwrite, bands=band_list,
                               inputs=[*map(Path, images), *map(Path, labels)])
    with writer:
        for image_path, label_path in zip(map(Path, images), map(Path, labels)):
            image, transform, crs = _read(image_path)
            if band_list:
                if max(band_list) > image.shape[0] or min(band_list) < 1:
                    raise RssegError(f"{image_path}: has {image.shape[0]} bands, not bands {band_list}")
                image = image[[b - 1 for b in band_list]]
            if writer.gsd is None and transform is not None:
                writer.gsd = abs(float(transform.a))
            shape = image.shape[1:]
            if label_path.suffix.lower() in VECTOR_SUFFIXES:
                mask = rasterize_vector(label_path, table, class_field, shape, transform, crs)
            else:
                mask = read_raster_label(label_path, table, shape, transform, crs, bool(palette), writer.unknown)
            check_label_cover(mask, table.ignore_index, label_path, image_path)
            for split, (top, bottom) in split_rows(shape[0], val_fraction, test_fraction).items():
                strip = Window(0, top, shape[1], bottom - top)
                strip_tf = window_transform(strip, transform) if transform is not None else None
                writer.add(split, Scene(f"{image_path.stem}_r{top}", image[:, top:bottom], mask[top:bottom],
                                        strip_tf, crs))
        return PrepareResult(writer.finish(), writer.summary())
