"""Training augmentations applied to an image and its mask together."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    """A float drawn uniformly from ``[lo, hi)``."""
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def randint(generator: torch.Generator, high: int) -> int:
    """An int drawn uniformly from ``[0, high)`` (0 when ``high <= 0``)."""
    return int(torch.randint(high, (), generator=generator)) if high > 0 else 0


def pad_and_resize(image: torch.Tensor, mask: torch.Tensor, size: int, tile: int, ignore_index: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a crop to ``size`` × ``size`` (image 0, mask ``ignore_index``), then resize it to ``tile`` × ``tile``.

    The mask is resized by nearest neighbour.
    """
    if image.shape[-2:] != (size, size):
        pad = (0, size - image.shape[-1], 0, size - image.shape[-2])
        image = F.pad(image, pad, value=0.0)
        mask = F.pad(mask, pad, value=ignore_index)
    if size != tile:
        image = F.interpolate(image[None], size=(tile, tile), mode="bilinear", align_corners=False,
                              antialias=size > tile)[0]
        mask = F.interpolate(mask[None, None].float(), size=(tile, tile), mode="nearest")[0, 0].long()
    return image, mask


def flip_rotate(image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator, flips: bool = True,
                rot90: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Random horizontal/vertical flips and 90° rotations of an image and its mask."""
    if flips and randint(generator, 2):
        image, mask = image.flip(-1), mask.flip(-1)
    if flips and randint(generator, 2):
        image, mask = image.flip(-2), mask.flip(-2)
    if rot90:
        k = randint(generator, 4)
        if k:
            image, mask = torch.rot90(image, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))
    return image.contiguous(), mask.contiguous()
