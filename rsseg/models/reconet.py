"""RecoNet: tensor low-rank reconstruction for context (Chen et al., ECCV 2020)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from rsseg.models.blocks import ConvBNReLU
from rsseg.models.context_blocks import ContextHeadModel, FCNHead, LowRankReconstruction, classifier
from rsseg.models.encoders import dilated_backbone
from rsseg.models.registry import register_model

DEFAULT_BACKBONE = "resnet50"


class GlobalPooling(nn.Module):
    """RecoNet GPM: global average pool, 1×1 conv + ReLU, broadcast to the input's size.

    No BatchNorm on the 1×1 map, so training works with batch size 1.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean((2, 3), keepdim=True)).expand(-1, -1, *x.shape[-2:])


class RecoNetHead(nn.Module):
    """``X = ConvBNReLU3×3(stage 4 → C)``; classifier on ``concat[X, ReLU(X ⊙ A), GPM(X)]``.

    ``A`` is the rank-``r`` attention of :class:`LowRankReconstruction` (TGM + TRM); the
    classifier is 1×1 ConvBNReLU → C, Dropout 0.1, 1×1 → K. The auxiliary output is an FCN
    head on stage 3.
    """

    def __init__(self, stage_channels: Sequence[int], num_classes: int, channels: int = 512,
                 rank: int = 64, profile_size: int = 64):
        super().__init__()
        self.reduce = ConvBNReLU(stage_channels[3], channels, 3)
        self.context = LowRankReconstruction(channels, rank, profile_size)
        self.pool = GlobalPooling(channels, channels)
        self.classify = nn.Sequential(ConvBNReLU(3 * channels, channels, 1), *classifier(channels, num_classes))
        self.aux = FCNHead(stage_channels[2], num_classes)

    def forward(self, features: Sequence[torch.Tensor], with_aux: bool) -> tuple[torch.Tensor, ...]:
        x = self.reduce(features[3])
        main = self.classify(torch.cat([x, torch.relu(self.context(x)), self.pool(x)], 1))
        return (main, self.aux(features[2])) if with_aux else (main,)


class RecoNet(ContextHeadModel):
    """RecoNet on a dilated timm ResNet (output stride 8); auxiliary FCN head on stage 3, weight 0.2.

    The released code has H/W generators of size 64 and so runs only on 64×64 features; here
    their profiles are resampled to ``profile_size`` and back (see :class:`LowRankReconstruction`).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
                 channels: int = 512, rank: int = 64,
                 profile_size: int = 64):
        encoder = dilated_backbone(backbone, in_channels)
        head = RecoNetHead(encoder.channels, num_classes, channels, rank, profile_size)
        super().__init__(encoder, head, aux_weights=(0.2,))


@register_model("reconet", paper="RecoNet (Chen et al., 2020)")
def build(num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE, channels: int = 512,
          rank: int = 64, profile_size: int = 64) -> RecoNet:
    """RecoNet; ``channels``: head width; ``rank``, ``profile_size``: its tensor low-rank reconstruction."""
    return RecoNet(num_classes, in_channels, backbone, channels, rank, profile_size)
