"""Your own scenes: GeoTIFF(s) with index, colour or vector labels, cut into a patch folder.

Validation and test are strips at the bottom of each scene. ``rsseg prepare generic`` is the
command line of :func:`prepare_generic`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from rsseg.data.labels import (
    VECTOR_SUFFIXES,
    check_label_cover,
    class_id,
    parse_classes,
    parse_label_set,
    parse_palette,
    rasterize_vector,
    read_raster_label,
)
from rsseg.data.prepare import PatchFolderWriter, PrepareResult, Scene, read_scene
from rsseg.errors import OptionError, RssegError
from rsseg.io.geometry import gsd_metres
from rsseg.schema import SchemaError


@dataclass(frozen=True)
class GenericOptions:
    """How :func:`prepare_generic` cuts and labels scenes; every field has a default.

    ``gsd`` (metres per pixel) is recorded in ``dataset.yaml`` and in the models trained on it;
    by default it is read from the first scene's georeference, in metres whatever its CRS.
    Vector labels: ``polygon_class`` names the class of every polygon (no class attribute needed),
    ``background`` the class of pixels under no polygon (default: ignored in training).
    ``palette`` reads raster labels as RGB colours (a preset name or ``r,g,b;r,g,b;...``).
    ``label_sets`` (``VALUE=NAME,NAME,...``) let index labels say "one of these classes" with
    ``VALUE``, e.g. ``254=ImSurf,LowVeg,Tree,Clutter`` for pixels known not to be a building or
    a car; the trainer's loss asks only that the model put them in one of those classes.
    """

    patch: int = 512
    stride: int = 256
    palette: str | None = None
    class_field: str = "class"
    polygon_class: str | None = None
    background: str | None = None
    bands: Sequence[int] | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    gsd: float | None = None
    label_sets: Sequence[str] = ()
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.gsd is not None and not self.gsd > 0:
            raise OptionError("gsd", self.gsd, "metres per pixel must be positive")


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
                    out: str | os.PathLike, options: GenericOptions | None = None, **fields: Any) -> PrepareResult:
    """Cut ``images`` with one label file each into the patch folder ``out``.

    ``classes`` is a preset (``isprs``, ``uavid``) or comma-separated class names (ids 0..K-1).
    ``options`` (a :class:`GenericOptions`) or its fields as keywords, e.g.
    ``prepare_generic([scene], [labels], "background,building", "patches", patch=256, gsd=0.3)``.
    """
    opts = replace(options or GenericOptions(), **fields)
    if len(images) != len(labels) or not images:
        raise RssegError(f"{out}: give one label file per image ({len(images)} images, {len(labels)} labels)")
    table = parse_classes(classes)
    if opts.palette:
        table = parse_palette(opts.palette, table)
    if opts.label_sets:
        try:
            table = replace(table, label_sets=tuple(parse_label_set(t, table) for t in opts.label_sets))
        except SchemaError as err:
            raise OptionError("label_sets", " ".join(opts.label_sets), str(err)) from None
    band_list = list(opts.bands) if opts.bands else None
    fill = class_id(table, opts.background, "background") if opts.background else None
    burn = class_id(table, opts.polygon_class, "polygon_class") if opts.polygon_class else None
    writer = PatchFolderWriter(Path(out), table, Path(images[0]).stem, opts.patch, opts.stride, opts.overwrite,
                               bands=band_list, gsd=opts.gsd, inputs=[*map(Path, images), *map(Path, labels)])
    with writer:
        for image_path, label_path in zip(map(Path, images), map(Path, labels)):
            image, transform, crs = read_scene(image_path)
            if band_list:
                if max(band_list) > image.shape[0] or min(band_list) < 1:
                    raise RssegError(f"{image_path}: has {image.shape[0]} bands, not bands {band_list}")
                image = image[[b - 1 for b in band_list]]
            if writer.gsd is None and transform is not None:
                try:
                    writer.gsd = gsd_metres(transform, crs, *image.shape[1:])
                except ValueError as err:
                    raise RssegError(f"{image_path}: {err}") from None
            shape = image.shape[1:]
            if label_path.suffix.lower() in VECTOR_SUFFIXES:
                mask = rasterize_vector(label_path, table, opts.class_field, shape, transform, crs, fill, burn)
            else:
                mask = read_raster_label(label_path, table, shape, transform, crs, bool(opts.palette), writer.unknown)
            check_label_cover(mask, table.ignore_index, label_path, image_path)
            for split, (top, bottom) in split_rows(shape[0], opts.val_fraction, opts.test_fraction).items():
                strip = Window(0, top, shape[1], bottom - top)
                strip_tf = window_transform(strip, transform) if transform is not None else None
                writer.add(split, Scene(f"{image_path.stem}_r{top}", image[:, top:bottom], mask[top:bottom],
                                        strip_tf, crs))
        return PrepareResult(writer.finish(), writer.summary())
