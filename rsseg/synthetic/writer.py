"""Writing a generated scene as tiled, compressed GeoTIFFs (image and labels), atomically."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import rasterio
from affine import Affine
from tqdm import tqdm

from rsseg.data.classes import ISPRS
from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output
from rsseg.io.mask_meta import write_class_table
from rsseg.synthetic.layout import plan_scene
from rsseg.synthetic.materials import BLOCK, CRS, GSD, ORIGIN
from rsseg.synthetic.plan import ScenePlan
from rsseg.synthetic.render import iter_blocks


def scene_transform(gsd: float = GSD):
    """The georeference of a generated scene: UTM 32N, ``gsd`` metre pixels (0.09 by default), north-up."""
    return Affine(gsd, 0.0, ORIGIN[0], 0.0, -gsd, ORIGIN[1])


def write_scene(image_path: str | Path, labels_path: str | Path | None, width: int, height: int, seed: int = 0,
                bands: str = "RGB", compress: str = "deflate", quality: int = 90, overwrite: bool = False,
                progress: bool = True, landscape: str = "urban", gsd: float = GSD) -> ScenePlan:
    """Generate a scene and write it as tiled, compressed GeoTIFFs (image and, optionally, labels).

    ``compress`` is ``deflate`` (lossless), ``jpeg`` (YCbCr, ``quality``) or ``webp`` for the image;
    labels are always deflate-compressed uint8 class ids with the ISPRS class names and colormap.
    ``landscape`` is ``urban`` or ``rural`` (see :func:`plan_scene`); ``gsd`` (metres, at least the
    generator's 0.09) renders the same ground at coarser pixels: ``width`` × ``height`` pixels of ``gsd``.
    """
    if compress not in ("deflate", "jpeg", "webp"):
        raise RssegError(f"{image_path}: unknown compression {compress!r} (deflate, jpeg or webp)")
    if gsd < GSD:
        raise RssegError(f"{image_path}: gsd {gsd:g} m is finer than the generator's {GSD:g} m")
    factor = gsd / GSD
    plan = plan_scene(math.ceil(width * factor), math.ceil(height * factor), seed, landscape)
    common = dict(driver="GTiff", width=width, height=height, crs=CRS, transform=scene_transform(gsd),
                  tiled=True, blockxsize=BLOCK, blockysize=BLOCK, dtype="uint8")
    image_opts = {"deflate": dict(compress="deflate", predictor=2),
                  "jpeg": dict(compress="jpeg", photometric="ycbcr", jpeg_quality=quality),
                  "webp": dict(compress="webp", webp_level=quality)}[compress]
    with contextlib.ExitStack() as stack:
        tmp_image = stack.enter_context(atomic_output(image_path, overwrite))
        tmp_labels = stack.enter_context(atomic_output(labels_path, overwrite)) if labels_path else None
        img_ds = stack.enter_context(rasterio.open(tmp_image, "w", count=3, **common, **image_opts))
        img_ds.descriptions = ("red", "green", "blue") if bands == "RGB" else ("nir", "red", "green")
        lab_ds = None
        if tmp_labels:
            lab_ds = stack.enter_context(rasterio.open(tmp_labels, "w", count=1, nodata=255, compress="deflate",
                                                       **common))
            write_class_table(lab_ds, list(ISPRS.names), list(ISPRS.colors))
        rows = tqdm(iter_blocks(plan, bands, factor), total=math.ceil(height / BLOCK), unit="row",
                    desc=f"generating {Path(image_path).name}", disable=not progress)
        for window, img, lab in rows:
            img_ds.write(img, window=window)
            if lab_ds:
                lab_ds.write(lab, 1, window=window)
    return plan
