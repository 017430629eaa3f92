"""Benchmark: linear attention (kernel, Taylor) against softmax dot-product attention on CPU.

Times and peak tensor memory of one forward pass (no autograd) at feature sizes 32², 64², 96²,
128² with the same channel count, the growth per 4× pixels (a 1×1 convolution is the
reference for a cost linear in the number of pixels), then whole-model parameters and
GFLOPs at 512² for MANet, MAResU-Net and ABCNet on the papers' backbones.

``--precision-table`` prints instead, for every attention and context module at the position
counts of 512² and 1024² windows (inputs of magnitude ~3, γ = 1), whether its output is finite
and its relative error against float32 under CPU autocast float16 / bfloat16 and as ``.half()``.

    python scripts/bench_attention.py --channels 64 --threads 1
    python scripts/bench_attention.py --precision-table
"""

from __future__ import annotations

import argparse
import math

import bench_record
import torch
from tqdm import tqdm

from rsseg.models.attention import KernelAttention, SoftmaxAttention, TaylorAttention
from rsseg.models.blocks import ChannelAttention
from rsseg.models.context_blocks import FullyAttentionalBlock, LowRankReconstruction, SqueezeAttention
from rsseg.models.precision import RUN_MODES, relative_error, run_in
from rsseg.models.profile import count_flops, cpu_time_ms, peak_memory_bytes, profile_model

ATTENTIONS = {"kernel": KernelAttention, "taylor": TaylorAttention, "softmax": SoftmaxAttention,
              # not attention: a 1×1 conv C→C shows how a cost linear in N scales on this CPU (caches)
              "1×1 conv (reference)": lambda c: torch.nn.Conv2d(c, c, 1)}
MODELS = ("manet", "maresunet", "abcnet")
# module (where), builder, channels, feature sides on 512² and 1024² windows (stride 4, or 8 for the dilated heads);
# SoftmaxAttention's N×N weights at 1024² (128²: 268 M weights, 1 GiB in float32) are left to the GPU
PRECISION_CASES = [
    ("KernelAttention (MANet)", lambda: KernelAttention(256), 256, (128, 256)),
    ("TaylorAttention (MAResU-Net, ABCNet)", lambda: TaylorAttention(256), 256, (128, 256)),
    ("ChannelAttention (DANet, MANet)", ChannelAttention, 256, (128, 256)),
    ("SoftmaxAttention (DANet PAM)", lambda: SoftmaxAttention(512), 512, (64, 128)),
    ("FullyAttentionalBlock (FLANet)", lambda: FullyAttentionalBlock(512), 512, (64, 128)),
    ("LowRankReconstruction (RecoNet)", lambda: LowRankReconstruction(512), 512, (64, 128)),
    ("SqueezeAttention (SANet)", lambda: SqueezeAttention(256, 64), 256, (128, 256)),
]


def with_unit_gamma(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` in eval mode with every ``γ`` set to 1, so that the attention itself shows in the output."""
    for name, param in module.named_parameters():
        if name.rsplit(".", 1)[-1] == "gamma":
            param.data.fill_(1.0)
    return module.eval()


def precision_cell(err: float) -> str:
    return "**NaN/inf**" if math.isinf(err) else "finite" if err == 0 else f"finite, rel. err {err:.1e}"


def precision_table(device: str = "cpu") -> list[dict]:
    """Print the module table (finite or not, relative error against float32, per precision); its rows."""
    where = "CPU" if device == "cpu" else torch.cuda.get_device_name(device)
    print("| module | feature map (window) | " + " | ".join(f"{m} ({where})" for m in RUN_MODES) + " |")
    print("|---|---|" + "---|" * len(RUN_MODES))
    rows = []
    for name, build, channels, sides in PRECISION_CASES:
        for side, window in zip(sides, (512, 1024)):
            if device == "cpu" and name.startswith("SoftmaxAttention") and window > 512:
                continue
            torch.manual_seed(0)
            module = with_unit_gamma(build()).to(device)
            x = 3 * torch.randn(1, channels, side, side, device=device)
            ref = run_in(module, x, "fp32")
            errors = {mode: relative_error(run_in(module, x, mode), ref) for mode in RUN_MODES}
            rows.append({"module": name, "channels": channels, "side": side, "window": window, "errors": errors})
            cells = [precision_cell(errors[mode]) for mode in RUN_MODES]
            print(f"| {name} | {channels}×{side}² ({window}²) | " + " | ".join(cells) + " |", flush=True)
    return rows


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
    parser.add_argument("--precision-table", action="store_true",
                        help="print the half-precision table of the attention and context modules instead")
    args = parser.parse_args()
    record = bench_record.start("attention", vars(args))
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    if args.precision_table:
        precision_table()
        return

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
