"""Random training crops over the prepared patches: a fixed number per epoch, with scale jitter.

The idea of torchgeo's ``RandomGeoSampler``: an epoch is ``samples_per_epoch`` crops drawn
anywhere in the training data, not one pass over a fixed list of patches, so a handful of
labelled tiles still gives many varied batches. Only each crop's window is read from disk.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from torch.utils.data import Dataset

from rsseg.data.patch_dataset import PatchDataset, Transform
from rsseg.data.transforms import flip_rotate, pad_and_resize, randint, uniform


def raster_shape(path) -> tuple[int, int]:
    """Height and width of a raster, read from its header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            return ds.height, ds.width


class RandomCropDataset(Dataset):
    """``samples_per_epoch`` random ``tile`` × ``tile`` crops of a split's patches (image, mask), augmented.

    Each crop picks a patch with probability proportional to its area, a scale ``s`` in
    ``scale`` (the crop covers ``tile / s`` source pixels and is resized to ``tile``: scale
    jitter), a position inside the patch, then random flips and 90° rotations. All draws come
    from the patch dataset's generator for ``(seed, epoch, index)``, so crops do not depend on
    worker or process count. ``samples_per_epoch=None`` draws as many crops as cover the
    training area once (at least one per patch). ``transform(image, mask, generator)``, when
    given, runs last (e.g. photometric augmentations).

    The recipes of the UNetFormer family (GeoSeg) add two options. ``max_class_share``: a crop
    whose most frequent class fills more than this share of its labelled pixels is drawn again,
    up to ``redraws`` times (class balance). ``mosaic``: with this probability an item is four
    crops tiled around a random centre (the 4-image mosaic of YOLOv4).
    """

    def __init__(self, patches: PatchDataset, tile: int, samples_per_epoch: int | None = None,
                 scale: tuple[float, float] = (0.5, 1.5), flips: bool = True, rot90: bool = True,
                 transform: Transform | None = None, max_class_share: float | None = None, redraws: int = 10,
                 mosaic: float = 0.0):
        self.patches = patches
        self.max_class_share = max_class_share
        self.redraws = redraws
        self.mosaic = mosaic
        self.transform = transform
        self.tile = tile
        self.scale = scale
        self.flips = flips
        self.rot90 = rot90
        self.shapes = [raster_shape(image) for image, _ in patches.pairs]
        areas = torch.tensor([h * w for h, w in self.shapes], dtype=torch.float64)
        self.weights = areas / areas.sum()
        self.samples_per_epoch = int(samples_per_epoch or max(len(self.shapes),
                                                              math.ceil(float(areas.sum()) / tile ** 2)))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops the next items are."""
        self.patches.set_epoch(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def crop(self, index: int, generator: torch.Generator) -> tuple[int, Window, int]:
        """The patch, its window read and the (square) source crop size of item ``index``."""
        patch = int(torch.multinomial(self.weights, 1, generator=generator))
        size = max(1, round(self.tile / uniform(generator, *self.scale)))
        h, w = self.shapes[patch]
        row, col = randint(generator, h - size + 1), randint(generator, w - size + 1)
        return patch, Window(col, row, min(size, w - col), min(size, h - row)), size

    def class_share(self, mask: np.ndarray) -> float:
        """The share of ``mask``'s labelled pixels that its most frequent class fills (0 when none)."""
        labelled = mask[mask != self.patches.info.classes.ignore_index]
        return float(np.bincount(labelled).max()) / labelled.size if labelled.size else 0.0

    def balanced_crop(self, index: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One augmented crop, drawn again while one class fills more than ``max_class_share``."""
        for _ in range(self.redraws + 1):
            patch, window, size = self.crop(index, generator)
            raw, mask = self.patches.load(patch, window)
            if self.max_class_share is None or self.class_share(mask) <= self.max_class_share:
                break
        image, target = self.patches.normalise(raw, mask)
        image, target = pad_and_resize(image, target, size, self.tile, self.patches.info.classes.ignore_index)
        return flip_rotate(image, target, generator, self.flips, self.rot90)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = self.patches.generator(index)
        if self.mosaic > 0 and float(torch.rand((), generator=generator)) < self.mosaic:
            image, mask = mosaic([self.balanced_crop(index, generator) for _ in range(4)],
                                 randint(generator, self.tile // 2 + 1) + self.tile // 4,
                                 randint(generator, self.tile // 2 + 1) + self.tile // 4)
        else:
            image, mask = self.balanced_crop(index, generator)
        return self.transform(image, mask, generator) if self.transform else (image, mask)


def mosaic(crops: list[tuple[torch.Tensor, torch.Tensor]], row: int, col: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four same-sized crops (image, mask) as one: top-left, top-right, bottom-left, bottom-right
    quadrants around the centre ``(row, col)``, each cut from its own crop at the same place."""
    image, mask = crops[0][0].clone(), crops[0][1].clone()
    for (crop_image, crop_mask), (rows, cols) in zip(crops[1:], ((slice(None, row), slice(col, None)),
                                                                (slice(row, None), slice(None, col)),
                                                                (slice(row, None), slice(col, None)))):
        image[:, rows, cols] = crop_image[:, rows, cols]
        mask[rows, cols] = crop_mask[rows, cols]
    return image, mask
