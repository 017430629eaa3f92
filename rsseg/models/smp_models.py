"""segmentation-models-pytorch architectures as baselines (never downloading encoder weights)."""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch

from rsseg.models.base import SegmentationModel
from rsseg.models.registry import register_model


class SmpModel(SegmentationModel):
    """Wraps an smp model so it follows the rsseg model interface."""

    def __init__(self, arch: str, num_classes: int, in_channels: int, backbone: str):
        super().__init__()
        self.net = smp.create_model(arch, encoder_name=backbone, encoder_weights=None,
                                    in_channels=in_channels, classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _register(name: str, arch: str, paper: str, default_backbone: str) -> None:
    @register_model(name, paper=paper)
    def build(num_classes: int, in_channels: int = 3, backbone: str = default_backbone) -> SmpModel:
        return SmpModel(arch, num_classes, in_channels, backbone)


_register("unet", "unet", "U-Net (Ronneberger et al., 2015), smp", "resnet34")
_register("fpn", "fpn", "FPN (Kirillov et al., 2019), smp", "resnet34")
_register("deeplabv3plus", "deeplabv3plus", "DeepLabV3+ (Chen et al., 2018), smp", "resnet34")
