"""Spatial attention over all ``N = H·W`` positions: two linear-cost forms and the softmax baseline.

All modules project ``q, k`` with 1×1 convs ``C → C/scale`` and ``v`` with a 1×1 conv ``C → C``
and work for any ``H``, ``W`` (including ``H ≠ W``). ``γ`` starts at 0, so a residual block
is the identity at initialisation.

- :class:`KernelAttention` (MANet): softplus feature map, ``O(N·C²)``.
- :class:`TaylorAttention` (MAResU-Net, ABCNet): first-order Taylor expansion of ``exp`` on
  L2-normalised ``q, k``, ``O(N·C²)``.
- :class:`SoftmaxAttention` (non-local / DANet PAM): explicit ``N×N`` softmax, ``O(N²·C)``.

The linear modules also expose :meth:`quadratic`, the same output computed with the explicit
``N×N`` weight matrix; it exists to check the linear form (and to benchmark it), not for use.

Sums over all positions overflow float16 (65,504) at the position counts of ordinary windows,
so the linear attentions and the softmax weights run in float32 whatever the autocast state
(:func:`rsseg.models.precision.in_float32`); the projections, and the softmax-weighted sum,
keep the fast dtype.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from rsseg.models.precision import in_float32


class _ProjectedAttention(nn.Module):
    """Shared ``q, k, v`` projections and ``γ``; subclasses define :meth:`attend` on ``(B, c, N)``."""

    def __init__(self, channels: int, scale: int = 8, residual: bool = True, eps: float = 1e-6):
        super().__init__()
        self.query = nn.Conv2d(channels, max(channels // scale, 1), 1)
        self.key = nn.Conv2d(channels, max(channels // scale, 1), 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.residual = residual
        self.eps = eps

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _run(self, x: torch.Tensor, attend: Callable[..., torch.Tensor]) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (proj(x).flatten(2) for proj in (self.query, self.key, self.value))
        out = self.gamma * attend(q, k, v).reshape(b, c, h, w)
        return x + out if self.residual else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.attend)


class _LinearAttention(_ProjectedAttention):
    """A linear form ``attend`` plus its quadratic reference ``attend_quadratic``."""

    def attend_quadratic(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def quadratic(self, x: torch.Tensor) -> torch.Tensor:
        """The module output computed through the explicit ``N×N`` weight matrix (reference)."""
        return self._run(x, self.attend_quadratic)


def _weighted_mean(weights: torch.Tensor, v: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
    """``out_n = Σ_m W_nm v_m / (Σ_m W_nm + extra_n)`` for ``W`` (B, N, N), ``v`` (B, C, N)."""
    num = torch.einsum("bnm,bcm->bcn", weights, v)
    return num / (weights.sum(-1) + extra).unsqueeze(1)


class KernelAttention(_LinearAttention):
    """MANet kernel attention with the softplus feature map ``φ``.

    ``out_n = x_n + γ·[φ(q_n)ᵀ Σ_m φ(k_m) v_mᵀ] / [φ(q_n)ᵀ (Σ_m φ(k_m) + ε)]``.
    """

    @in_float32
    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k = F.softplus(q), F.softplus(k)
        kv = torch.einsum("bdm,bcm->bdc", k, v)
        num = torch.einsum("bdn,bdc->bcn", q, kv)
        den = torch.einsum("bdn,bd->bn", q, k.sum(-1) + self.eps)
        return num / den.unsqueeze(1)

    def attend_quadratic(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``W_nm = φ(q_n)ᵀ φ(k_m)``; the ``ε`` term adds ``ε·Σ_d φ(q_n)_d`` to the denominator."""
        q, k = F.softplus(q), F.softplus(k)
        return _weighted_mean(torch.einsum("bdn,bdm->bnm", q, k), v, self.eps * q.sum(1))


class TaylorAttention(_LinearAttention):
    """Linear attention from ``exp(q̂ᵀk̂) ≈ 1 + q̂ᵀk̂`` with ``q̂, k̂`` L2-normalised per position.

    ``out_n = [Σ_m v_m + q̂_nᵀ Σ_m k̂_m v_mᵀ] / [N + q̂_nᵀ (Σ_m k̂_m + ε)]``; the module returns
    ``x + γ·out`` when ``residual`` (MAResU-Net) and ``γ·out`` otherwise (ABCNet).
    """

    @in_float32
    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        kv = torch.einsum("bdm,bcm->bdc", k, v)
        num = v.sum(-1, keepdim=True) + torch.einsum("bdn,bdc->bcn", q, kv)
        den = q.shape[-1] + torch.einsum("bdn,bd->bn", q, k.sum(-1) + self.eps)
        return num / den.unsqueeze(1)

    def attend_quadratic(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``W_nm = 1 + q̂_nᵀ k̂_m``; the ``ε`` term adds ``ε·Σ_d q̂_nd`` to the denominator."""
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        return _weighted_mean(1 + torch.einsum("bdn,bdm->bnm", q, k), v, self.eps * q.sum(1))


class SoftmaxAttention(_ProjectedAttention):
    """Dot-product attention with an explicit ``N×N`` softmax (non-local block, DANet PAM).

    ``out_n = x_n + γ·Σ_m softmax_m(q_nᵀ k_m) v_m``; memory and time grow with ``N²``.
    """

    @staticmethod
    @in_float32
    def weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``softmax_m(q_nᵀ k_m)`` (B, N, N), computed in float32 (the energies overflow float16)."""
        return torch.softmax(torch.bmm(q.transpose(1, 2), k), dim=-1)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.bmm(v, self.weights(q, k).transpose(1, 2))
