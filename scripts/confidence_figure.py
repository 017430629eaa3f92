#!/usr/bin/env python
"""Draw docs/confidence_demo.jpg: what `rsseg predict --confidence` shows on the demo scene.

Runs the same command a user would (bundled default model, flip TTA) into a work folder,
then draws scene | predicted classes | errors against the labels | the four confidence
bands, and prints how often the model is wrong at low and at high confidence:

    python scripts/confidence_figure.py --workdir /tmp/confidence_demo
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont
from rasterio.enums import Resampling

from rsseg.io.mask_meta import NODATA
from rsseg.io.raster import open_raster
from rsseg.viz import BACKGROUND, GAP, overlay, panel_shape, read_mask, read_scene_rgb

ROOT = Path(__file__).resolve().parents[1]
SCENE, LABELS = ROOT / "data_samples" / "demo_scene.tif", ROOT / "data_samples" / "demo_labels.tif"
CAPTION = 22  # pixels of title above each panel


def colour(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Values in [0, 1] through the viridis colour map; invalid pixels white."""
    rgb = (colormaps["viridis"](values)[..., :3] * 255).round().astype(np.uint8)
    rgb[~valid] = BACKGROUND
    return rgb


def colour_bar(width: int, height: int, font: ImageFont.ImageFont) -> Image.Image:
    """A horizontal viridis bar from 0 to 1 with end labels."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    values = np.tile(np.linspace(0, 1, width - 2 * GAP), (height // 4, 1))
    ramp = colour(values, np.ones(values.shape, bool))
    image.paste(Image.fromarray(ramp), (GAP, height // 3))
    draw = ImageDraw.Draw(image)
    draw.text((GAP, height // 3 + height // 4 + 4), "0", fill=(0, 0, 0), font=font)
    draw.text((width - GAP - int(font.getlength("1")), height // 3 + height // 4 + 4), "1", fill=(0, 0, 0), font=font)
    draw.text((GAP, height // 3 - CAPTION), "band value / 255", fill=(0, 0, 0), font=font)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("confidence_demo_out"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "confidence_demo.jpg")
    parser.add_argument("--panel", type=int, default=384, help="panel size in pixels")
    parser.add_argument("--quality", type=int, default=70, help="JPEG quality")
    parser.add_argument("--no-predict", action="store_true", help="draw from the rasters already in --workdir")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    mask, confidence = args.workdir / "demo_scene_mask.tif", args.workdir / "demo_scene_confidence.tif"
    if not args.no_predict:
        subprocess.run([sys.executable, "-m", "rsseg.cli", "predict", str(SCENE), "-o", str(mask), "--confidence",
                        str(confidence), "--tta", "flip", "--overwrite", "--quiet"], check=True)

    with open_raster(mask) as ds:  # full resolution for the error figures
        predicted = ds.read(1)
    with open_raster(LABELS) as ds:
        truth = ds.read(1)
    with open_raster(confidence) as ds:
        top = ds.read(1)
        names = ds.descriptions
    wrong = (predicted != truth) & (predicted != NODATA)
    for low, high in ((0, 128), (128, 230), (230, 256)):
        here = (top >= low) & (top < high) & (predicted != NODATA)
        print(f"top-class probability {low / 255:.2f}-{min(high, 255) / 255:.2f}: {100 * here.mean():.1f} % of pixels, "
              f"{100 * wrong[here].mean():.1f} % of them wrong")
    print(f"all pixels: {100 * wrong.mean():.1f} % wrong")

    shape = panel_shape(*predicted.shape[::-1], args.panel)
    rgb = read_scene_rgb(SCENE, shape)
    classes, _, colors = read_mask(mask, shape)
    with open_raster(confidence) as ds:
        bands = ds.read(out_shape=(ds.count, *shape), resampling=Resampling.average) / 255
    with open_raster(LABELS) as ds:
        labels = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    valid = classes != NODATA
    faded = (rgb * 0.5 + 127).astype(np.uint8)
    errors = np.where(((classes != labels) & valid)[..., None], np.array([220, 30, 30], np.uint8), faded)
    panels = [("scene", rgb), ("predicted classes", overlay(rgb, classes, colors, 0.6)),
              ("wrong vs labels (red)", errors)]
    panels += [(name.replace("_", " "), colour(b, valid)) for name, b in zip(names, bands)]

    font = ImageFont.load_default(size=16)
    h, w = shape
    cols = 4
    canvas = Image.new("RGB", (cols * w + (cols - 1) * GAP, 2 * (h + CAPTION) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, (title, image) in enumerate(panels):
        x, y = (i % cols) * (w + GAP), (i // cols) * (h + CAPTION + GAP)
        draw.text((x, y + 2), title, fill=(0, 0, 0), font=font)
        canvas.paste(Image.fromarray(image), (x, y + CAPTION))
    if len(panels) < 2 * cols:
        canvas.paste(colour_bar(w, h // 2, font), ((cols - 1) * (w + GAP), h + 2 * CAPTION + GAP))
    canvas.save(args.out, format="JPEG", quality=args.quality, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
