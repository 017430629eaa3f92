"""Layers rewritten for export: the same numbers, as operators ONNX Runtime runs fast.

:func:`for_export` returns a copy of a model (the model itself is left as it is) in which

- timm's ``Conv2dSame`` (TensorFlow's "same" padding, ``tf_`` EfficientNets) pads by fixed amounts:
  exported as it is, the padding is shape arithmetic at run time and a ``Pad`` that cannot be
  folded into the convolution;
- for INT8 exports, a transposed convolution whose output is ``stride`` × its input is a convolution
  giving its ``stride²`` output phases side by side, then a pixel shuffle (a batch norm right after it
  folded in). ONNX Runtime's CPU provider has no int8 transposed convolution: in float it took a
  third of MANet's INT8 call, and the phases' convolution, though it does 1.8–2.3× the multiply-adds,
  runs in int8 (MANet's INT8 call 16 % faster). In FP32 the rewrite gains nothing and is not made.
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


class _PhaseConv(nn.Module):
    """A stride-``s`` transposed convolution: a stride-1 convolution to its ``s²`` output phases, a pixel shuffle."""

    def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int], stride: int):
        super().__init__()
        self.conv, self.pads, self.stride = conv, pads, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(F.pad(x, self.pads)), self.stride)


def _phase_offsets(kernel: int, stride: int, padding: int) -> tuple[int, int] | None:
    """The first and last input offsets that the output phases of a transposed convolution read
    (output ``s·m + r`` sums ``x[m + d]·w[k]`` over ``k = r + p - s·d`` inside the kernel), or None."""
    offsets = [(r + padding - k) // stride for r in range(stride) for k in range(kernel)
               if (r + padding - k) % stride == 0]
    return (min(offsets), max(offsets)) if offsets and min(offsets) <= 0 <= max(offsets) else None


def phase_conv(t: nn.ConvTranspose2d, norm: nn.BatchNorm2d | None = None) -> _PhaseConv | None:
    """``t`` (then ``norm``, folded in) as a convolution and a pixel shuffle computing the same, where its
    output is ``stride`` × its input on both axes; None otherwise."""
    (s, sw), (kh, kw), (ph, pw), (oh, ow) = t.stride, t.kernel_size, t.padding, t.output_padding
    offsets = _phase_offsets(kh, s, ph), _phase_offsets(kw, sw, pw)
    if s != sw or s < 2 or t.groups != 1 or t.dilation != (1, 1) or t.padding_mode != "zeros" \
            or kh - 2 * ph + oh != s or kw - 2 * pw + ow != s or None in offsets:
        return None
    (d0h, d1h), (d0w, d1w) = offsets  # type: ignore[misc]
    th, tw, c_out = d1h - d0h + 1, d1w - d0w + 1, t.out_channels
    weight = torch.zeros(c_out, s, s, t.in_channels, th, tw)
    for ry in range(s):
        for rx in range(s):
            for ty in range(th):
                for tx in range(tw):
                    ky, kx = ry + ph - s * (ty + d0h), rx + pw - s * (tx + d0w)
                    if 0 <= ky < kh and 0 <= kx < kw:
                        weight[:, ry, rx, :, ty, tx] = t.weight.detach()[:, :, ky, kx].T
    bias = t.bias.detach() if t.bias is not None else torch.zeros(c_out)
    if norm is not None:
        scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
        weight, bias = weight * scale.view(-1, 1, 1, 1, 1, 1), (bias - norm.running_mean) * scale + norm.bias.detach()
    conv = nn.Conv2d(t.in_channels, c_out * s * s, (th, tw))
    with torch.no_grad():
        conv.weight.copy_(weight.reshape(c_out * s * s, t.in_channels, th, tw))
        conv.bias.copy_(bias.repeat_interleave(s * s))
    return _PhaseConv(conv, (-d0w, d1w, -d0h, d1h), s)


def _phase_convs(model: nn.Module) -> None:
    """Rewrite each transposed convolution :func:`phase_conv` can, folding a batch norm that follows it
    in the same ``nn.Sequential`` (left there as an identity)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.ConvTranspose2d):
            parent_name, _, leaf = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            norm = None
            if isinstance(parent, nn.Sequential) and leaf.isdigit() and int(leaf) + 1 < len(parent):
                following = parent[int(leaf) + 1]
                norm = following if isinstance(following, nn.BatchNorm2d) and following.track_running_stats else None
            rewritten = phase_conv(module, norm)
            if rewritten is not None:
                setattr(parent, leaf, rewritten)
                if norm is not None:
                    parent[int(leaf) + 1] = nn.Identity()


def for_export(model: nn.Module, channels: int, multiple: int, int8: bool = False) -> nn.Module:
    """A copy of ``model`` with fixed "same" paddings, valid for inputs whose sides are multiples of
    ``multiple`` (``channels`` input bands), and with ``int8`` its transposed convolutions as phase
    convolutions; ``model`` itself if neither applies."""
    from timm.layers import Conv2dSame

    rewritten = (Conv2dSame, nn.ConvTranspose2d) if int8 else (Conv2dSame,)
    if not any(isinstance(m, rewritten) for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    _same_pads(model, channels, multiple)
    if int8:
        _phase_convs(model)
    return model
