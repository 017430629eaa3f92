#!/usr/bin/env python
"""GPU benchmark of ``predict`` in float32, float16 and bfloat16 autocast (needs CUDA).

For the default model, ABCNet, MANet (and UNetFormer where registered; the architectures with
random weights) on the demo scene and a generated ``SIZE``² scene: throughput (MPix/s), peak GPU
memory, and the share of pixels whose class agrees with float32. Peak GPU memory is then
compared on two generated scenes of the same width and heights ``SIZE/4`` and ``SIZE`` (it must
not grow with height), and the attention/context module table of ``bench_attention.py
--precision-table`` is redone under CUDA autocast. Results go to
``benchmarks/results/gpu_<GPU name>.json`` with the machine, versions and git commit.

    python scripts/bench_gpu.py                 # 16384² generated scene
    python scripts/bench_gpu.py --size 4096     # a quicker run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from bench_attention import precision_table

import rsseg
from rsseg.data.synthetic import write_scene
from rsseg.errors import RssegError
from rsseg.models import create_model, list_models, load_checkpoint
from rsseg.models.checkpoint import make_card
from rsseg.models.default import DEFAULT_MODEL
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


def machine() -> dict:
    props = torch.cuda.get_device_properties(0)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (no git checkout)"
    return {"gpu": props.name, "gpu_memory_gb": props.total_memory / 1e9, "capability": f"{props.major}.{props.minor}",
            "bf16_supported": torch.cuda.is_bf16_supported(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "rsseg": rsseg.__version__, "git_commit": commit}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=16384, help="side of the generated scene (pixels)")
    parser.add_argument("--workdir", type=Path, help="where scenes and masks go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="result JSON (default: benchmarks/results/gpu_<GPU>.json)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu.py: CUDA is not available on this machine; run it where a GPU is", file=sys.stderr)
        return 1
    info = machine()
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu_{re.sub(r'[^A-Za-z0-9]+', '_', info['gpu'])}.json"
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
        results: dict = {"machine": info, "size": args.size, "scenes": {}, "memory_flat_in_height": {}}
        for name, (model, card) in models().items():
            for scene_name, scene in scenes.items():
                rows = {}
                for precision in PRECISIONS:
                    mask = work / f"{name}_{scene_name}_{precision}.tif"
                    rows[precision] = run(scene, mask, model, card, precision)
                reference = read_mask(work / f"{name}_{scene_name}_fp32.tif")
                for precision in [p for p in PRECISIONS[1:] if "error" not in rows[p]]:
                    agree = float((read_mask(work / f"{name}_{scene_name}_{precision}.tif") == reference).mean())
                    rows[precision]["agreement_with_fp32"] = agree
                results["scenes"].setdefault(scene_name, {})[name] = rows
                for precision, r in rows.items():
                    line = r.get("error") or (f"{r['mpix_per_s']:7.2f} MPix/s, peak {r['peak_cuda_mb']:7.0f} MB"
                                              + (f", agreement {100 * r['agreement_with_fp32']:.3f} %"
                                                 if "agreement_with_fp32" in r else ""))
                    print(f"{name:8s} {scene_name:16s} {precision}: {line}", flush=True)
            peaks = {h: run(path, work / f"{name}_height_{h}.tif", model, card, "auto")["peak_cuda_mb"]
                     for h, path in generated.items()}
            results["memory_flat_in_height"][name] = {"peak_cuda_mb_by_height": peaks,
                                                      "ratio": peaks[args.size] / peaks[args.size // 4]}
            print(f"{name:8s} peak GPU memory, height {args.size // 4} -> {args.size}: "
                  f"{peaks[args.size // 4]:.0f} -> {peaks[args.size]:.0f} MB", flush=True)
        results["module_table_cuda"] = precision_table("cuda")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
