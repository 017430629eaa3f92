"""FLANet: fully attentional network (Song et al., AAAI 2022)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from rsseg.models.blocks import ConvBNReLU
from rsseg.models.context_blocks import ContextHeadModel, FCNHead, FullyAttentionalBlock, classifier
from rsseg.models.encoders import dilated_backbone
from rsseg.models.registry import register_model

DEFAULT_BACKBONE = "resnet50"


class FLANetHead(nn.Module):
    """Stage 4 → ConvBNReLU 3×3 → C → ConvBNReLU 3×3 → FLA block (with its 3×3 ConvBNReLU).

    The output head is ConvBNReLU 3×3 on ``concat[FLA output, stage 3]`` → C, Dropout 0.1,
    1×1 → K; the auxiliary output is an FCN head on stage 3.
    """

    def __init__(self, stage_channels: Sequence[int], num_classes: int, channels: int = 512):
        super().__init__()
        self.reduce = nn.Sequential(ConvBNReLU(stage_channels[3], channels, 3), ConvBNReLU(channels, channels, 3))
        self.attention = FullyAttentionalBlock(channels)
        self.classify = nn.Sequential(ConvBNReLU(channels + stage_channels[2], channels, 3),
                                      *classifier(channels, num_classes))
        self.aux = FCNHead(stage_channels[2], num_classes)

    def forward(self, features: Sequence[torch.Tensor], with_aux: bool) -> tuple[torch.Tensor, ...]:
        context = self.attention(self.reduce(features[3]))
        main = self.classify(torch.cat([context, features[2]], 1))
        return (main, self.aux(features[2])) if with_aux else (main,)


class FLANet(ContextHeadModel):
    """FLANet on a dilated timm ResNet (output stride 8); auxiliary FCN head on stage 3, weight 0.4."""

    def __init__(self, num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
                 channels: int = 512):
        encoder = dilated_backbone(backbone, in_channels)
        super().__init__(encoder, FLANetHead(encoder.channels, num_classes, channels), aux_weights=(0.4,))


@register_model("flanet", paper="FLANet (Song et al., 2022)")
def build(num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE, channels: int = 512) -> FLANet:
    """FLANet; ``channels``: head width."""
    return FLANet(num_classes, in_channels, backbone, channels)
