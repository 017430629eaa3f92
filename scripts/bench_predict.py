#!/usr/bin/env python
"""Benchmark the streaming predict engine on synthetic GeoTIFF scenes (CPU by default).

For each scene (width × height) it prints seconds, MPix/s, peak RSS and the engine's
overhead = end-to-end time ÷ the model's own forward time on the same windows, timed inside
the same run (so that a busy machine slows both alike); a separate standalone timing of the
model on as many batches is printed too.
Each scene runs in a fresh process so that peak RSS is that scene's alone.

    python scripts/bench_predict.py                 # the three standard scenes
    python scripts/bench_predict.py --quick         # small sizes, a smoke run
    python scripts/bench_predict.py --runtimes      # PyTorch vs ONNX Runtime, and cheaper CPU paths

``--runtimes`` times, for the default model, ABCNet and MAResU-Net at 512² windows, one model
call on a batch of windows by each CPU path (eager PyTorch, channels_last, bf16 autocast, ONNX
Runtime at each graph optimisation level; correctness against eager beside each), then
end-to-end ``predict_scene`` with PyTorch and with ONNX Runtime on the same scene, alternating
the two so that a busy machine slows both alike; the ratios come from that one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_record
import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.windows import Window
from torch import nn

from rsseg.device import torch_threads
from rsseg.models.base import SegmentationModel
from rsseg.models.checkpoint import make_card
from rsseg.tiling import predict_scene

STANDARD = [  # (width, height, model)
    (16384, 2048, "tiny"),
    (16384, 16384, "tiny"),
    (2048, 2048, "unet-resnet18"),
]


class TinyConvNet(SegmentationModel):
    """A few convolutions: enough to exercise the engine, cheap enough for huge scenes."""

    def __init__(self, num_classes: int = 6, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(width, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_model(name: str) -> SegmentationModel:
    torch.manual_seed(0)
    if name == "tiny":
        model = TinyConvNet()
        model.arch = {"name": "tiny", "num_classes": 6, "in_channels": 3, "kwargs": {}}
        return model.eval()
    from rsseg.models import create_model  # imports timm/smp: only when a real model is benchmarked

    return create_model("unet", 6, 3, backbone="resnet18").eval()


def make_scene(path: Path, width: int, height: int, block: int = 1024) -> None:
    """Smooth random imagery written block row by block row (memory independent of height)."""
    rng = np.random.default_rng(0)
    base = rng.random((3, 64, 64)).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=from_origin(500000, 5400000, 0.09, 0.09), tiled=True,
                       blockxsize=512, blockysize=512, bigtiff="IF_SAFER") as ds:
        for y in range(0, height, block):
            h = min(block, height - y)
            yy = (np.arange(y, y + h) // 37) % 64
            xx = (np.arange(width) // 37) % 64
            data = base[:, yy][:, :, xx] * 200 + rng.integers(0, 40, (3, h, width), dtype=np.uint8)
            ds.write(data.astype(np.uint8), window=Window(0, y, width, h))


def model_only_seconds(model: nn.Module, batches: int, batch_size: int, tile: int, repeats: int = 5) -> float:
    """The model's forward time alone for ``batches`` batches (mean of ``repeats`` timed calls)."""
    x = torch.randn(batch_size, 3, tile, tile)
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return (time.perf_counter() - start) / repeats * batches


