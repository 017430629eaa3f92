"""Benchmark: the context modules' cost against the papers' tables (RecoNet Table 10, FLANet Table 3).

FLOPs come from ``torch.utils.flop_counter`` (via :mod:`rsseg.models.profile`): convolutions,
``mm``/``bmm``/``matmul``/``einsum`` counted, 2 FLOPs per multiply-add; softmax, sigmoid,
pooling and element-wise products are not counted. Peak memory is that of the tensors one
forward pass allocates (batch 1, no autograd, inputs excluded); CPU time is the median of
``--repeats`` runs on ``--threads`` threads.

    python scripts/bench_heads.py --threads 2
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from rsseg.models.attention import SoftmaxAttention
from rsseg.models.blocks import ChannelAttention
from rsseg.models.context_blocks import FullyAttentionalBlock, LowRankReconstruction
from rsseg.models.profile import count_flops, cpu_time_ms, peak_memory_bytes


class NonLocal(nn.Module):
    """Non-local block (Wang et al. 2018, embedded Gaussian): θ, φ, g 1×1 C→C/2, W 1×1 C/2→C, residual."""

    def __init__(self, channels: int):
        super().__init__()
        inner = channels // 2
        self.theta, self.phi, self.g = (nn.Conv2d(channels, inner, 1) for _ in range(3))
        self.out = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (proj(x).flatten(2) for proj in (self.theta, self.phi, self.g))
        weights = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, N, N)
        return x + self.out((v @ weights.transpose(1, 2)).reshape(b, -1, h, w))


class DualAttention(nn.Module):
    """DANet's two attentions on one input, summed (FLANet's "Dual NL")."""

    def __init__(self, channels: int):
        super().__init__()
        self.position = SoftmaxAttention(channels)
        self.channel = ChannelAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.position(x) + self.channel(x)


@dataclass(frozen=True)
class Row:
    """One module of a paper's cost table."""

    table: str
    name: str
    shape: tuple[int, int, int]  # C, H, W
    build: Callable[[int], nn.Module]
    paper_gflops: float
    paper_mb: float | None = None
    method: str = "forward"


C = 512
ROWS = (
    Row("RecoNet T10", "TGM+TRM (r=64), counted", (C, 64, 64), LowRankReconstruction, 0.0215),
    Row("RecoNet T10", "TGM generators only", (C, 64, 64), LowRankReconstruction, 0.0215, method="generate"),
    Row("RecoNet T10", "Non-local", (C, 64, 64), NonLocal, 19.33),
    Row("FLANet T3", "Channel NL (DANet CAM)", (C, 96, 96), lambda c: ChannelAttention(), 9.66, 40),
    Row("FLANet T3", "Spatial NL (DANet PAM)", (C, 96, 96), SoftmaxAttention, 103.9, 1320),
    Row("FLANet T3", "Dual NL (PAM + CAM)", (C, 96, 96), DualAttention, 113.56, 1378),
    Row("FLANet T3", "FLA, attention only", (C, 96, 96), FullyAttentionalBlock, 19.37, 436, method="attend"),
    Row("FLANet T3", "FLA + its 3×3 conv", (C, 96, 96), FullyAttentionalBlock, 19.37, 436),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    print("| table | module | input C×H×W | GFLOPs ours | GFLOPs paper | ours/paper | peak MiB ours "
          "| MB paper | CPU ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in tqdm(ROWS, desc="modules", unit="module"):
        module = row.build(row.shape[0]).eval()
        fn = getattr(module, row.method)
        x = torch.randn(1, *row.shape)
        gflops = count_flops(fn, x) / 1e9
        mib = peak_memory_bytes(fn, x) / 2**20
        ms = cpu_time_ms(fn, x, repeats=args.repeats)
        paper_mb = f"{row.paper_mb:g}" if row.paper_mb is not None else "–"
        tqdm.write(f"| {row.table} | {row.name} | {'×'.join(map(str, row.shape))} | {gflops:.4g} | "
                   f"{row.paper_gflops:g} | {gflops / row.paper_gflops:.2f} | {mib:.1f} | {paper_mb} | {ms:.0f} |")
    print(f"{len(ROWS)} modules measured on {args.threads} CPU thread(s); FLOPs = 2 × multiply-adds of "
          "conv/matmul/bmm/einsum")


if __name__ == "__main__":
    main()
