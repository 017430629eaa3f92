"""Backbones through timm ``features_only``; their pretrained weights: :mod:`rsseg.models.pretrained`."""

from __future__ import annotations

from typing import Sequence

import timm
import torch
from torch import nn

from rsseg.errors import RssegError

DILATED_REDUCTIONS = [4, 8, 8, 8]


class TimmEncoder(nn.Module):
    """A timm backbone returning the feature maps of ``out_indices`` (stage 1..4 by default).

    ``output_stride`` 8 or 16 gives a dilated backbone (for the context heads).
    Weights start random; :func:`rsseg.models.create_model` loads pretrained ones into ``body``.
    """

    def __init__(self, name: str, in_channels: int = 3, output_stride: int = 32,
                 out_indices: Sequence[int] = (1, 2, 3, 4)):
        super().__init__()
        kwargs = {"output_stride": output_stride} if output_stride != 32 else {}
        try:
            self.body = timm.create_model(name, pretrained=False, features_only=True, in_chans=in_channels,
                                          out_indices=tuple(out_indices), **kwargs)
        except RuntimeError as err:  # timm: unknown model name
            raise RssegError(f"backbone {name!r}: {err}") from None
        self.channels: list[int] = self.body.feature_info.channels()
        self.reductions: list[int] = self.body.feature_info.reduction()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


def strided_encoder(backbone: str, in_channels: int, strides: Sequence[int]) -> TimmEncoder:
    """A :class:`TimmEncoder` returning the feature maps at ``strides`` (e.g. 4, 8, 16, 32).

    The stage indices are read from the backbone's ``feature_info`` on the meta device, so
    backbones whose first stage is at stride 2 (ResNet, EfficientNet) or 4 (ConvNeXt) both work.
    """
    try:
        with torch.device("meta"):
            info = timm.create_model(backbone, pretrained=False, features_only=True).feature_info
    except RuntimeError as err:  # timm: unknown model name
        raise RssegError(f"backbone {backbone!r}: {err}") from None
    by_stride = {r: i for i, r in zip(info.out_indices, info.reduction())}
    missing = [s for s in strides if s not in by_stride]
    if missing:
        raise RssegError(f"backbone {backbone!r} has no feature map at stride {missing}; "
                         f"it has {sorted(by_stride)}")
    return TimmEncoder(backbone, in_channels, out_indices=[by_stride[s] for s in strides])


def dilated_backbone(name: str, in_channels: int = 3) -> TimmEncoder:
    """A timm ResNet with dilated stages 3 and 4 (output stride 8), returning stages 1..4."""
    encoder = TimmEncoder(name, in_channels, output_stride=8)
    if encoder.reductions != DILATED_REDUCTIONS:
        raise RssegError(f"backbone {name!r}: expected a ResNet with stage strides {DILATED_REDUCTIONS} "
                         f"at output stride 8, got {encoder.reductions}")
    return encoder
