"""Reading labels onto a scene's grid: class tables from names or presets, colour, index and vector labels."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from rsseg.data.classes import CLASS_TABLES
from rsseg.data.prepare import read_scene
from rsseg.errors import OptionError, RssegError, reason
from rsseg.schema import ClassSchema, colors_to_index

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb")
BOUNDARY_COLOR = (0, 0, 0)


def read_color_label(path: Path, table: ClassSchema, unknown: Counter, eroded: bool = False) -> np.ndarray:
    """Read an RGB label file as class ids, adding its unknown colours to ``unknown``."""
    rgb, _, _ = read_scene(path)
    if rgb.shape[0] < 3:
        raise RssegError(f"{path}: colour label expected (3 bands), found {rgb.shape[0]} band(s)")
    mask, found = colors_to_index(rgb[:3], table.colors, table.ignore_index, BOUNDARY_COLOR if eroded else None)
    unknown.update(found)
    return mask


def parse_classes(classes: str) -> ClassSchema:
    """A preset name (``isprs``, ``vaihingen``, ``potsdam``, ``uavid``) or comma-separated class names."""
    if classes.lower() in CLASS_TABLES:
        return CLASS_TABLES[classes.lower()]
    names = tuple(n.strip() for n in classes.split(",") if n.strip())
    if len(names) < 2 or len({n.lower() for n in names}) != len(names):
        raise RssegError(f"classes {classes!r}: give at least two distinct names (ignoring case) or a preset "
                         f"({', '.join(CLASS_TABLES)})")
    return ClassSchema(names)


def parse_label_set(text: str, table: ClassSchema) -> tuple[int, tuple[int, ...]]:
    """``VALUE=NAME,NAME,...``: label ``VALUE`` means one of these classes (a partial label)."""
    value, _, names = text.partition("=")
    ids = [table.lookup(n) for n in names.split(",") if n.strip()]
    if not value.strip().isdigit() or None in ids or len(set(ids)) < 2:
        raise OptionError("label_sets", repr(text), f"expected VALUE=NAME,NAME,... with two or more of the classes "
                                                    f"{', '.join(table.names)}")
    return int(value), tuple(int(c) for c in ids if c is not None)


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


def class_id(table: ClassSchema, name: str, option: str) -> int:
    """The label of class ``name`` (any case) or label set, or an :class:`OptionError` naming ``option``."""
    cls = table.label_value(name)
    if cls is None:
        raise OptionError(option, repr(name), f"not one of the classes {', '.join(table.names)}")
    return cls


def rasterize_vector(path: Path, table: ClassSchema, class_field: str, shape: tuple[int, int],
                     transform: Affine | None, crs: CRS | None, background: int | None = None,
                     polygon_class: int | None = None) -> np.ndarray:
    """Rasterise polygons with a class attribute (name or id) onto the image grid.

    ``polygon_class`` gives every polygon that class instead (layers without a class attribute,
    e.g. building footprints); pixels under no polygon get ``background`` (default: ignored).
    """
    import geopandas as gpd
    from rasterio.features import rasterize

    if transform is None or crs is None:
        raise RssegError(f"{path}: vector labels need a georeferenced image (the image has no CRS)")
    try:
        frame = gpd.read_file(path)
    except Exception as err:  # noqa: BLE001 - any reading failure is the file's fault
        raise RssegError(f"{path}: unreadable vector file ({reason(err)})") from None
    if polygon_class is None and class_field not in frame.columns:
        raise OptionError("class_field", repr(class_field),
                          f"{path} has no such attribute (has {', '.join(map(str, frame.columns))})")
    if frame.crs is None:
        raise RssegError(f"{path}: layer has no CRS")
    if CRS.from_user_input(frame.crs) != crs:
        frame = frame.to_crs(crs.to_wkt())
    shapes = []
    values = frame[class_field] if polygon_class is None else [table.names[polygon_class]] * len(frame)
    for geom, value in zip(frame.geometry, values):
        if geom is None or geom.is_empty:
            continue
        cls = table.label_value(value)
        if cls is None:
            sets = "".join(f", {v}" for v, _ in table.label_sets)
            raise RssegError(f"{path}: {class_field}={value!r} is not one of the classes {', '.join(table.names)}"
                             + (f" nor a label set{sets}" if sets else ""))
        shapes.append((geom, cls))
    if not shapes:
        raise RssegError(f"{path}: no polygons")
    fill = table.ignore_index if background is None else background
    return rasterize(shapes, out_shape=shape, transform=transform, fill=fill, dtype="uint8")


def read_raster_label(path: Path, table: ClassSchema, shape: tuple[int, int], transform: Affine | None,
                      crs: CRS | None, colors: bool, unknown: Counter) -> np.ndarray:
    """Class ids from an index or colour label raster, warped onto the image grid when they differ."""
    data, src_transform, src_crs = read_scene(path)
    if colors:
        mask, found = colors_to_index(data[:3], table.colors, table.ignore_index)
        unknown.update(found)
    else:
        if data.shape[0] != 1:
            raise RssegError(f"{path}: index label expected (1 band), found {data.shape[0]}; "
                             "a colour label needs a palette")
        mask = data[0]
        bad = (mask >= table.num_classes) & (mask != table.ignore_index)
        bad &= ~np.isin(mask, [v for v, _ in table.label_sets])
        if bad.any():
            sets = "".join(f", a label set ({v})" for v, _ in table.label_sets)
            raise RssegError(f"{path}: value {mask[bad][0]} is not a class id (0..{table.num_classes - 1}){sets} "
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
