"""Patch folders: ``DIR/{train,val,test}/{images,masks}/NAME.tif|png`` plus ``DIR/dataset.yaml``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import yaml
from rasterio.windows import Window
from torch.utils.data import Dataset

from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output
from rsseg.io.raster import open_raster
from rsseg.schema import NODATA, ClassSchema, InputSpec

DATASET_YAML = "dataset.yaml"
SPLITS = ("train", "val", "test")
PATCH_SUFFIXES = (".tif", ".tiff", ".png")

Transform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


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


class PatchDataset(Dataset):
    """Image/mask patches of one split, normalised with the dataset's band statistics.

    Items are ``(image float32 C×H×W, mask int64 H×W)``. ``transform(image, mask, generator)``
    augments them; its generator is seeded from ``(seed, epoch, index)`` so augmentations do
    not depend on worker count, process count or history (see :meth:`set_epoch`).
    """

    def __init__(self, root: str | os.PathLike, split: str, transform: Transform | None = None,
                 seed: int = 0, info: DatasetInfo | None = None):
        self.root = Path(root)
        self.split = split
        self.info = info or read_dataset_info(self.root)
        self.pairs = list_pairs(self.root, split)
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self._mean = np.asarray(self.info.input.mean, dtype=np.float32)[:, None, None]
        self._std = np.asarray(self.info.input.std, dtype=np.float32)[:, None, None]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations the next items get."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw image (bands×H×W) and checked mask (H×W, uint8) of one patch (or of ``window`` in it)."""
        image_path, mask_path = self.pairs[index]
        image, mask = read_raster(image_path, window), read_raster(mask_path, window)
        if image.shape[0] != self.info.in_channels:
            raise RssegError(f"{image_path}: has {image.shape[0]} bands, the dataset {self.info.in_channels}")
        if mask.shape[0] != 1 or mask.shape[1:] != image.shape[1:]:
            raise RssegError(f"{mask_path}: mask is {mask.shape[0]}×{mask.shape[1]}×{mask.shape[2]} "
                             f"(bands×H×W) but its image {image_path.name} is "
                             f"{image.shape[1]}×{image.shape[2]} with one mask band expected")
        return image, self._checked(mask_path, mask[0])

    def check_masks(self) -> None:
        """Read every mask once and check its class ids, so that a bad label fails before training."""
        for _, mask_path in self.pairs:
            self._checked(mask_path, read_raster(mask_path)[0])

    def _checked(self, mask_path: Path, mask: np.ndarray) -> np.ndarray:
        bad = (mask >= self.info.num_classes) & (mask != self.info.classes.ignore_index)
        if bad.any():
            raise RssegError(f"{mask_path}: value {int(mask[bad][0])} is not a class id "
                             f"(0..{self.info.num_classes - 1}) nor the ignore index {self.info.classes.ignore_index}")
        return mask.astype(np.uint8, copy=False)

    def normalise(self, raw: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw bands and mask as model input (``(raw / input_scale - mean) / std``) and int64 target."""
        image = raw.astype(np.float32)
        image /= self.info.input.scale
        image -= self._mean
        image /= self._std
        return torch.from_numpy(image), torch.from_numpy(mask).long()

    def generator(self, index: int) -> torch.Generator:
        """The random generator of item ``index`` in the current epoch."""
        seed = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0]
        return torch.Generator().manual_seed(int(seed))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.normalise(*self.load(index))
        if self.transform is not None:
            x, y = self.transform(x, y, self.generator(index))
        return x, y


def worker_errors_as_one_line(loader: Iterable) -> Iterator:
    """Iterate a DataLoader, turning an :class:`RssegError` raised in a worker back into its one-line message."""
    try:
        yield from loader
    except RssegError as err:
        lines = str(err).strip().splitlines()
        if len(lines) == 1:
            raise
        raise RssegError(lines[-1].split("RssegError: ", 1)[-1]) from None


def pad_collate(batch: list[tuple[torch.Tensor, torch.Tensor]], ignore_index: int = NODATA, multiple: int = 32
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack patches, padding at the bottom/right (image 0, mask ignore index) to the largest
    patch rounded up to ``multiple`` (the input size every registered model accepts)."""
    h = -(-max(x.shape[-2] for x, _ in batch) // multiple) * multiple
    w = -(-max(x.shape[-1] for x, _ in batch) // multiple) * multiple
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w)
    masks = torch.full((len(batch), h, w), ignore_index, dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        images[i, :, :x.shape[-2], :x.shape[-1]] = x
        masks[i, :y.shape[-2], :y.shape[-1]] = y
    return images, masks
