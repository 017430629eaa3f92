"""DANet: dual attention network (Fu et al., CVPR 2019)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from rsseg.models.attention import SoftmaxAttention
from rsseg.models.blocks import ChannelAttention, ConvBNReLU
from rsseg.models.context_blocks import ContextHeadModel, classifier
from rsseg.models.encoders import dilated_backbone
from rsseg.models.registry import register_model

DEFAULT_BACKBONE = "resnet50"


class DANetHead(nn.Module):
    """Position (PAM) and channel (CAM) attention branches on stage 4, summed.

    Each branch: ConvBNReLU 3×3 → C, attention, ConvBNReLU 3×3. PAM is a softmax over all
    ``N = H·W`` positions with ``q, k`` of C/8 channels; CAM is :class:`ChannelAttention`.
    Outputs: the classified sum, then (auxiliary) the classified PAM and CAM branches.
    """

    def __init__(self, stage_channels: Sequence[int], num_classes: int, channels: int = 512):
        super().__init__()
        c4 = stage_channels[3]
        self.position = nn.Sequential(ConvBNReLU(c4, channels, 3), SoftmaxAttention(channels, scale=8),
                                      ConvBNReLU(channels, channels, 3))
        self.channel = nn.Sequential(ConvBNReLU(c4, channels, 3), ChannelAttention(),
                                     ConvBNReLU(channels, channels, 3))
        self.classify_sum = classifier(channels, num_classes)
        self.classify_position = classifier(channels, num_classes)
        self.classify_channel = classifier(channels, num_classes)

    def forward(self, features: Sequence[torch.Tensor], with_aux: bool) -> tuple[torch.Tensor, ...]:
        p, c = self.position(features[3]), self.channel(features[3])
        main = self.classify_sum(p + c)
        return (main, self.classify_position(p), self.classify_channel(c)) if with_aux else (main,)


class DANet(ContextHeadModel):
    """DANet on a dilated timm ResNet (output stride 8).

    Training returns ``(sum, pam, cam)`` logits, weighted 1 : 1 : 1 as in the authors' loss.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
                 channels: int = 512):
        encoder = dilated_backbone(backbone, in_channels)
        super().__init__(encoder, DANetHead(encoder.channels, num_classes, channels), aux_weights=(1.0, 1.0))


@register_model("danet", paper="DANet (Fu et al., 2019)")
def build(num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE, channels: int = 512) -> DANet:
    """DANet; ``channels``: head width."""
    return DANet(num_classes, in_channels, backbone, channels)
