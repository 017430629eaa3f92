"""Context modules of the dilated-FCN heads (RecoNet, FLANet, SANet) and what the heads share.

- :class:`LowRankReconstruction`: RecoNet's tensor generation (TGM) and reconstruction (TRM).
- :class:`FullyAttentionalBlock`: FLANet's FLA block, batch-consistent.
- :class:`SqueezeAttention`: SANet's squeeze-and-attention module.
- :class:`FCNHead`, :class:`ContextHeadModel`: the auxiliary FCN head and the model wrapper
  the four heads share (their dilated ResNet is :func:`rsseg.models.encoders.dilated_backbone`).

DANet's position attention is :class:`rsseg.models.attention.SoftmaxAttention` and its channel
attention :class:`rsseg.models.blocks.ChannelAttention`. RecoNet's profile resampling and FLANet's
slice attention run in float32 whatever the autocast state (:func:`rsseg.models.precision.in_float32`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsseg.models.base import SegmentationModel, check_input_size
from rsseg.models.blocks import ConvBN, ConvBNReLU
from rsseg.models.encoders import TimmEncoder
from rsseg.models.precision import in_float32


def classifier(in_ch: int, num_classes: int, dropout: float = 0.1) -> nn.Sequential:
    """Dropout + 1×1 convolution to class logits."""
    return nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(in_ch, num_classes, 1))


class FCNHead(nn.Sequential):
    """FCN head (auxiliary supervision): 3×3 ConvBNReLU to ``in_ch/4``, dropout, 1×1 to K."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__(ConvBNReLU(in_ch, in_ch // 4, 3), *classifier(in_ch // 4, num_classes))


