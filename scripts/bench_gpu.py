#!/usr/bin/env python
"""GPU benchmark of ``predict`` in float32, float16 and bfloat16 autocast (needs CUDA).

For the default model, ABCNet, MANet (and UNetFormer where registered; the architectures with
random weights) on the demo scene and a generated ``SIZE``² scene: throughput (MPix/s), peak GPU
memory, and the share of pixels whose class agrees with float32. Peak GPU memory is then
compared on two generated scenes of the same width and heights ``SIZE/4`` and ``SIZE`` (it must
not grow with height), and the attention/context module table of ``bench_attention.py
--precision-table`` is redone under CUDA autocast. Results go to
a record of ``scripts/bench_record.py`` (``benchmarks/results/gpu-<machine>.json``).

    python scripts/bench_gpu.py                 # 16384² generated scene
    python scripts/bench_gpu.py --size 4096     # a quicker run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import bench_record
import numpy as np
import rasterio
import torch
from bench_attention import precision_table

from rsseg.errors import RssegError
from rsseg.models import create_model, list_models, load_checkpoint
from rsseg.models.checkpoint import make_card
from rsseg.models.default import DEFAULT_MODEL
from rsseg.models.precision import RUN_MODES
from rsseg.synthetic import write_scene
from rsseg.tiling import predict_scene

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data_samples" / "demo_scene.tif"
PRECISIONS = ("fp32", "fp16", "bf16")
ARCHITECTURES = ("abcnet", "manet", "unetformer")  # besides the default model; those not registered are skipped


def models() -> dict[str, tuple[torch.nn.Module, object]]:
    """The default model and the registered architectures of :data:`ARCHITECTURES` (random weights)."""
    out = {"default": load_checkpoint(DEFAULT_MODEL, "cpu")}
    registered = {e.name for e in list_models()}
    for name in ARCHITECTURES:
        if name in registered:
            torch.manual_seed(0)
            model = create_model(name, 6).eval()
            out[name] = (model, make_card(model.arch, tile_size=512))
    return out


def read_mask(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def run(scene: Path, out: Path, model, card, precision: str) -> dict:
    """One ``predict_scene`` on CUDA; its figures, or the error (non-finite probabilities) as ``error``."""
    torch.cuda.empty_cache()
    try:
        report = predict_scene(scene, out, model, card, device="cuda", precision=precision, overwrite=True,
                               progress=False, record=False, batch_size=8, gsd="native")
    except RssegError as err:
        return {"precision": precision, "error": str(err)}
    return {"precision": report.precision, "seconds": report.seconds, "mpix_per_s": report.mpix_per_s,
            "model_seconds": report.model_seconds, "peak_cuda_mb": report.peak_cuda_mb, "windows": report.windows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=16384, help="side of the generated scene (pixels)")
    parser.add_argument("--workdir", type=Path, help="where scenes and masks go (default: a temporary folder)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu.py: CUDA is not available on this machine; run it where a GPU is", file=sys.stderr)
        return 1
    record = bench_record.start("gpu", settings={"size": args.size, "cuda": torch.version.cuda,
                                                 "bf16_supported": torch.cuda.is_bf16_supported()})
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        generated = {h: work / f"generated_{args.size}x{h}.tif" for h in (args.size // 4, args.size)}
        for height, path in generated.items():
            if not path.exists():
                start = time.perf_counter()
                write_scene(path, None, args.size, height, seed=7, overwrite=True, progress=False)
                print(f"generated {path.name} in {time.perf_counter() - start:.0f} s", flush=True)
        scenes = {"demo_scene": DEMO, f"generated_{args.size}": generated[args.size]}
        throughput, memory = [], []
        for name, (model, card) in models().items():
            for scene_name, scene in scenes.items():
                rows = {p: run(scene, work / f"{name}_{scene_name}_{p}.tif", model, card, p) for p in PRECISIONS}
                reference = read_mask(work / f"{name}_{scene_name}_fp32.tif")
                for precision, r in rows.items():
                    agree = None if "error" in r else float(
                        (read_mask(work / f"{name}_{scene_name}_{precision}.tif") == reference).mean())
                    throughput.append([name, scene_name, precision, *(
                        [r["error"], "", "", ""] if "error" in r else
                        [f"{r['mpix_per_s']:.2f}", f"{r['model_seconds']:.2f}", f"{r['peak_cuda_mb']:.0f}",
                         f"{100 * agree:.3f}"])])
            peaks = {h: run(path, work / f"{name}_height_{h}.tif", model, card, "auto")["peak_cuda_mb"]
                     for h, path in generated.items()}
            memory.append([name, f"{peaks[args.size // 4]:.0f}", f"{peaks[args.size]:.0f}",
                           f"{peaks[args.size] / peaks[args.size // 4]:.3f}"])
        record.table(f"predict on {torch.cuda.get_device_name(0)}",
                     ["model", "scene", "precision", "MPix/s", "model s", "peak CUDA MB", "agreement with fp32 %"],
                     throughput)
        record.table(f"peak GPU memory against scene height (width {args.size})",
                     ["model", f"height {args.size // 4} MB", f"height {args.size} MB", "ratio"], memory)
        modules = precision_table("cuda")
        record.table("attention and context modules under CUDA autocast (relative error against fp32)",
                     ["module", "channels", "side", "window", *RUN_MODES],
                     [[m["module"], m["channels"], m["side"], m["window"],
                       *(f"{m['errors'][k]:.1e}" for k in RUN_MODES)] for m in modules])
    record.save()
    return 0

if __name__ == "__main__":
    sys.exit(main())
