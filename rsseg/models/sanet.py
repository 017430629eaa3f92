"""SANet: squeeze-and-attention network (Zhong et al., CVPR 2020)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rsseg.models.base import Criterion, resize_logits
from rsseg.models.context_blocks import ContextHeadModel, FCNHead, SqueezeAttention
from rsseg.models.encoders import dilated_backbone
from rsseg.models.registry import register_model

DEFAULT_BACKBONE = "resnet50"


def class_presence(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, K) float: 1 where class ``k`` occurs in the sample's label (ignored pixels excluded)."""
    labels = torch.where((target >= 0) & (target < num_classes), target, num_classes)
    return F.one_hot(labels.flatten(1), num_classes + 1)[..., :num_classes].amax(1).float()


class SANetHead(nn.Module):
    """SA modules on the four stages, their fused class masks, the dense and categorical heads."""

    def __init__(self, stage_channels: Sequence[int], num_classes: int):
        super().__init__()
        self.sa = nn.ModuleList(SqueezeAttention(c, c // 4) for c in stage_channels)
        self.masks = nn.ModuleList(nn.Conv2d(c // 4, num_classes, 1) for c in stage_channels)
        self.fuse = nn.Conv2d(len(stage_channels) * num_classes, num_classes, 1)
        self.categories = nn.Linear(stage_channels[3] // 4, num_classes)
        self.dense = FCNHead(stage_channels[3], num_classes)

    def forward(self, features: Sequence[torch.Tensor], with_aux: bool) -> tuple[torch.Tensor, ...]:
        sa = [module(f) for module, f in zip(self.sa, features)]
        size = sa[0].shape[-2:]
        masks = [F.interpolate(cls(s), size=size, mode="bilinear", align_corners=False)
                 for cls, s in zip(self.masks, sa)]
        mask = self.fuse(torch.cat(masks, 1))
        if not with_aux:
            return (mask,)
        return mask, self.dense(features[3]), self.categories(sa[3].mean((2, 3)))


class SANet(ContextHeadModel):
    """SANet on a dilated timm ResNet (output stride 8); there is no reference code, this reads the paper.

    Outputs, in training order:

    - ``mask`` (main, the eval output): an SA module on each of the four stages (channels
      reduced to 1/4, pool ratio 8, 2 groups) is classified by a 1×1 conv into ``K`` class
      masks; the four masks, at the stage-1 resolution (stride 4), are concatenated and fused
      by a 1×1 conv. Supervised by ``L_mask`` (the criterion against the label).
    - ``dense``: an FCN head on stage 4 (the paper's auxiliary dense head, "from the fourth
      stage"). Supervised by ``L_den`` (the criterion against the label), weight β = 0.8.
    - ``categories`` (B, K): a linear layer on the global average of SA head 4's features.
      Supervised by ``L_cat``, binary cross-entropy against the classes present in the label
      (ignored pixels excluded), weight α = 0.2.

    ``L = L_mask + 0.2·L_cat + 0.8·L_den`` (:meth:`loss`). The paper's remark that the final
    prediction is ``Ŷ_den + Ŷ_SA4`` is read as deep supervision: only the fused mask is predicted.
    In training with batch size 1 the input must be larger than 64 pixels on one side (the
    attention branch's BatchNorm needs more than one value per channel at stride 64).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
                 pretrained_weights: str | None = None):
        encoder = dilated_backbone(backbone, in_channels, pretrained_weights)
        # aux_weights: β for the dense head, α for the categorical head
        super().__init__(encoder, SANetHead(encoder.channels, num_classes), aux_weights=(0.8, 0.2))
        self.num_classes = num_classes

    def loss(self, outputs: torch.Tensor | tuple[torch.Tensor, ...], target: torch.Tensor,
             criterion: Criterion) -> tuple[torch.Tensor, dict[str, float]]:
        """``L_mask + α·L_cat + β·L_den`` on ``(mask, dense, categories)``; parts for logging."""
        if isinstance(outputs, torch.Tensor):
            return super().loss(outputs, target, criterion)
        mask, dense, categories = outputs
        beta, alpha = self.aux_weights
        parts = {
            "mask": criterion(resize_logits(mask, target), target),
            "den": criterion(resize_logits(dense, target), target),
            "cat": F.binary_cross_entropy_with_logits(categories, class_presence(target, self.num_classes)),
        }
        total = parts["mask"] + alpha * parts["cat"] + beta * parts["den"]
        return total, {name: float(value.detach()) for name, value in parts.items()}


@register_model("sanet", paper="SANet (Zhong et al., 2020)")
def build(num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
          pretrained_weights: str | None = None) -> SANet:
    """SANet; ``pretrained_weights`` is a local timm/torchvision state dict for the backbone."""
    return SANet(num_classes, in_channels, backbone, pretrained_weights)
