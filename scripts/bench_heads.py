"""Benchmark: the context modules' cost against the papers' tables (RecoNet Table 10, FLANet Table 3).

FLOPs come from ``torch.utils.flop_counter`` via :mod:`rsseg.models.profile`: 2 per multiply-add
of convolutions, linear layers and matrix products (``mm``/``bmm``/``einsum`` are counted);
element-wise ops, softmax, pooling and normalisation are not. Memory is the peak of tensors a
forward pass allocates beyond its input (CPU, no autograd); the papers measured GPU memory.

    python scripts/bench_heads.py --threads 2
"""

from __future__ import annotations

import argparse
from typing import Callable

import bench_record
import torch
from tqdm import tqdm

from rsseg.models.attention import SoftmaxAttention
from rsseg.models.blocks import ChannelAttention
from rsseg.models.context_blocks import FullyAttentionalBlock, LowRankReconstruction
from rsseg.models.profile import count_flops, cpu_time_ms, peak_memory_bytes


class DualAttention(torch.nn.Module):
    """Spatial (PAM) + channel (CAM) non-local attention on the same input, summed (DANet's pair)."""

    def __init__(self, channels: int):
        super().__init__()
        self.position = SoftmaxAttention(channels, scale=8)
        self.channel = ChannelAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.position(x) + self.channel(x)


class NonLocal(torch.nn.Module):
    """Non-local block (Wang et al., embedded Gaussian): θ, φ, g 1×1 C→C/2, softmax, W 1×1 C/2→C, residual."""

    def __init__(self, channels: int):
        super().__init__()
        inner = channels // 2
        self.theta, self.phi, self.g = (torch.nn.Conv2d(channels, inner, 1) for _ in range(3))
        self.out = torch.nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        theta, phi, g = (proj(x).flatten(2) for proj in (self.theta, self.phi, self.g))
        weights = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (B, N, N)
        y = torch.bmm(g, weights.transpose(1, 2)).reshape(b, -1, h, w)
        return x + self.out(y)


Row = tuple[str, str, Callable, tuple[int, ...], float, float | None]


def _rows(channels: int, rank: int) -> list[Row]:
    """(table, module, callable, input shape, paper GFLOPs, paper MB)."""
    reco = LowRankReconstruction(channels, rank, profile_size=64).eval()
    fla = FullyAttentionalBlock(channels).eval()
    pam = SoftmaxAttention(channels, scale=8).eval()
    x64, x96 = (1, channels, 64, 64), (1, channels, 96, 96)
    return [
        ("RecoNet T10", f"TGM+TRM (r={rank}), incl. rank-r reconstruction", reco, x64, 0.0215, 8.31),
        ("RecoNet T10", "TGM generators only", reco.generate, x64, 0.0215, None),
        ("RecoNet T10", "Non-local (Wang et al., C/2 embedding)", NonLocal(channels).eval(), x64, 19.33, 88.0),
        ("FLANet T3", "Channel NL (DANet CAM)", ChannelAttention().eval(), x96, 9.66, 40.0),
        ("FLANet T3", "Spatial NL (DANet PAM)", pam, x96, 103.9, 1320.0),
        ("FLANet T3", "Dual NL (PAM + CAM)", DualAttention(channels).eval(), x96, 113.56, 1378.0),
        ("FLANet T3", "FLA, attention only", fla.attend, x96, 19.37, 436.0),
        ("FLANet T3", "FLA + its 3×3 conv", fla, x96, 19.37, 436.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=512, help="feature channels C (papers: 512)")
    parser.add_argument("--rank", type=int, default=64, help="RecoNet tensor rank r (paper: 64)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs (median) after one warm-up")
    args = parser.parse_args()
    record = bench_record.start("heads", vars(args))
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    rows = _rows(args.channels, args.rank)
    results = []
    for table, module, fn, shape, paper_g, paper_mb in tqdm(rows, desc="modules", unit="module"):
        x = torch.randn(shape)
        gflops = count_flops(fn, x) / 1e9
        mib = peak_memory_bytes(fn, x) / 2**20
        ms = cpu_time_ms(fn, x, repeats=args.repeats)
        results.append((table, module, shape, gflops, paper_g, mib, paper_mb, ms))

    record.table(f"C={args.channels}, r={args.rank}, batch 1, forward without autograd, {args.threads} CPU thread(s)",
                 ["table", "module", "input C×H×W", "GFLOPs ours", "GFLOPs paper", "ours/paper", "peak MiB ours",
                  "MB paper", "CPU ms"],
                 [[table, module, f"{shape[1]}×{shape[2]}×{shape[3]}", float(f"{gflops:.4g}"), paper_g,
                   round(gflops / paper_g, 2), round(mib, 1), paper_mb or "–", round(ms)]
                  for table, module, shape, gflops, paper_g, mib, paper_mb, ms in results])
    reco_macs = args.rank * (args.channels ** 2 + 2 * 64 ** 2) + 2 * args.channels * 64 * 64
    print(f"\nRecoNet's own convention (generator MACs r·(C²+H²+W²) + 2·C·H·W, no rank-r reconstruction): "
          f"{reco_macs / 1e9:.4f} G vs paper 0.0215 G")
    print(f"benchmarked {len(results)} modules; FLOPs = 2 × multiply-adds, matmul/bmm/einsum counted")
    record.save()


if __name__ == "__main__":
    main()
