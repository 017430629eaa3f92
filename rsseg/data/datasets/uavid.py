"""UAVid: oblique UAV video frames of street scenes, eight classes, in sequences per split."""

from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from rsseg.data.classes import UAVID
from rsseg.data.labels import read_color_label
from rsseg.data.patches import SPLITS
from rsseg.data.prepare import PatchFolderWriter, PrepareResult, Scene, progress_bar, read_scene
from rsseg.data.registry import register_dataset
from rsseg.errors import RssegError


@register_dataset("uavid", title="UAVid", layout="uavid_{train,val,test}/seqN/{Images,Labels}/NNNNNN.png")
def prepare_uavid(src: str | os.PathLike, out: str | os.PathLike, patch: int = 1024, stride: int = 512,
                  overwrite: bool = False, progress: bool = True) -> PrepareResult:
    """UAVid: ``uavid_{train,val,test}/seqN/{Images,Labels}/NNNNNN.png`` frames (test only if labelled)."""
    src = Path(src)
    with PatchFolderWriter(Path(out), UAVID, "uavid", patch, stride, overwrite, inputs=[src]) as writer:
        for split in SPLITS:
            frames = sorted((src / f"uavid_{split}").glob("seq*/Images/*.png"))
            if not frames and split != "test":
                raise RssegError(f"{src}: no frames uavid_{split}/seqN/Images/*.png found")
            for frame in progress_bar(frames, f"uavid {split}", progress):
                label = frame.parent.parent / "Labels" / frame.name
                if not label.is_file():
                    tqdm.write(f"{frame}: no label {label}; skipped")
                    continue
                image, _, _ = read_scene(frame)
                mask = read_color_label(label, UAVID, writer.unknown)
                writer.add(split, Scene(f"{frame.parent.parent.name}_{frame.stem}", image[:3], mask))
        return PrepareResult(writer.finish(), writer.summary())
