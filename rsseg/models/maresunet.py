"""MAResU-Net: multi-stage attention ResU-Net with Taylor linear attention (Li et al., IEEE GRSL 2021)."""

from __future__ import annotations

import torch
from torch import nn

from rsseg.models.attention import TaylorAttention
from rsseg.models.blocks import ChannelAttention
from rsseg.models.decoders import AttentionLinkNet
from rsseg.models.encoders import strided_encoder
from rsseg.models.registry import register_model

DEFAULT_BACKBONE = "resnet34"


def _conv_relu(in_ch: int, out_ch: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True))


def _dropout_conv_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Dropout2d(0.1), _conv_relu(channels, channels, 1))


class MultiStageAttention(nn.Module):
    """MAResU-Net attention block.

    3×3 conv + ReLU, then a linear-attention branch (residual Taylor attention) and a channel
    attention branch, each Dropout 0.1 + 1×1 conv + ReLU, summed, then Dropout 0.1 + 1×1 + ReLU.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = _conv_relu(channels, channels, 3)
        self.spatial = TaylorAttention(channels, residual=True)
        self.channel = ChannelAttention()
        self.spatial_out = _dropout_conv_relu(channels)
        self.channel_out = _dropout_conv_relu(channels)
        self.fuse = _dropout_conv_relu(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fuse(self.spatial_out(self.spatial(x)) + self.channel_out(self.channel(x)))


class MAResUNet(AttentionLinkNet):
    """MAResU-Net on a timm backbone (ResNet-34 in the paper); H and W must be multiples of 32."""

    def __init__(self, num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
                 pretrained_weights: str | None = None):
        encoder = strided_encoder(backbone, in_channels, (4, 8, 16, 32), pretrained_weights)
        super().__init__(encoder, MultiStageAttention, num_classes)


@register_model("maresunet", paper="MAResU-Net (Li et al., 2021)")
def build(num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
          pretrained_weights: str | None = None) -> MAResUNet:
    """MAResU-Net; ``pretrained_weights`` is a local timm/torchvision state dict for the encoder."""
    return MAResUNet(num_classes, in_channels, backbone, pretrained_weights)
