"""Encoder-decoder pieces shared by the linear-attention family.

:class:`DecoderBlock` and :class:`LinkNetHead` are the LinkNet-style decoder and final head of
MANet and MAResU-Net; :class:`AttentionLinkNet` is their common wiring, parameterised by the
attention block. Their encoders come from :func:`rsseg.models.encoders.strided_encoder`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from rsseg.models.base import SegmentationModel, check_input_size
from rsseg.models.blocks import ConvBNReLU
from rsseg.models.encoders import TimmEncoder


class DecoderBlock(nn.Sequential):
    """LinkNet decoder block, upsampling ×2: 1×1 → C/4, transposed 3×3 stride 2, 1×1 → out.

    Each convolution is followed by BatchNorm and ReLU.
    """

    def __init__(self, in_ch: int, out_ch: int):
        mid = max(in_ch // 4, 1)
        super().__init__(
            ConvBNReLU(in_ch, mid, 1),
            nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            ConvBNReLU(mid, out_ch, 1),
        )


class LinkNetHead(nn.Sequential):
    """Final head, upsampling ×2: ConvTranspose(→32, 4, 2, 1) + ReLU, 3×3 + ReLU, 3×3 → classes."""

    def __init__(self, in_ch: int, num_classes: int, mid: int = 32):
        super().__init__(
            nn.ConvTranspose2d(in_ch, mid, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, num_classes, 3, padding=1),
        )


class AttentionLinkNet(SegmentationModel):
    """Encoder at strides 4/8/16/32, attention on the deepest map and on every skip, LinkNet decoder.

    ``d4 = Dec(Att(e4)) + Att(e3)``, ``d3 = Dec(d4) + Att(e2)``, ``d2 = Dec(d3) + Att(e1)``,
    ``logits = Head(Dec(d2))``. ``attention(channels)`` builds one attention block per stage.
    Input height and width must be multiples of 32.
    """

    def __init__(self, encoder: TimmEncoder, attention: Callable[[int], nn.Module], num_classes: int):
        super().__init__()
        c1, c2, c3, c4 = encoder.channels
        self.encoder = encoder
        self.attention = nn.ModuleList(attention(c) for c in (c4, c3, c2, c1))
        self.decoder = nn.ModuleList([DecoderBlock(c4, c3), DecoderBlock(c3, c2), DecoderBlock(c2, c1),
                                      DecoderBlock(c1, c1)])
        self.head = LinkNetHead(c1, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x)
        *skips, deepest = self.encoder(x)
        d = self.attention[0](deepest)
        for decode, attend, skip in zip(self.decoder, self.attention[1:], reversed(skips)):
            d = decode(d) + attend(skip)
        return self.head(self.decoder[-1](d))
