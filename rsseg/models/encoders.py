"""Backbones through timm ``features_only``; weights only from a local file, never downloaded."""

from __future__ import annotations

import os
from typing import Sequence

import timm
import torch
from timm.models import adapt_input_conv
from torch import nn

from rsseg.errors import RssegError

DILATED_REDUCTIONS = [4, 8, 8, 8]


class TimmEncoder(nn.Module):
    """A timm backbone returning the feature maps of ``out_indices`` (stage 1..4 by default).

    ``output_stride`` 8 or 16 gives a dilated backbone (for the context heads).
    ``pretrained_weights`` is a local timm or torchvision state dict (``.pth``/``.pt``/
    ``.safetensors``); the first convolution is adapted when ``in_channels != 3``.
    """

    def __init__(self, name: str, in_channels: int = 3, output_stride: int = 32,
                 out_indices: Sequence[int] = (1, 2, 3, 4), pretrained_weights: str | None = None):
        super().__init__()
        kwargs = {"output_stride": output_stride} if output_stride != 32 else {}
        try:
            self.body = timm.create_model(name, pretrained=False, features_only=True, in_chans=in_channels,
                                          out_indices=tuple(out_indices), **kwargs)
        except RuntimeError as err:  # timm: unknown model name
            raise RssegError(f"backbone {name!r}: {err}") from None
        self.channels: list[int] = self.body.feature_info.channels()
        self.reductions: list[int] = self.body.feature_info.reduction()
        if pretrained_weights:
            load_encoder_weights(self.body, pretrained_weights, in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise RssegError(f"{path}: pretrained weights file not found")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any decoding failure is the file's fault
        raise RssegError(f"{path}: not a readable weights file ({type(err).__name__})") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise RssegError(f"{path}: does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_encoder_weights(body: nn.Module, path: str, in_channels: int) -> None:
    """Load a classification checkpoint into a features-only backbone (heads dropped)."""
    state = _read_state_dict(path)
    own = body.state_dict()
    matched = {k: v for k, v in state.items() if k in own}
    if not matched:
        raise RssegError(f"{path}: no parameter name matches backbone (is it for another architecture?)")
    for key, value in matched.items():
        if value.ndim == 4 and value.shape[1] != own[key].shape[1] and value.shape[1] == 3:
            matched[key] = adapt_input_conv(in_channels, value)
        if matched[key].shape != own[key].shape:
            raise RssegError(f"{path}: {key} has shape {tuple(value.shape)}, backbone expects {tuple(own[key].shape)}")
    missing = [k for k in own if k not in matched and not k.endswith("num_batches_tracked")]
    if missing:
        raise RssegError(f"{path}: {len(missing)} backbone parameters missing, e.g. {missing[0]}")
    body.load_state_dict(matched, strict=False)


def strided_encoder(backbone: str, in_channels: int, strides: Sequence[int],
                    pretrained_weights: str | None = None) -> TimmEncoder:
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
    return TimmEncoder(backbone, in_channels, out_indices=[by_stride[s] for s in strides],
                       pretrained_weights=pretrained_weights)


def dilated_backbone(name: str, in_channels: int = 3, pretrained_weights: str | None = None) -> TimmEncoder:
    """A timm ResNet with dilated stages 3 and 4 (output stride 8), returning stages 1..4."""
    encoder = TimmEncoder(name, in_channels, output_stride=8, pretrained_weights=pretrained_weights)
    if encoder.reductions != DILATED_REDUCTIONS:
        raise RssegError(f"backbone {name!r}: expected a ResNet with stage strides {DILATED_REDUCTIONS} "
                         f"at output stride 8, got {encoder.reductions}")
    return encoder
