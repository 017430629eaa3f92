#!/usr/bin/env python
"""Real training scenes with weak ISPRS labels (255 = ignored), from files the project can get offline.

    python scripts/real_training_data.py --out runs/real --deepforest /tmp/df/deepforest/data [--gsd 0.2]

- SpaceNet Atlanta (``data_samples/spacenet_atlanta.tif``, 0.5 m, CC BY-SA 4.0): the top 60 % rows
  (the bottom ``TEST_FRACTION`` stay unseen, as in ``scripts/bench_real.py``); footprints are
  Building, pixels more than ``MARGIN_M`` from every footprint the label set ``NOT_BUILDING``
  (ImSurf, LowVeg, Tree or Clutter: the tile's roads, lawns and woods are not told apart, and
  labelling them all Clutter taught the model that this tile's look is Clutter), the ring
  between ignored. The 16-bit pan band becomes grey RGB by :func:`pan_to_grey`.
- NEON orthophotos of the deepforest package (0.1 m, MIT): an ellipse inscribed in each
  tree-crown box (``Tree`` and ``Dead``) is Tree, pixels more than ``MARGIN_M`` from every crown
  LowVeg (the grass, litter and sand between crowns), the ring between ignored. Positive-only
  labels taught the model that these images' look *is* Building or Tree (SpaceNet 96 % Building,
  the NEON forests 100 % Tree). OSBS_029 is held out for
  ``scripts/real_scenes.py``. The package data, when deepforest is not installed, in one line:
  ``pip download --no-deps deepforest==2.1.0 -d /tmp/df && unzip -o /tmp/df/deepforest-2.1.0-py3-none-any.whl
  'deepforest/data/*' -d /tmp/df`` (then ``--deepforest /tmp/df/deepforest/data``).

``--gsd`` resamples every scene to that GSD (image: area average or bilinear; labels: nearest).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine

ROOT = Path(__file__).resolve().parent.parent
SPACENET = ROOT / "data_samples" / "spacenet_atlanta.tif"
SPACENET_BUILDINGS = ROOT / "data_samples" / "spacenet_atlanta_buildings.geojson"
TEST_FRACTION = 0.4  # bottom rows of the SpaceNet tile: evaluation only (scripts/bench_real.py)
NEON_GSD = 0.1
NEON_TRAIN = ("SOAP_061", "2019_YELL_2_541000_4977000_image_crop", "2019_YELL_2_528000_4978000_image_crop2")
NEON_HELD_OUT = ("OSBS_029",)
NEON_CRS = "EPSG:32617"  # the PNGs carry no georeference: a nominal UTM grid with their 0.1 m pixels
STRETCH = (0.5, 99.5)  # percentiles of the pan band mapped to 0 and 255
IGNORE, BUILDING, LOW_VEG, TREE = 255, 1, 2, 3
NOT_BUILDING = 254  # a label set: one of ImSurf, LowVeg, Tree, Clutter (not Building, not Car)
LABEL_SETS = (f"{NOT_BUILDING}=ImSurf,LowVeg,Tree,Clutter",)  # for `rsseg prepare generic --label-set`
MARGIN_M = 1.0  # metres around the labelled objects left ignored (outlines are not exact)


def deepforest_data(given: Path | None) -> Path | None:
    """The deepforest package's ``data`` folder: ``given``, else the installed package's, else None."""
    if given:
        return given
    spec = importlib.util.find_spec("deepforest")
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / "data"
    return None


def pan_to_grey(pan: np.ndarray) -> np.ndarray:
    """One 16-bit band to 3 × uint8 grey: a linear stretch of the scene's 0.5–99.5 percentiles (nonzero pixels)."""
    valid = pan[pan > 0]
    lo, hi = np.percentile(valid, STRETCH) if valid.size else (0.0, 1.0)
    grey = np.clip((pan.astype(np.float32) - lo) / max(hi - lo, 1e-6) * 255, 0, 255).round().astype(np.uint8)
    return np.repeat(grey[None], 3, axis=0)


def spacenet_scene(rows: str = "train") -> tuple[np.ndarray, np.ndarray, Affine, str]:
    """Grey RGB and labels (Building, not Building, ignored) of the ``train`` (top) or ``test`` (bottom) rows."""
    from rsseg.data.labels import parse_classes, rasterize_vector

    with rasterio.open(SPACENET) as ds:
        pan, transform, crs = ds.read(1), ds.transform, ds.crs
        labels = rasterize_vector(SPACENET_BUILDINGS, parse_classes("isprs"), "class", ds.shape, transform, crs,
                                  background=None, polygon_class=BUILDING)
        labels = with_background(labels, labels == BUILDING, NOT_BUILDING, MARGIN_M / transform.a)
    top = pan.shape[0] - round(pan.shape[0] * TEST_FRACTION)
    rgb = pan_to_grey(pan)
    part = slice(0, top) if rows == "train" else slice(top, None)
    return rgb[:, part], labels[part], transform * Affine.translation(0, part.start or 0), str(crs)


