"""What Vaihingen and Potsdam share: ISPRS tiles with full and eroded colour labels."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from rsseg.data.classes import ISPRS
from rsseg.data.labels import read_color_label
from rsseg.data.prepare import PatchFolderWriter, Scene, find_files, read_scene


def add_isprs_tile(writer: PatchFolderWriter, split: str, tile: Path, label_name: str, eroded_name: str,
                   src: Path) -> None:
    """Add one ISPRS tile, with eroded labels for test when present; tiles without labels are skipped."""
    eroded = find_files(src, eroded_name) if split == "test" else []
    labels = eroded or [p for p in find_files(src, label_name) if p != tile]
    if not labels:
        tqdm.write(f"{tile}: no label file {label_name} found; skipped")
        return
    if split == "test":
        writer.test_references["eroded" if eroded else "full"] += 1
    image, transform, crs = read_scene(tile)
    mask = read_color_label(labels[0], ISPRS, writer.unknown, eroded=bool(eroded))
    name = tile.stem.removesuffix("_RGB").removesuffix("_IRRG").removesuffix("_RGBIR")
    writer.add(split, Scene(name, image, mask, transform, crs))
