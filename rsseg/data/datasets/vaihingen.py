"""ISPRS Vaihingen (2D semantic labelling): 33 orthophoto tiles at 9 cm, IRRG, official split."""

from __future__ import annotations

import os
import re
from pathlib import Path

from rsseg.data.classes import ISPRS
from rsseg.data.datasets._isprs import add_isprs_tile
from rsseg.data.prepare import PatchFolderWriter, PrepareResult, find_files, progress_bar
from rsseg.data.registry import register_dataset
from rsseg.errors import RssegError

# test: the 17 areas whose labels the ISPRS 2D semantic labelling contest withheld (its published
# split; GeoSeg's tools/vaihingen_patch_split.py uses the same); val: one training area, never test
VAIHINGEN_SPLIT = {
    "test": (2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31, 33, 35, 38),
    "val": (30,),
}


@register_dataset("vaihingen", title="ISPRS Vaihingen",
                  layout="top/ + gts_for_participants/ [+ gts_eroded_for_participants/]")
def prepare_vaihingen(src: str | os.PathLike, out: str | os.PathLike, patch: int = 1024, stride: int = 512,
                      overwrite: bool = False, progress: bool = True) -> PrepareResult:
    """ISPRS Vaihingen: ``top/top_mosaic_09cm_area{N}.tif`` with full and eroded colour labels."""
    src = Path(src)
    tiles = [p for p in find_files(src, "top_mosaic_09cm_area*.tif") if p.parent.name == "top"]
    if not tiles:
        raise RssegError(f"{src}: no Vaihingen tiles top/top_mosaic_09cm_area{{N}}.tif found")
    with PatchFolderWriter(Path(out), ISPRS, "vaihingen", patch, stride, overwrite, gsd=0.09,
                           inputs=[src]) as writer:
        for tile in progress_bar(tiles, "vaihingen", progress):
            area = int(re.search(r"area(\d+)", tile.stem).group(1))
            split = next((s for s, areas in VAIHINGEN_SPLIT.items() if area in areas), "train")
            add_isprs_tile(writer, split, tile, tile.name, tile.stem + "_noBoundary.tif", src)
        return PrepareResult(writer.finish(), writer.summary())
