"""Benchmark: linear attention (kernel, Taylor) against softmax dot-product attention on CPU.

Times and peak tensor memory of one forward pass (no autograd) at feature sizes 32², 64², 96²,
128² with the same channel count, the growth per 4× pixels (a 1×1 convolution is the
reference for a cost linear in the number of pixels), then whole-model parameters and
GFLOPs at 512² for MANet, MAResU-Net and ABCNet on the papers' backbones.

    python scripts/bench_attention.py --channels 64 --threads 1
"""

from __future__ import annotations

import argparse
import math

import bench_record
import torch
from tqdm import tqdm

from rsseg.models.attention import KernelAttention, SoftmaxAttention, TaylorAttention
from rsseg.models.profile import count_flops, cpu_time_ms, peak_memory_bytes, profile_model

ATTENTIONS = {"kernel": KernelAttention, "taylor": TaylorAttention, "softmax": SoftmaxAttention,
              # not attention: a 1×1 conv C→C shows how a cost linear in N scales on this CPU (caches)
              "1×1 conv (reference)": lambda c: torch.nn.Conv2d(c, c, 1)}
MODELS = ("manet", "maresunet", "abcnet")


def growth_per_4x(values: list[float], sizes: list[int], first: int = 0, last: int = -1) -> float:
    """Growth factor per 4× pixels from ``sizes[first]`` to ``sizes[last]``."""
    pixel_ratio = (sizes[last] / sizes[first]) ** 2
    return (values[last] / values[first]) ** (math.log(4) / math.log(pixel_ratio))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64, help="feature channels C")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96, 128], help="feature map sides")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs (median)")
    args = parser.parse_args()
    record = bench_record.start("attention", vars(args))
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    rows: dict[str, dict[str, list[float]]] = {name: {"ms": [], "mib": [], "gflops": []} for name in ATTENTIONS}
    jobs = [(name, s) for s in args.sizes for name in ATTENTIONS]
    for name, side in tqdm(jobs, desc="attention", unit="run"):
        module = ATTENTIONS[name](args.channels).eval()
        x = torch.randn(1, args.channels, side, side)
        rows[name]["ms"].append(cpu_time_ms(module, x, repeats=args.repeats))
        rows[name]["mib"].append(peak_memory_bytes(module, x) / 2**20)
        rows[name]["gflops"].append(count_flops(module, x) / 1e9)

    half = args.sizes[-1] // 2 if args.sizes[-1] // 2 in args.sizes else args.sizes[0]
    columns = ["attention", *(f"{s}² {unit}" for s in args.sizes for unit in ("ms", "MiB")),
               "time ×/4× px", f"time {half}²→{args.sizes[-1]}²", "memory ×/4× px"]
    record.table(f"Attention, C={args.channels}, batch 1, forward without autograd, {args.threads} CPU thread(s)",
                 columns, [[name, *(round(v, 1) for pair in zip(r["ms"], r["mib"]) for v in pair),
                            round(growth_per_4x(r["ms"], args.sizes), 2),
                            round(growth_per_4x(r["ms"], args.sizes, first=args.sizes.index(half)), 2),
                            round(growth_per_4x(r["mib"], args.sizes), 2)] for name, r in rows.items()])
    for name in ("kernel", "taylor"):
        ratio = {key: rows["softmax"][key][-1] / rows[name][key][-1] for key in ("mib", "ms", "gflops")}
        print(f"softmax / {name} at {args.sizes[-1]}²: memory ×{ratio['mib']:.0f}, time ×{ratio['ms']:.1f}, "
              f"FLOPs ×{ratio['gflops']:.0f}")

    profiles = [profile_model(name, 512, repeats=args.repeats) for name in tqdm(MODELS, desc="models", unit="model")]
    record.table("Whole models at 1×3×512×512, 6 classes (FLOPs = 2 × multiply-adds of conv/matmul)",
                 ["model", "backbone", "params (M)", "GFLOPs", "GMACs", f"CPU ms ({args.threads} thread)"],
                 [[p.name, p.backbone, round(p.params / 1e6, 2), round(p.gflops, 1), round(p.gflops / 2, 1),
                   round(p.cpu_ms)] for p in profiles])
    record.save()

if __name__ == "__main__":
    main()