def run_one(width: int, height: int, model_name: str, tile: int, batch_size: int, workdir: Path) -> dict:
    scene = workdir / f"scene_{width}x{height}.tif"
    model = build_model(model_name)
    card = make_card(model.arch, tile_size=tile)
    report = predict_scene(scene, workdir / f"mask_{width}x{height}.tif", model, card, batch_size=batch_size,
                           device="cpu", overwrite=True, progress=sys.stderr.isatty(), record=False)
    batches = -(-report.windows_run // batch_size)
    with torch_threads(len(os.sched_getaffinity(0))):  # the thread count predict_scene used on CPU
        forward = model_only_seconds(model, batches, batch_size, report.tile[0])
    return {"scene": f"{width}x{height}", "model": model_name, "windows": report.windows,
            "seconds": report.seconds, "mpix_per_s": report.mpix_per_s, "peak_rss_mb": report.peak_rss_mb,
            "model_seconds": report.model_seconds, "overhead": report.seconds / report.model_seconds,
            "standalone_model_seconds": forward}


RUNTIME_MODELS = ("default", "abcnet", "maresunet")


def runtime_checkpoint(name: str, workdir: Path) -> Path:
    """The bundled default model, or a registered architecture with random weights saved as a model file."""
    if name == "default":
        from rsseg.models.default import DEFAULT_MODEL

        return DEFAULT_MODEL
    from rsseg.models import create_model, save_checkpoint

    path = workdir / f"{name}.pt"
    if not path.exists():
        torch.manual_seed(0)
        save_checkpoint(create_model(name, 6, 3).eval(), path, tile_size=512)
    return path


def best_of(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls after a warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_paths(checkpoint: Path, onnx_path: Path, batch_size: int, tile: int, repeats: int) -> list[dict]:
    """Seconds per model call on B×3×tile×tile by each CPU path, with its agreement with eager PyTorch."""
    from rsseg.models import load_checkpoint
    from rsseg.models.onnx import OPTIMIZATION_LEVELS, OnnxModel

    model, _ = load_checkpoint(checkpoint, "cpu")
    x = torch.randn(batch_size, 3, tile, tile, generator=torch.Generator().manual_seed(0))
    channels_last = load_checkpoint(checkpoint, "cpu")[0].to(memory_format=torch.channels_last)
    x_last = x.contiguous(memory_format=torch.channels_last)

    def bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x).float()

    paths = {"torch eager": lambda: model(x), "torch channels_last": lambda: channels_last(x_last),
             "torch bf16 autocast": bf16}
    for level in OPTIMIZATION_LEVELS:
        session = OnnxModel(onnx_path, optimization=level)
        paths[f"onnxruntime {level}"] = lambda s=session: s(x)
    rows = []
    with torch.inference_mode():
        reference = torch.softmax(model(x), 1)
        for name, fn in paths.items():
            seconds = best_of(fn, repeats)
            p = torch.softmax(fn().float(), 1)
            rows.append({"path": name, "seconds": seconds, "max_dp": float((p - reference).abs().max()),
                         "argmax_agree": float((p.argmax(1) == reference.argmax(1)).float().mean())})
    return rows


def end_to_end(checkpoint: Path, scene: Path, workdir: Path, batch_size: int, repeats: int) -> dict[str, float]:
    """Best end-to-end predict seconds with PyTorch and with ONNX Runtime, runs alternated."""
    from rsseg.models.runtime import load_model

    runs = {rt: load_model(checkpoint, torch.device("cpu"), rt)[:2] for rt in ("torch", "onnx")}
    best = {rt: float("inf") for rt in runs}
    for i in range(repeats + 1):  # the first round warms up
        for rt, (model, card) in runs.items():
            report = predict_scene(scene, workdir / f"mask_{rt}.tif", model, card, tile=512, batch_size=batch_size,
                                   device="cpu", overwrite=True, progress=False, record=False)
            if i:
                best[rt] = min(best[rt], report.seconds)
    return best


def compare_runtimes(args: argparse.Namespace, workdir: Path) -> None:
    """The ``--runtimes`` tables (see the module docstring)."""
    import os

    from rsseg.models.runtime import cached_export

    os.environ.setdefault("XDG_CACHE_HOME", str(workdir / "cache"))
    side = 512 if args.quick else 1024
    scene = workdir / f"scene_{side}x{side}.tif"
    if not scene.exists():
        make_scene(scene, side, side)
    repeats = 1 if args.quick else args.repeats
    paths, e2e = [], []
    for name in RUNTIME_MODELS:
        checkpoint = runtime_checkpoint(name, workdir)
        onnx_path = cached_export(checkpoint)
        for row in cpu_paths(checkpoint, onnx_path, args.batch_size, args.tile, repeats):
            paths.append({"model": name, **row})
            print(f"{name:>10} {row['path']:>22}: {row['seconds']:.3f} s", flush=True)
        best = end_to_end(checkpoint, scene, workdir, args.batch_size, repeats)
        e2e.append({"model": name, **best})
        print(f"{name:>10} end to end: torch {best['torch']:.2f} s, onnx {best['onnx']:.2f} s", flush=True)
    record = bench_record.start("predict-runtimes" + ("-quick" if args.quick else ""), vars(args))
    rows = []
    for r in paths:
        eager = next(p for p in paths if p["model"] == r["model"] and p["path"] == "torch eager")
        rows.append([r["model"], r["path"], round(r["seconds"], 3), round(eager["seconds"] / r["seconds"], 2),
                     f"{100 * r['argmax_agree']:.2f} %", f"{r['max_dp']:.1e}"])
    record.table(f"One model call on {args.batch_size}×3×{args.tile}² (best of {repeats}), "
                 f"{torch.get_num_threads()} threads",
                 ["model", "path", "seconds", "× eager", "argmax = eager", "max Δp vs eager"], rows)
    record.table(f"End-to-end predict, {side}×{side} scene, 512² windows, overlap 0.5 (best of {repeats})",
                 ["model", "PyTorch (s)", "ONNX Runtime (s)", "speed-up"],
                 [[r["model"], round(r["torch"], 2), round(r["onnx"], 2), f"{r['torch'] / r['onnx']:.2f}×"]
                  for r in e2e])
    record.save()

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small scenes (smoke test)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workdir", type=Path, help="where scenes are generated (default: a temp folder)")
    parser.add_argument("--runtimes", action="store_true", help="PyTorch vs ONNX Runtime and other CPU paths")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per --runtimes measurement (best kept)")
    parser.add_argument("--one", nargs=3, metavar=("W", "H", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rsseg-bench-"))
    if args.runtimes:
        compare_runtimes(args, workdir)
        return
    if args.one:
        w, h, name = int(args.one[0]), int(args.one[1]), args.one[2]
        print(json.dumps(run_one(w, h, name, args.tile, args.batch_size, workdir)))
        return
    cases = [(w // 8, h // 8, m) for w, h, m in STANDARD] if args.quick else STANDARD
    record = bench_record.start("predict-scenes" + ("-quick" if args.quick else ""), vars(args))
    rows = []
    for w, h, name in cases:
        scene = workdir / f"scene_{w}x{h}.tif"
        if not scene.exists():
            make_scene(scene, w, h)
        cmd = [sys.executable, __file__, "--one", str(w), str(h), name, "--tile", str(args.tile),
               "--batch-size", str(args.batch_size), "--workdir", str(workdir)]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{r['scene']:>12} {r['model']:>14}: {r['seconds']:7.1f} s  {r['mpix_per_s']:6.2f} MPix/s  "
              f"peak RSS {r['peak_rss_mb']:6.0f} MB  overhead {r['overhead']:.2f} "
              f"(model {r['model_seconds']:.1f} s in-run, {r['standalone_model_seconds']:.1f} s standalone)",
              flush=True)
    record.table(f"Synthetic scenes, {args.tile}² windows, overlap 0.5, batch {args.batch_size}, a process each",
                 ["scene (W×H)", "model", "windows", "seconds", "MPix/s", "peak RSS (MB)", "overhead"],
                 [[r["scene"], r["model"], r["windows"], round(r["seconds"], 1), round(r["mpix_per_s"], 2),
                   round(r["peak_rss_mb"]), round(r["overhead"], 2)] for r in rows])
    by = {r["scene"]: r for r in rows}
    tall, wide = by.get(f"{cases[1][0]}x{cases[1][1]}"), by.get(f"{cases[0][0]}x{cases[0][1]}")
    if tall and wide:
        print(f"\npeak RSS {cases[1][0]}x{cases[1][1]} / {cases[0][0]}x{cases[0][1]}: "
              f"{tall['peak_rss_mb'] / wide['peak_rss_mb']:.2f} (memory must not grow with height)")
    record.save()


if __name__ == "__main__":
    main()
