"""MANet: multi-attention network with kernel attention (Li et al., IEEE TGRS 2021)."""

from __future__ import annotations

import torch
from torch import nn

from rsseg.models.attention import KernelAttention
from rsseg.models.blocks import ChannelAttention
from rsseg.models.decoders import AttentionLinkNet
from rsseg.models.encoders import strided_encoder
from rsseg.models.registry import register_model

DEFAULT_BACKBONE = "resnet50"


class KernelChannelAttention(nn.Module):
    """MANet attention block: kernel attention and channel attention (DANet CAM), summed."""

    def __init__(self, channels: int):
        super().__init__()
        self.spatial = KernelAttention(channels)
        self.channel = ChannelAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(x) + self.channel(x)


class MANet(AttentionLinkNet):
    """MANet on a timm backbone (ResNet-50 in the paper); H and W must be multiples of 32."""

    def __init__(self, num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
                 pretrained_weights: str | None = None):
        encoder = strided_encoder(backbone, in_channels, (4, 8, 16, 32), pretrained_weights)
        super().__init__(encoder, KernelChannelAttention, num_classes)


@register_model("manet", paper="MANet (Li et al., 2021)")
def build(num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
          pretrained_weights: str | None = None) -> MANet:
    """MANet; ``pretrained_weights`` is a local timm/torchvision state dict for the encoder."""
    return MANet(num_classes, in_channels, backbone, pretrained_weights)
