"""Training throughput (patches/s: forward, loss, backward, optimiser step) of every registered model.

    python scripts/bench_train.py --threads 1          # CPU, 512 px, batch 2
    python scripts/bench_train.py --device cuda --batch-size 8 --amp

Inputs are random (no dataset, no weights); ``--amp`` uses float16 autocast on CUDA as ``rsseg train`` does.
"""

from __future__ import annotations

import argparse
import platform
import time

import bench_record
import torch
from tqdm import tqdm

from rsseg.models import create_model, list_models
from rsseg.train.config import OptimConfig
from rsseg.train.losses import SegmentationLoss
from rsseg.train.optim import build_optimizer


def measure(name: str, device: torch.device, tile: int, batch: int, steps: int, amp: bool) -> float:
    """Patches per second over ``steps`` timed training steps after one warm-up step."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=6, in_channels=3).to(device).train()
    optimizer = build_optimizer(model, OptimConfig())
    criterion = SegmentationLoss()
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    x = torch.randn(batch, 3, tile, tile, device=device)
    y = torch.randint(0, 6, (batch, tile, tile), device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            loss, _ = model.loss(model(x), y, criterion)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model")
    parser.add_argument("--models", help="comma-separated names (default: all registered)")
    parser.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's; 1 is fastest on a busy machine)")
    args = parser.parse_args()
    if args.batch_size < 2:
        parser.error("--batch-size must be at least 2 (BatchNorm layers of pooled branches, "
                     "e.g. DeepLabV3+ ASPP, cannot train on one patch)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    record = bench_record.start("train" + ("-amp" if args.amp else ""), vars(args))
    names = args.models.split(",") if args.models else [e.name for e in list_models()]
    amp = args.amp and device.type == "cuda"
    results = {}
    for name in tqdm(names, desc="models", unit="model"):
        results[name] = measure(name, device, args.tile, args.batch_size, args.steps, amp)
        tqdm.write(f"{name:<14}{results[name]:8.2f} patches/s")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    record.table(f"Training steps on random {args.tile}² patches, batch {args.batch_size}, {where}"
                 f"{', AMP' if amp else ''}", ["model", "patches/s"],
                 [[name, round(value, 2)] for name, value in results.items()])
    record.save()
    print(f"benchmarked {len(results)} models at {args.tile}² on {where}")


if __name__ == "__main__":
    main()
