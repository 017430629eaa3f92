"""UNetFormer: a UNet-like transformer (Wang, Li et al., ISPRS J. Photogramm. 2022).

A ResNet-18 encoder and a decoder of global-local transformer blocks (GLTB) at strides 32, 16
and 8, joined to the encoder's skips by weighted-sum fusion (WF), then a feature refinement head
(FRH) on the stride-4 skip. In training, an auxiliary head on the sum of the three blocks'
outputs is returned as well. Layer sizes follow the authors' code (GeoSeg, ``UNetFormer.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsseg.models.base import SegmentationModel, check_input_size
from rsseg.models.blocks import ConvBN
from rsseg.models.encoders import strided_encoder
from rsseg.models.registry import register_model

DEFAULT_BACKBONE = "resnet18"


def _conv_bn_relu6(in_ch: int, out_ch: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(ConvBN(in_ch, out_ch, kernel_size), nn.ReLU6())


class SeparableConvBN(nn.Sequential):
    """Depthwise ``k×k`` conv, BatchNorm, pointwise 1×1 conv (no biases)."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__(nn.Conv2d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2,
                                   groups=channels, bias=False),
                         nn.BatchNorm2d(channels), nn.Conv2d(channels, channels, 1, bias=False))


def _pad_end(x: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Pad the bottom and right edges by reflection (by replication where a side is too short)."""
    if bottom == 0 and right == 0:
        return x
    mode = "reflect" if bottom < x.shape[-2] and right < x.shape[-1] else "replicate"
    return F.pad(x, (0, right, 0, bottom), mode=mode)


def _relative_position_index(window: int) -> torch.Tensor:
    """Index into the ``(2w-1)²`` bias table for every pair of positions in a ``w×w`` window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class GlobalLocalAttention(nn.Module):
    """Local branch (3×3 and 1×1 ConvBN) plus window self-attention with relative position bias,
    aggregated across windows by average pooling along H and along W (cross-shaped context),
    then a depthwise-separable ``window×window`` projection."""

    def __init__(self, dim: int, num_heads: int = 8, window: int = 8):
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.local3 = ConvBN(dim, dim, 3)
        self.local1 = ConvBN(dim, dim, 1)
        self.proj = SeparableConvBN(dim, window)
        pad = window // 2 - 1
        self.pool_h = nn.AvgPool2d((window, 1), stride=1, padding=(pad, 0))
        self.pool_w = nn.AvgPool2d((1, window), stride=1, padding=(0, pad))
        self.relative_position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias, std=0.02)
        self.register_buffer("relative_position_index", _relative_position_index(window), persistent=False)

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ws, heads = self.window, self.num_heads
        x = x.reshape(b, heads, c // heads, h // ws, ws, w // ws, ws)
        return x.permute(0, 3, 5, 1, 4, 6, 2).reshape(-1, heads, ws * ws, c // heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ws = self.window
        local = self.local1(x) + self.local3(x)
        padded = _pad_end(x, (ws - h % ws) % ws, (ws - w % ws) % ws)
        hp, wp = padded.shape[-2:]
        q, k, v = (self._windows(t) for t in self.qkv(padded).chunk(3, dim=1))
        bias = self.relative_position_bias[self.relative_position_index.reshape(-1)]
        bias = bias.reshape(ws * ws, ws * ws, -1).permute(2, 0, 1)
        attn = ((q @ k.transpose(-2, -1)) * self.scale + bias).softmax(dim=-1) @ v
        heads, d = self.num_heads, c // self.num_heads
        attn = attn.reshape(b, hp // ws, wp // ws, heads, ws, ws, d).permute(0, 3, 6, 1, 4, 2, 5)
        attn = attn.reshape(b, c, hp, wp)[:, :, :h, :w]
        out = self.pool_h(_pad_end(attn, 1, 0)) + self.pool_w(_pad_end(attn, 0, 1)) + local
        return self.proj(_pad_end(out, 1, 1))[:, :, :h, :w]


class Mlp(nn.Sequential):
    """1×1 conv → ReLU6 → 1×1 conv (with biases)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Conv2d(dim, hidden, 1), nn.ReLU6(), nn.Conv2d(hidden, dim, 1))


class GlobalLocalBlock(nn.Module):
    """GLTB: ``x + GLA(BN(x))``, then ``x + MLP(BN(x))`` (MLP ratio 4)."""

    def __init__(self, dim: int, num_heads: int = 8, window: int = 8, mlp_ratio: int = 4):
        super().__init__()
        self.norm1, self.norm2 = nn.BatchNorm2d(dim), nn.BatchNorm2d(dim)
        self.attn = GlobalLocalAttention(dim, num_heads, window)
        self.mlp = Mlp(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class WeightedFusion(nn.Module):
    """WF: upsample ×2, ``w₀·conv1×1(skip) + w₁·x`` with ReLU-normalised learned weights, ConvBNReLU6."""

    def __init__(self, skip_ch: int, channels: int, eps: float = 1e-8):
        super().__init__()
        self.skip = nn.Conv2d(skip_ch, channels, 1, bias=False)
        self.weights = nn.Parameter(torch.ones(2))
        self.eps = eps
        self.post = _conv_bn_relu6(channels, channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        weights = F.relu(self.weights)
        weights = weights / (weights.sum() + self.eps)
        return self.post(weights[0] * self.skip(skip) + weights[1] * x)


class FeatureRefinementHead(WeightedFusion):
    """FRH: weighted fusion, then a spatial path (depthwise 3×3, sigmoid) and a channel path
    (pool, 1×1 squeeze ÷16, ReLU6, 1×1, sigmoid) summed, separable 3×3 projection + 1×1 shortcut."""

    def __init__(self, skip_ch: int, channels: int):
        super().__init__(skip_ch, channels)
        self.spatial = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels), nn.Sigmoid())
        self.channel = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // 16, 1, bias=False),
                                     nn.ReLU6(), nn.Conv2d(channels // 16, channels, 1, bias=False), nn.Sigmoid())
        self.shortcut = ConvBN(channels, channels, 1)
        self.proj = SeparableConvBN(channels, 3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = super().forward(x, skip)
        refined = self.spatial(x) * x + self.channel(x) * x
        return F.relu6(self.proj(refined) + self.shortcut(x))


def _head(channels: int, num_classes: int, dropout: nn.Module) -> nn.Sequential:
    return nn.Sequential(_conv_bn_relu6(channels, channels), dropout, nn.Conv2d(channels, num_classes, 1, bias=False))


class UNetFormer(SegmentationModel):
    """UNetFormer on a timm backbone (ResNet-18 in the paper); H and W must be multiples of 32.

    Training mode returns ``(main, aux)``; the auxiliary loss is weighted by ``aux_weight``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE,
                 decode_channels: int = 64, dropout: float = 0.1, window: int = 8, num_heads: int = 8,
                 aux_weight: float = 0.4):
        super().__init__()
        self.aux_weights = (float(aux_weight),)
        self.encoder = strided_encoder(backbone, in_channels, (4, 8, 16, 32))
        c4, c8, c16, c32 = self.encoder.channels
        ch = decode_channels
        self.reduce = ConvBN(c32, ch, 1)
        self.block32 = GlobalLocalBlock(ch, num_heads, window)
        self.fuse16 = WeightedFusion(c16, ch)
        self.block16 = GlobalLocalBlock(ch, num_heads, window)
        self.fuse8 = WeightedFusion(c8, ch)
        self.block8 = GlobalLocalBlock(ch, num_heads, window)
        self.refine = FeatureRefinementHead(c4, ch)
        self.head = _head(ch, num_classes, nn.Dropout2d(dropout))
        self.aux_head = _head(ch, num_classes, nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        check_input_size(x)
        size = x.shape[-2:]
        f4, f8, f16, f32 = self.encoder(x)
        d32 = self.block32(self.reduce(f32))
        d16 = self.block16(self.fuse16(d32, f16))
        d8 = self.block8(self.fuse8(d16, f8))
        out = F.interpolate(self.head(self.refine(d8, f4)), size=size, mode="bilinear", align_corners=False)
        if not self.training:
            return out
        context = (F.interpolate(d32, scale_factor=4.0, mode="bilinear", align_corners=True)
                   + F.interpolate(d16, scale_factor=2.0, mode="bilinear", align_corners=True) + d8)
        aux = F.interpolate(self.aux_head(context), size=size, mode="bilinear", align_corners=False)
        return out, aux


@register_model("unetformer", paper="UNetFormer (Wang et al., 2022)")
def build(num_classes: int, in_channels: int = 3, backbone: str = DEFAULT_BACKBONE, decode_channels: int = 64,
          dropout: float = 0.1, window: int = 8, aux_weight: float = 0.4) -> UNetFormer:
    """UNetFormer; ``decode_channels``: decoder width; ``window``: attention window; ``aux_weight``: aux loss."""
    return UNetFormer(num_classes, in_channels, backbone, decode_channels, dropout, window, aux_weight=aux_weight)
