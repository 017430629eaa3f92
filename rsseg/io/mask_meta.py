"""How class names and colours are stored in (and read from) a class-mask GeoTIFF."""

from __future__ import annotations

import json

from rasterio.io import DatasetReader, DatasetWriter

from rsseg.schema import NODATA

CLASS_NAMES_TAG = "RSSEG_CLASS_NAMES"
__all__ = ["CLASS_NAMES_TAG", "NODATA", "read_class_table", "write_class_table"]


def write_class_table(ds: DatasetWriter, names: list[str], colors: list[tuple[int, int, int]]) -> None:
    """Store names as a JSON tag and colours as band 1's colormap (nodata transparent)."""
    ds.update_tags(**{CLASS_NAMES_TAG: json.dumps(list(names))})
    cmap = {i: (*c, 255) for i, c in enumerate(colors)}
    cmap[NODATA] = (0, 0, 0, 0)
    ds.write_colormap(1, cmap)
    ds.set_band_description(1, "class_id")


def read_class_table(ds: DatasetReader) -> tuple[list[str] | None, list[tuple[int, int, int]] | None]:
    """Class names and colours of a mask written by rsseg (``None`` for what is absent)."""
    tag = ds.tags().get(CLASS_NAMES_TAG)
    names = json.loads(tag) if tag else None
    try:
        cmap = ds.colormap(1)
    except ValueError:
        return names, None
    n = len(names) if names else max((k for k in cmap if k != NODATA), default=-1) + 1
    return names, [tuple(cmap[i][:3]) for i in range(n)] if n else None