def with_background(labels: np.ndarray, objects: np.ndarray, background: int, margin_px: float) -> np.ndarray:
    """``labels`` with ``background`` on the pixels farther than ``margin_px`` from every object pixel."""
    r = max(1, round(margin_px))
    near = torch.nn.functional.max_pool2d(torch.from_numpy(objects)[None, None].float(), 2 * r + 1, 1, r)[0, 0]
    return np.where(near.numpy() > 0, labels, background).astype(np.uint8)


def crown_boxes(data: Path, stem: str) -> list[tuple[int, int, int, int]]:
    """The (xmin, ymin, xmax, ymax) crown boxes of a deepforest image, from its Pascal VOC file."""
    boxes = []
    for obj in ET.parse(data / f"{stem}.xml").getroot().iter("object"):
        box = obj.find("bndbox")
        boxes.append(tuple(int(float(box.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax")))
    return boxes


def crown_ellipses(shape: tuple[int, int], boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """True inside the ellipse inscribed in each box."""
    inside = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        ys, xs = np.ogrid[y0:y1, x0:x1]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
        inside[y0:y1, x0:x1] |= ((xs + 0.5 - cx) / rx) ** 2 + ((ys + 0.5 - cy) / ry) ** 2 <= 1
    return inside


def neon_scene(data: Path, stem: str) -> tuple[np.ndarray, np.ndarray, Affine, str]:
    """RGB and labels (Tree in crown ellipses, LowVeg away from them) of a deepforest NEON image."""
    from PIL import Image

    rgb = np.asarray(Image.open(data / f"{stem}.png").convert("RGB")).transpose(2, 0, 1).copy()
    crowns = crown_ellipses(rgb.shape[1:], crown_boxes(data, stem))
    labels = with_background(np.where(crowns, TREE, IGNORE).astype(np.uint8), crowns, LOW_VEG, MARGIN_M / NEON_GSD)
    return rgb, labels, Affine(NEON_GSD, 0, 500000, 0, -NEON_GSD, 3000000), NEON_CRS


def resample(rgb: np.ndarray, labels: np.ndarray, transform: Affine, gsd: float):
    """The scene at ``gsd`` metres: image area-averaged (down) or bilinear (up), labels nearest."""
    factor = transform.a / gsd
    shape = (max(1, round(labels.shape[0] * factor)), max(1, round(labels.shape[1] * factor)))
    img = torch.from_numpy(rgb).float()[None]
    mode = dict(mode="area") if factor < 1 else dict(mode="bilinear", align_corners=False)
    img = torch.nn.functional.interpolate(img, size=shape, **mode)[0].round().clamp(0, 255).to(torch.uint8).numpy()
    lab = torch.nn.functional.interpolate(torch.from_numpy(labels)[None, None].float(), size=shape, mode="nearest")
    scaled = transform * Affine.scale(labels.shape[1] / shape[1], labels.shape[0] / shape[0])
    return img, lab[0, 0].to(torch.uint8).numpy(), scaled


def write_pair(out: Path, name: str, rgb, labels, transform, crs) -> tuple[Path, Path]:
    """Write ``name.tif`` (RGB uint8) and ``name_labels.tif`` (ISPRS ids, label sets, 255 ignored)."""
    from rsseg.data.classes import ISPRS
    from rsseg.io.mask_meta import write_class_table

    common = dict(driver="GTiff", width=labels.shape[1], height=labels.shape[0], crs=crs, transform=transform,
                  dtype="uint8", compress="deflate")
    image, mask = out / f"{name}.tif", out / f"{name}_labels.tif"
    with rasterio.open(image, "w", count=3, **common) as ds:
        ds.write(rgb)
    with rasterio.open(mask, "w", count=1, nodata=IGNORE, **common) as ds:
        ds.write(labels, 1)
        write_class_table(ds, list(ISPRS.names), list(ISPRS.colors))
    return image, mask


def build(out: Path, deepforest: Path | None = None, gsd: float | None = None) -> list[tuple[Path, Path]]:
    """Write every real training scene available here into ``out``; returns (image, labels) pairs."""
    out.mkdir(parents=True, exist_ok=True)
    scenes = [("spacenet_atlanta_top", *spacenet_scene("train"))]
    data = deepforest_data(deepforest)
    if data is None:
        print("deepforest data not found: NEON crowns skipped (see --help)", file=sys.stderr)
    else:
        scenes += [(f"neon_{stem}", *neon_scene(data, stem)) for stem in NEON_TRAIN if (data / f"{stem}.xml").is_file()]
    pairs = []
    for name, rgb, labels, transform, crs in scenes:
        if gsd:
            rgb, labels, transform = resample(rgb, labels, transform, gsd)
        pairs.append(write_pair(out, name, rgb, labels, transform, crs))
        print(f"{name}: {labels.shape[1]}x{labels.shape[0]} px at {transform.a:.3f} m, "
              f"{100 * float((labels != IGNORE).mean()):.1f} % labelled")
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the scenes")
    parser.add_argument("--deepforest", type=Path, help="deepforest's data folder (default: the installed package)")
    parser.add_argument("--gsd", type=float, help="resample every scene to this GSD (metres)")
    args = parser.parse_args(argv)
    if args.deepforest and not args.deepforest.is_dir():
        parser.error(f"--deepforest {args.deepforest}: no such folder")
    build(args.out, args.deepforest, args.gsd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
