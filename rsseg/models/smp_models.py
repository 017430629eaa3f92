"""segmentation-models-pytorch architectures as baselines.

A backbone smp knows by name (``resnet34``) is smp's own encoder; any other timm name
(``efficientnet_lite0``) goes through smp's timm-universal encoder (``tu-NAME``). Either way the
encoder takes timm ImageNet weights by parameter name (see :func:`rsseg.models.create_model`).
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from torch import nn

from rsseg.errors import RssegError
from rsseg.models.base import SegmentationModel
from rsseg.models.registry import register_model


class SmpModel(SegmentationModel):
    """Wraps an smp model so it follows the rsseg model interface."""

    def __init__(self, arch: str, num_classes: int, in_channels: int, backbone: str):
        super().__init__()
        self.timm_universal = backbone not in smp.encoders.get_encoder_names()
        encoder = f"tu-{backbone}" if self.timm_universal else backbone
        try:
            self.net = smp.create_model(arch, encoder_name=encoder, encoder_weights=None,
                                        in_channels=in_channels, classes=num_classes)
        except (KeyError, RuntimeError) as err:  # unknown encoder name
            raise RssegError(f"backbone {backbone!r}: {str(err).strip()[:200]}") from None

    def backbone(self) -> nn.Module:
        return self.net.encoder.model if self.timm_universal else self.net.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _register(name: str, arch: str, paper: str, default_backbone: str) -> None:
    @register_model(name, paper=paper)
    def build(num_classes: int, in_channels: int = 3, backbone: str = default_backbone) -> SmpModel:
        return SmpModel(arch, num_classes, in_channels, backbone)


_register("unet", "unet", "U-Net (Ronneberger et al., 2015), smp", "resnet34")
_register("fpn", "fpn", "FPN (Kirillov et al., 2019), smp", "resnet34")
_register("deeplabv3plus", "deeplabv3plus", "DeepLabV3+ (Chen et al., 2018), smp", "resnet34")
