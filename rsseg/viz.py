"""Preview images: scene | class-mask overlay | legend, read decimated so huge scenes stay cheap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rasterio.enums import Resampling

from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output
from rsseg.io.mask_meta import NODATA, read_class_table
from rsseg.io.raster import open_raster

BACKGROUND = (255, 255, 255)
GAP = 8  # pixels between panels


def panel_shape(width: int, height: int, max_size: int) -> tuple[int, int]:
    """Height and width of a scene shrunk (never enlarged) to fit ``max_size`` on its longer side."""
    scale = min(1.0, max_size / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def read_scene_rgb(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """The scene's first three bands (one band as grey) at ``shape``, stretched to uint8 H × W × 3."""
    with open_raster(path) as ds:
        bands = [1, 2, 3] if ds.count >= 3 else [1, 1, 1]
        data = ds.read(bands, out_shape=(3, *shape), resampling=Resampling.average, masked=True)
    if data.dtype == np.uint8:
        return np.ma.filled(data, 0).transpose(1, 2, 0)
    out = np.zeros(data.shape, np.uint8)
    for i, band in enumerate(data.astype(np.float64)):
        valid = band.compressed()
        if valid.size:
            lo, hi = np.percentile(valid, (2, 98))
            out[i] = np.clip((np.ma.filled(band, lo) - lo) / max(hi - lo, 1e-12) * 255, 0, 255)
    return out.transpose(1, 2, 0)


def read_mask(path: str | Path, shape: tuple[int, int]) -> tuple[np.ndarray, list[str], list[tuple[int, int, int]]]:
    """A class mask at ``shape`` (nearest neighbour) with its class names and colours."""
    with open_raster(path) as ds:
        mask = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
        names, colors = read_class_table(ds)
    if colors is None:
        raise RssegError(f"{path}: class mask has no colour table (not written by rsseg?)")
    names = names or [f"class {i}" for i in range(len(colors))]
    return mask, names, colors


def overlay(rgb: np.ndarray, mask: np.ndarray, colors: list[tuple[int, int, int]], alpha: float) -> np.ndarray:
    """Blend class colours over the scene; nodata and unknown ids leave the scene as it is."""
    palette = np.zeros((256, 3), np.float32)
    palette[:len(colors)] = colors
    weight = np.where((mask != NODATA) & (mask < len(colors)), alpha, 0.0)[..., None]
    return (rgb * (1 - weight) + palette[mask] * weight).round().astype(np.uint8)


def legend(names: list[str], colors: list[tuple[int, int, int]], fractions: np.ndarray, height: int) -> Image.Image:
    """A column of colour swatches with class names and their share of the mask."""
    size = int(np.clip(height / max(len(names) + 2, 12), 10, 28))
    font = ImageFont.load_default(size=size)
    labels = [f"{name}  {100 * f:.1f}%" for name, f in zip(names, fractions)]
    width = 2 * GAP + int(size * 1.6) + max(int(font.getlength(t)) for t in labels)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    step = int(size * 1.5)
    for i, (text, color) in enumerate(zip(labels, colors)):
        top = GAP + i * step
        draw.rectangle((GAP, top, GAP + size, top + size), fill=tuple(color), outline=(0, 0, 0))
        draw.text((GAP + int(size * 1.6), top), text, fill=(0, 0, 0), font=font)
    return image


def write_preview(scene: str | Path, mask: str | Path, out: str | Path, max_size: int = 1024, alpha: float = 0.5,
                  overwrite: bool = False) -> Path:
    """Write a PNG: the scene, the mask blended over it, and a legend of class names and colours.

    Both rasters are read decimated to at most ``max_size`` pixels on the longer side, so a
    preview of a 16384² scene costs one downsampled read, not the whole scene in memory.
    """
    with open_raster(scene) as ds:
        shape = panel_shape(ds.width, ds.height, max_size)
    rgb = read_scene_rgb(scene, shape)
    classes, names, colors = read_mask(mask, shape)
    counts = np.bincount(classes[classes < len(colors)], minlength=len(colors))[:len(colors)]
    fractions = counts / max(1, classes.size)
    key = legend(names, colors, fractions, shape[0])
    canvas = Image.new("RGB", (2 * shape[1] + key.width + 2 * GAP, shape[0]), BACKGROUND)
    canvas.paste(Image.fromarray(rgb), (0, 0))
    canvas.paste(Image.fromarray(overlay(rgb, classes, colors, alpha)), (shape[1] + GAP, 0))
    canvas.paste(key, (2 * shape[1] + 2 * GAP, 0))
    with atomic_output(out, overwrite) as tmp:
        canvas.save(tmp, format="PNG")
    return Path(out)
