"""ISPRS Potsdam (2D semantic labelling): 38 orthophoto tiles at 5 cm, RGB/IRRG/RGBIR, official split."""

from __future__ import annotations

import os
import re
from pathlib import Path

from rsseg.data.classes import ISPRS
from rsseg.data.datasets._isprs import add_isprs_tile
from rsseg.data.prepare import PatchFolderWriter, PrepareResult, find_files, progress_bar
from rsseg.data.registry import DatasetParameter, register_dataset
from rsseg.errors import OptionError, RssegError

# test: the 14 tiles whose labels the ISPRS 2D semantic labelling contest withheld (its published
# split, as GeoSeg's tools/potsdam_patch_split.py); val: one training tile
POTSDAM_SPLIT = {
    "test": ("2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14", "5_15", "6_13",
             "6_14", "6_15", "7_13"),
    "val": ("2_10",),
}
POTSDAM_EXCLUDED = ("7_10",)  # faulty label
POTSDAM_VARIANTS = {"RGB": "2_Ortho_RGB", "IRRG": "3_Ortho_IRRG", "RGBIR": "4_Ortho_RGBIR"}


VARIANT = DatasetParameter("variant", "Which orthophotos: 2_Ortho_RGB, 3_Ortho_IRRG or 4_Ortho_RGBIR.",
                           tuple(POTSDAM_VARIANTS))


@register_dataset("potsdam", title="ISPRS Potsdam", layout="2_Ortho_RGB/ + 5_Labels_all/ [+ 5_Labels_all_noBoundary/]",
                  parameters=(VARIANT,))
def prepare_potsdam(src: str | os.PathLike, out: str | os.PathLike, patch: int = 1024, stride: int = 512,
                    variant: str = "RGB", overwrite: bool = False, progress: bool = True) -> PrepareResult:
    """ISPRS Potsdam: ``2_Ortho_RGB`` (or IRRG/RGBIR) tiles with ``5_Labels_all`` labels."""
    src = Path(src)
    if variant not in POTSDAM_VARIANTS:
        raise OptionError("variant", repr(variant), f"choose {', '.join(POTSDAM_VARIANTS)}")
    tiles = find_files(src, f"top_potsdam_*_{variant}.tif")
    if not tiles:
        raise RssegError(f"{src}: no Potsdam tiles {POTSDAM_VARIANTS[variant]}/top_potsdam_X_Y_{variant}.tif found")
    name = f"potsdam-{variant.lower()}"
    with PatchFolderWriter(Path(out), ISPRS, name, patch, stride, overwrite, gsd=0.05, inputs=[src]) as writer:
        for tile in progress_bar(tiles, "potsdam", progress):
            tile_id = re.search(r"top_potsdam_(\d+_\d+)_", tile.name).group(1)
            if tile_id in POTSDAM_EXCLUDED:
                continue
            split = next((s for s, ids in POTSDAM_SPLIT.items() if tile_id in ids), "train")
            base = f"top_potsdam_{tile_id}_label"
            add_isprs_tile(writer, split, tile, base + ".tif", base + "_noBoundary.tif", src)
        return PrepareResult(writer.finish(), writer.summary())
