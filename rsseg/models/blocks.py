"""Building blocks shared by several architectures."""

from __future__ import annotations

import torch
from torch import nn

from rsseg.models.precision import in_float32


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) + BatchNorm + ReLU with "same" padding."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, groups: int = 1):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class ConvBN(nn.Sequential):
    """Conv2d (no bias) + BatchNorm, "same" padding."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, bias=False),
            nn.BatchNorm2d(out_ch),
        )


class ChannelAttention(nn.Module):
    """DANet channel attention module (CAM).

    ``E = X Xᵀ`` (C×C), ``A = softmax(rowmax(E) − E)``, ``out = γ·A X + x`` with γ initialised 0.
    ``E`` sums over all positions, so ``A`` is computed in float32 whatever the autocast state.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    @staticmethod
    @in_float32
    def weights(flat: torch.Tensor) -> torch.Tensor:
        """``A`` (B, C, C) of the flattened features ``flat`` (B, C, N)."""
        energy = torch.bmm(flat, flat.transpose(1, 2))
        return torch.softmax(energy.amax(dim=-1, keepdim=True) - energy, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        return self.gamma * torch.bmm(self.weights(flat), flat).reshape(b, c, h, w) + x
