"""Patch folders: ``DIR/{train,val,test}/{images,masks}/NAME.tif|png`` plus ``DIR/dataset.yaml``.

No torch here, so that ``rsseg prepare`` starts at once; the PyTorch dataset is
:class:`rsseg.data.patch_dataset.PatchDataset`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from rasterio.windows import Window

from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output
from rsseg.io.raster import open_raster
from rsseg.schema import NODATA, ClassSchema, InputSpec

DATASET_YAML = "dataset.yaml"
SPLITS = ("train", "val", "test")
PATCH_SUFFIXES = (".tif", ".tiff", ".png")

@dataclass(frozen=True)
class DatasetInfo:
    """What ``dataset.yaml`` says about a patch folder: its classes, its input bands, its patches.

    ``input.mean``/``input.std`` are per band in units of ``raw / input.scale``; ``input.bands``
    are the 1-based bands of the source scenes the patches hold (``None``: all, in order).
    """

    name: str
    classes: ClassSchema
    input: InputSpec
    patch: int | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    @property
    def in_channels(self) -> int:
        return self.input.channels

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": self.classes.to_dict(), "input": self.input.to_dict(),
                "patch": self.patch, "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, data: dict) -> DatasetInfo:
        """Read the nested form, or the flat form of rsseg <= 0.1 (class_names, mean, ... at the top)."""
        if "classes" not in data:
            data = {"name": data["name"], "patch": data.get("patch"), "counts": data.get("counts") or {},
                    "classes": {"names": data["class_names"], "colors": data.get("class_colors"),
                                "ignore_index": data.get("ignore_index", NODATA),
                                "excluded_from_mean": data.get("excluded_from_mean")},
                    "input": {"mean": data["mean"], "std": data["std"], "scale": data.get("input_scale", 255.0),
                              "bands": data.get("bands"), "gsd": data.get("gsd")}}
        return cls(str(data["name"]), ClassSchema.from_dict(data["classes"]), InputSpec.from_dict(data["input"]),
                   data.get("patch"), dict(data.get("counts") or {}))


def write_dataset_info(root: str | os.PathLike, info: DatasetInfo) -> Path:
    """Write ``dataset.yaml`` (replacing an existing one)."""
    path = Path(root) / DATASET_YAML
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(yaml.safe_dump(info.to_dict(), sort_keys=False))
    return path


def read_dataset_info(root: str | os.PathLike) -> DatasetInfo:
    """Read ``dataset.yaml`` of a patch folder, with a clear error when it is missing or broken."""
    path = Path(root) / DATASET_YAML
    if not path.is_file():
        raise RssegError(f"{path}: not found (is {root} a patch folder made by `rsseg prepare`?)")
    try:
        return DatasetInfo.from_dict(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise RssegError(f"{path}: not a valid dataset description ({type(err).__name__}: {err})") from None


def read_raster(path: Path, window: Window | None = None) -> np.ndarray:
    """All bands of an image (or of ``window``) as a ``bands×H×W`` array; an unreadable file is the file's fault."""
    with open_raster(path) as ds:
        return ds.read(window=window)


def list_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, mask) paths of a split, matched by file stem."""
    images_dir, masks_dir = root / split / "images", root / split / "masks"
    if not images_dir.is_dir():
        raise RssegError(f"{images_dir}: split {split!r} has no images folder")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in PATCH_SUFFIXES)
    if not images:
        raise RssegError(f"{images_dir}: split {split!r} is empty")
    masks = {p.stem: p for p in masks_dir.iterdir()} if masks_dir.is_dir() else {}
    pairs = []
    for image in images:
        mask = masks.get(image.stem)
        if mask is None:
            raise RssegError(f"{image}: no mask {masks_dir / image.stem}.tif|png")
        pairs.append((image, mask))
    return pairs