class ContextHeadModel(SegmentationModel):
    """Dilated backbone + a context head.

    ``head(features, with_aux)`` receives the four stage features and returns ``(main, *aux)``
    at feature resolution (auxiliary outputs only when ``with_aux``). The main logits are
    upsampled to the input size; auxiliary outputs stay as they are (the loss resizes maps).
    """

    def __init__(self, encoder: TimmEncoder, head: nn.Module, aux_weights: tuple[float, ...]):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.aux_weights = aux_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        check_input_size(x, 8)
        main, *aux = self.head(self.encoder(x), self.training)
        main = F.interpolate(main, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (main, *aux) if self.training else main


@in_float32
def _profile(values: torch.Tensor, size: int) -> torch.Tensor:
    """Resample ``(B, L)`` profiles to length ``size`` (average pooling down, linear up).

    Equal to ``adaptive_avg_pool1d`` (``L > size``) or linear ``interpolate`` (``L < size``),
    written as one ``size×L`` weight matrix built from tensor ops, so that it exports to ONNX
    with ``L`` and ``size`` dynamic (no Python branch on shapes is frozen by tracing). The
    positions are float32: float16 would round them (and overflow ``size·L``) from a few hundred.
    """
    src = torch.arange(values.shape[-1], device=values.device, dtype=values.dtype)
    dst = torch.arange(size, device=values.device, dtype=values.dtype)[:, None]
    n_in, n_out = src[-1] + 1, dst[-1, 0] + 1
    start, end = torch.floor(dst * n_in / n_out), torch.ceil((dst + 1) * n_in / n_out)
    pool = ((src >= start) & (src < end)).to(values.dtype) / (end - start)
    pos = ((dst + 0.5) * n_in / n_out - 0.5).clamp(min=0)
    left = torch.floor(pos).clamp(max=n_in - 1)
    frac = pos - left
    linear = (src == left) * (1 - frac) + (src == torch.clamp(left + 1, max=n_in - 1)) * frac
    return values @ torch.where(n_in > n_out, pool, linear).T


class LowRankReconstruction(nn.Module):
    """RecoNet TGM + TRM: ``Y = X ⊙ A`` with ``A = Σ_i λ_i v_c^i ⊗ v_h^i ⊗ v_w^i``.

    TGM generates ``r`` rank-1 factors: ``v_c = σ(conv1×1_{C→C}(GAP_{HW} X))``,
    ``v_h = σ(FC_H(mean_{C,W} X))``, ``v_w = σ(FC_W(mean_{C,H} X))`` (the ``r`` generators of
    each kind are one layer with ``r``× outputs). ``λ = softmax(θ)`` is learnable and sums to 1.

    Any feature size: the released code has FC layers of the feature size (64). Here the FC
    layers act on profiles of fixed length ``profile_size``; an H (or W) profile of another
    length is average-pooled (longer) or linearly interpolated (shorter) to that length before
    the FC, and the sigmoid output is resampled back to H (or W). At ``H = W = profile_size``
    this is exactly the paper's layer.
    """

    def __init__(self, channels: int, rank: int = 64, profile_size: int = 64):
        super().__init__()
        self.rank = rank
        self.profile_size = profile_size
        self.channel_gen = nn.Conv2d(channels, rank * channels, 1)
        self.height_gen = nn.Linear(profile_size, rank * profile_size)
        self.width_gen = nn.Linear(profile_size, rank * profile_size)
        self.rank_logits = nn.Parameter(torch.zeros(rank))

    @property
    def lambdas(self) -> torch.Tensor:
        """Normalised rank weights λ (sum to 1)."""
        return torch.softmax(self.rank_logits, dim=0)

    def _spatial(self, gen: nn.Linear, profile: torch.Tensor) -> torch.Tensor:
        b, length = profile.shape
        v = torch.sigmoid(gen(_profile(profile, self.profile_size)))
        return _profile(v.reshape(b * self.rank, self.profile_size), length).reshape(b, self.rank, length)

    def generate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """TGM: factors ``v_c (B,r,C)``, ``v_h (B,r,H)``, ``v_w (B,r,W)``."""
        b, c = x.shape[:2]
        v_c = torch.sigmoid(self.channel_gen(x.mean((2, 3), keepdim=True))).reshape(b, self.rank, c)
        v_h = self._spatial(self.height_gen, x.mean((1, 3)))
        v_w = self._spatial(self.width_gen, x.mean((1, 2)))
        return v_c, v_h, v_w

    def reconstruct(self, v_c: torch.Tensor, v_h: torch.Tensor, v_w: torch.Tensor) -> torch.Tensor:
        """TRM: attention tensor ``A (B,C,H,W) = Σ_i λ_i v_c^i ⊗ v_h^i ⊗ v_w^i``."""
        return torch.einsum("brc,brh,brw->bchw", v_c * self.lambdas[:, None], v_h, v_w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.reconstruct(*self.generate(x))


@in_float32
def _slice_attention(slices: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """``softmax(K Q)`` (B, S, C, C) of slices ``K`` (B, S, C, L) and their sample's priors ``Q`` (B, L, C)."""
    return torch.softmax(slices @ queries.unsqueeze(1), dim=-1)


class FullyAttentionalBlock(nn.Module):
    """FLANet FLA block: channel attention per row and per column slice, with spatial priors.

    ``Q_h = Linear(avgpool_W x)`` (B,H,C) and ``Q_w = Linear(avgpool_H x)`` (B,W,C). Each column
    slice ``K_h`` (C,H) of sample b forms ``A = softmax(K_h Q_h[b])`` (C,C) and ``F_h = A K_h``;
    rows likewise. ``out = conv3×3(γ (F_h + F_w) + x)``, γ initialised 0. Every slice is paired
    with its own sample's prior (the released code's ``repeat`` pairs them across samples).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.query_h = nn.Linear(channels, channels)
        self.query_w = nn.Linear(channels, channels)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.conv = ConvBNReLU(channels, channels, 3)

    def relations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention maps ``(B, W, C, C)`` over column slices and ``(B, H, C, C)`` over row slices."""
        cols = x.permute(0, 3, 1, 2)  # (B, W, C, H)
        rows = x.permute(0, 2, 1, 3)  # (B, H, C, W)
        q_h = self.query_h(x.mean(3).transpose(1, 2))  # (B, H, C)
        q_w = self.query_w(x.mean(2).transpose(1, 2))  # (B, W, C)
        return _slice_attention(cols, q_h), _slice_attention(rows, q_w)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """``γ (F_h + F_w) + x``, the block before its output convolution."""
        attn_h, attn_w = self.relations(x)
        f_h = (attn_h @ x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        f_w = (attn_w @ x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        return self.gamma * (f_h + f_w) + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.attend(x))


class SqueezeAttention(nn.Module):
    """SANet SA module: ``X_out = X_attn ⊙ X_res + X_attn``.

    ``X_res``: two 3×3 ConvBNReLU (the first with 2 groups). ``X_attn = Up(σ(F_attn(APool(X))))``:
    8×8 average pooling (ceil mode, so any size works), 3×3 ConvBNReLU (2 groups), 3×3 ConvBN,
    sigmoid, bilinear upsampling back to the input size.
    """

    def __init__(self, in_ch: int, out_ch: int, pool: int = 8, groups: int = 2):
        super().__init__()
        self.pool = pool
        self.main = nn.Sequential(ConvBNReLU(in_ch, out_ch, 3, groups=groups), ConvBNReLU(out_ch, out_ch, 3))
        self.attention = nn.Sequential(ConvBNReLU(in_ch, out_ch, 3, groups=groups), ConvBN(out_ch, out_ch, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = F.avg_pool2d(x, self.pool, ceil_mode=True)
        attn = torch.sigmoid(self.attention(squeezed))
        attn = F.interpolate(attn, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return attn * self.main(x) + attn
