"""Photometric randomisation: what differs between one sensor, flight or season and another.

Colour balance, saturation, brightness/contrast/gamma, haze, blur, sensor noise and JPEG
artefacts, each applied with a probability and a random strength drawn from a torch generator
(so that augmentations are reproducible per item, as in :class:`rsseg.data.patch_dataset.PatchDataset`).
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


class Photometric:
    """Randomise the look of a normalised image (C×H×W), leaving its geometry alone.

    The image is taken back to ``raw / input_scale`` units with ``mean``/``std``, changed there
    (values clipped to [0, 1]) and normalised again. ``strength`` scales every range (0: off).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], strength: float = 1.0):
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1)
        self.strength = strength

    def _u(self, generator: torch.Generator, lo: float, hi: float, centre: float = 0.0) -> float:
        """A uniform draw in [lo, hi], pulled towards ``centre`` when strength < 1."""
        value = lo + (hi - lo) * float(torch.rand((), generator=generator))
        return centre + (value - centre) * self.strength

    def _p(self, generator: torch.Generator, p: float) -> bool:
        return float(torch.rand((), generator=generator)) < p * min(1.0, self.strength)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The image with a new look, and its mask unchanged (a :data:`rsseg.data.patch_dataset.Transform`)."""
        return self.randomise(image, generator), mask

    def randomise(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The normalised image with randomised colour, light, haze, blur, noise and JPEG."""
        x = (image * self.std + self.mean).clamp(0, 1)
        c = x.shape[0]
        gains = torch.tensor([self._u(generator, 0.88, 1.12, 1.0) for _ in range(c)]).view(-1, 1, 1)
        x = x * gains  # white balance / sensor response
        if c >= 3 and self._p(generator, 0.8):  # saturation around the per-pixel grey, down to grey (pan as RGB)
            grey = x[:3].mean(0, keepdim=True)
            x = torch.cat([grey + (x[:3] - grey) * self._u(generator, 0.0, 1.5, 1.0), x[3:]])
        x = (x - x.mean()) * self._u(generator, 0.6, 1.5, 1.0) + x.mean() + self._u(generator, -0.2, 0.2)
        x = x.clamp(0, 1) ** self._u(generator, 0.7, 1.4, 1.0)
        if self._p(generator, 0.3):  # haze: a bright, slightly blue veil
            amount = self._u(generator, 0.05, 0.45)
            veil = torch.tensor([0.80, 0.84, 0.90] + [0.8] * (c - 3))[:c].view(-1, 1, 1)
            x = x * (1 - amount) + veil * amount
        if self._p(generator, 0.3):
            x = _gaussian_blur(x, self._u(generator, 0.4, 1.6))
        if self._p(generator, 0.3):
            x = x + torch.randn(x.shape, generator=generator) * self._u(generator, 0.005, 0.04)
        x = x.clamp(0, 1)
        if c == 3 and self._p(generator, 0.3):
            x = _jpeg(x, int(self._u(generator, 25, 90, 95)))
        return (x - self.mean) / self.std


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a C×H×W image, edges reflected."""
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[0]
    y = F.pad(x[None], (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.conv2d(y, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y[0]


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Round-trip a 3×H×W image in [0, 1] through JPEG at ``quality``."""
    buffer = io.BytesIO()
    pixels = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=max(1, min(95, quality)))
    decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(decoded).permute(2, 0, 1).contiguous()
