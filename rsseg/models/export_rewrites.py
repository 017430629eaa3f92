"""Layers rewritten for export: the same numbers, as operators ONNX Runtime runs fast.

:func:`for_export` returns a copy of a model (the model itself is left as it is) in which timm's
``Conv2dSame`` (TensorFlow's "same" padding, ``tf_`` EfficientNets) pads by fixed amounts:
exported as it is, the padding is shape arithmetic at run time and a ``Pad`` that cannot be
folded into the convolution.

(A transposed convolution rewritten as a convolution to its ``stride²`` output phases and a pixel
shuffle was tried for MANet's decoder: ONNX Runtime's ``ConvTranspose`` takes a fifth of its call,
but the phases' convolution does 1.8–2.3× its multiply-adds, and the call was no faster.)
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class _StaticSamePad(nn.Module):
    """A timm ``Conv2dSame`` with its padding fixed: the same numbers on inputs whose sides give these pads."""

    def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int]):
        super().__init__()
        self.conv, self.pads = conv, pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.Conv2d.forward(self.conv, F.pad(x, self.pads))


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _same_pads(model: nn.Module, channels: int, multiple: int) -> None:
    """Fix the pads of every ``Conv2dSame`` where inputs of two sizes (multiples of ``multiple``) agree."""
    from timm.layers import Conv2dSame, get_same_padding

    convs = {name: m for name, m in model.named_modules() if isinstance(m, Conv2dSame)}
    if not convs:
        return

    def pads_at(side: int) -> dict[str, tuple[int, int, int, int]]:
        pads = {}

        def record(name: str):  # noqa: ANN202 - a forward pre-hook
            def hook(conv: nn.Conv2d, args: tuple[torch.Tensor]) -> None:
                (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
                ph = get_same_padding(args[0].shape[-2], kh, sh, dh)
                pw = get_same_padding(args[0].shape[-1], kw, sw, dw)
                pads[name] = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
            return hook

        hooks = [conv.register_forward_pre_hook(record(name)) for name, conv in convs.items()]
        try:
            with torch.inference_mode():
                model(torch.zeros(1, channels, side, side + multiple))
        finally:
            for hook in hooks:
                hook.remove()
        return pads

    first, second = pads_at(2 * multiple), pads_at(3 * multiple)
    for name, pads in first.items():
        if second.get(name) == pads:
            _replace(model, name, _StaticSamePad(convs[name], pads))


def for_export(model: nn.Module, channels: int, multiple: int) -> nn.Module:
    """A copy of ``model`` whose "same" paddings are fixed, valid for inputs whose sides are multiples
    of ``multiple`` (``channels`` input bands); ``model`` itself if it has none."""
    from timm.layers import Conv2dSame

    if not any(isinstance(m, Conv2dSame) for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    _same_pads(model, channels, multiple)
    return model
