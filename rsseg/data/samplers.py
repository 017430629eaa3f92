"""Random training crops over the prepared patches: a fixed number per epoch, with scale jitter.

The idea of torchgeo's ``RandomGeoSampler``: an epoch is ``samples_per_epoch`` crops drawn
anywhere in the training data, not one pass over a fixed list of patches, so a handful of
labelled tiles still gives many varied batches. Only each crop's window is read from disk.
"""

from __future__ import annotations

import math
import warnings

import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from torch.utils.data import Dataset

from rsseg.data.patches import PatchDataset, Transform
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
    """

    def __init__(self, patches: PatchDataset, tile: int, samples_per_epoch: int | None = None,
                 scale: tuple[float, float] = (0.5, 1.5), flips: bool = True, rot90: bool = True,
                 transform: Transform | None = None):
        self.patches = patches
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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = self.patches.generator(index)
        patch, window, size = self.crop(index, generator)
        image, mask = self.patches.normalise(*self.patches.load(patch, window))
        image, mask = pad_and_resize(image, mask, size, self.tile, self.patches.info.classes.ignore_index)
        image, mask = flip_rotate(image, mask, generator, self.flips, self.rot90)
        return self.transform(image, mask, generator) if self.transform else (image, mask)
