"""ABCNet: attentive bilateral contextual network (Li et al., ISPRS J. Photogramm. 2021).

A spatial path (stride 8, 128 channels) and a context path on a backbone's stride-16 and
stride-32 maps, refined by Taylor linear attention, fused by a feature aggregation module and
decoded by pixel shuffle. Two auxiliary heads on the stride-8 and stride-16 context features
are evaluated in training mode only.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rsseg.models.attention import TaylorAttention
from rsseg.models.base import SegmentationModel, check_input_size
from rsseg.models.blocks import ConvBNReLU
from rsseg.models.encoders import strided_encoder
from rsseg.models.registry import register_model

DEFAULT_BACKBONE = "resnet18"


class AttentionEnhancement(nn.Sequential):
    """Attention enhancement module: ConvBNReLU 3×3, Taylor attention (``γ·out``), BatchNorm."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(ConvBNReLU(in_ch, out_ch, 3), TaylorAttention(out_ch, residual=False),
                         nn.BatchNorm2d(out_ch))


class FeatureAggregation(nn.Module):
    """Feature aggregation module: ``f = ConvBNReLU1×1(cat[spatial, context])``, ``f + f·Attn(f)``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.fuse = ConvBNReLU(in_ch, out_ch, 1)
        self.attention = TaylorAttention(out_ch, residual=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        f = self.fuse(torch.cat([spatial, context], dim=1))
        return f + f * self.attention(f)


class PixelShuffleHead(nn.Sequential):
    """ConvBNReLU 3×3 → ``mid``, 1×1 → ``classes·factor²``, PixelShuffle(``factor``)."""

    def __init__(self, in_ch: int, mid: int, num_classes: int, factor: int):
        super().__init__(ConvBNReLU(in_ch, mid, 3), nn.Conv2d(mid, num_classes * factor ** 2, 1),
                         nn.PixelShuffle(factor))


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class ABCNet(SegmentationModel):
    """ABCNet on a timm backbone (ResNet-18 in the paper); H and W must be multiples of 32.

    Training mode returns ``(main, aux_stride8, aux_stride16)``, weighted by ``aux_weights``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
                 pretrained_weights: str | None = None, aux_weights: Sequence[float] = (0.4, 0.4),
                 channels: int = 128):
        super().__init__()
        if len(aux_weights) != 2:
            raise ValueError(f"ABCNet has two auxiliary heads, got aux_weights={tuple(aux_weights)}")
        self.aux_weights = tuple(float(w) for w in aux_weights)
        self.encoder = strided_encoder(backbone, in_channels, (16, 32), pretrained_weights)
        c16, c32 = self.encoder.channels
        self.spatial_path = nn.Sequential(ConvBNReLU(in_channels, 64, 7, 2), ConvBNReLU(64, 64, 3, 2),
                                          ConvBNReLU(64, 64, 3, 2), ConvBNReLU(64, channels, 1))
        self.global_context = ConvBNReLU(c32, channels, 1)
        self.enhance32 = AttentionEnhancement(c32, channels)
        self.enhance16 = AttentionEnhancement(c16, channels)
        self.refine32 = ConvBNReLU(channels, channels, 3)
        self.refine16 = ConvBNReLU(channels, channels, 3)
        self.aggregate = FeatureAggregation(2 * channels, 2 * channels)
        self.head = PixelShuffleHead(2 * channels, 2 * channels, num_classes, 8)
        self.aux_head8 = PixelShuffleHead(channels, 64, num_classes, 8)
        self.aux_head16 = PixelShuffleHead(channels, 64, num_classes, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        check_input_size(x)
        f16, f32 = self.encoder(x)
        # Pool, then broadcast before the 1×1 ConvBNReLU: BatchNorm sees the same statistics as on
        # the pooled vector, and a batch of one still trains.
        pooled = f32.mean(dim=(2, 3), keepdim=True).expand_as(f32)
        context16 = self.refine32(_up2(self.enhance32(f32) + self.global_context(pooled)))
        context8 = self.refine16(_up2(self.enhance16(f16) + context16))
        out = self.head(self.aggregate(self.spatial_path(x), context8))
        if self.training:
            return out, self.aux_head8(context8), self.aux_head16(context16)
        return out


@register_model("abcnet", paper="ABCNet (Li et al., 2021)")
def build(num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
          pretrained_weights: str | None = None, aux_weights: Sequence[float] = (0.4, 0.4)) -> ABCNet:
    """ABCNet; ``aux_weights`` weight the stride-8 and stride-16 auxiliary losses."""
    return ABCNet(num_classes, in_channels, backbone, pretrained_weights, aux_weights)
