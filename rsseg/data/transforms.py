"""Training augmentations applied to an image and its mask together."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


class TrainAugment:
    """Random scale + crop to ``tile``, flips and 90° rotations (mask resampled nearest).

    The crop is taken in the source at size ``tile / scale`` and resized to ``tile``, so a
    scale of 0.5 shows twice the area. Parts of a crop falling outside the patch are padded
    with 0 (the normalised mean) in the image and the ignore index in the mask. ``photometric``
    (e.g. :class:`rsseg.data.photometric.Photometric`) then changes the image's look.
    """

    def __init__(self, tile: int, scale: tuple[float, float] = (0.5, 1.5), flips: bool = True,
                 rot90: bool = True, ignore_index: int = 255,
                 photometric: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None):
        self.tile = tile
        self.scale = scale
        self.flips = flips
        self.rot90 = rot90
        self.ignore_index = ignore_index
        self.photometric = photometric

    def _uniform(self, generator: torch.Generator, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    def _randint(self, generator: torch.Generator, high: int) -> int:
        return int(torch.randint(high, (), generator=generator)) if high > 0 else 0

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self._uniform(generator, *self.scale)
        size = max(1, round(self.tile / scale))
        h, w = mask.shape
        y = self._randint(generator, h - size + 1)
        x = self._randint(generator, w - size + 1)
        image, mask = image[:, y:y + size, x:x + size], mask[y:y + size, x:x + size]
        if image.shape[-2:] != (size, size):
            pad = (0, size - image.shape[-1], 0, size - image.shape[-2])
            image = F.pad(image, pad, value=0.0)
            mask = F.pad(mask, pad, value=self.ignore_index)
        if size != self.tile:
            image = F.interpolate(image[None], size=(self.tile, self.tile), mode="bilinear",
                                  align_corners=False, antialias=size > self.tile)[0]
            mask = F.interpolate(mask[None, None].float(), size=(self.tile, self.tile), mode="nearest")[0, 0].long()
        if self.flips and self._randint(generator, 2):
            image, mask = image.flip(-1), mask.flip(-1)
        if self.flips and self._randint(generator, 2):
            image, mask = image.flip(-2), mask.flip(-2)
        if self.rot90:
            k = self._randint(generator, 4)
            if k:
                image, mask = torch.rot90(image, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))
        if self.photometric is not None:
            image = self.photometric(image.contiguous(), generator)
        return image.contiguous(), mask.contiguous()
