"""The PyTorch side of a patch folder (:mod:`rsseg.data.patches`): the dataset, its collate and error handling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from rsseg.data.patches import DatasetInfo, list_pairs, read_dataset_info, read_raster
from rsseg.errors import RssegError
from rsseg.schema import NODATA

Transform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


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
        classes = self.info.classes
        bad = (mask >= classes.num_classes) & (mask != classes.ignore_index)
        bad &= ~np.isin(mask, [v for v, _ in classes.label_sets])
        if bad.any():
            sets = "".join(f", a label set ({v})" for v, _ in classes.label_sets)
            raise RssegError(f"{mask_path}: value {int(mask[bad][0])} is not a class id "
                             f"(0..{classes.num_classes - 1}){sets} nor the ignore index {classes.ignore_index}")
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
