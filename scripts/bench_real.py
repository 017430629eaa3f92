"""Real imagery: building IoU on an unseen part of a real scene, with and without ImageNet pretraining.

The scene is ``data_samples/spacenet_atlanta.tif`` (SpaceNet, 0.5 m, one 16-bit band, 900²) with
its building footprints. Its top rows train (and validate) a U-Net through the real commands,
``rsseg prepare generic`` and ``rsseg train --max-minutes N``; its bottom rows are never seen in
training and give the building IoU (``rsseg evaluate``). Printed: the final IoU of each run and
its validation curve (building IoU against minutes).

    nice -n 10 python scripts/bench_real.py --minutes 15 --out /tmp/bench_real

``--shares CHECKPOINT`` instead prints the class shares a model gives on real orthophotos
(``data_samples/OSBS_029.tif`` and any other ``--scene``): see :func:`class_shares`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import bench_record
import numpy as np
import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent
SCENE = ROOT / "data_samples" / "spacenet_atlanta.tif"
BUILDINGS = ROOT / "data_samples" / "spacenet_atlanta_buildings.geojson"
CLASSES = "background,building"
TEST_FRACTION = 0.4  # bottom rows: never seen in training
VAL_FRACTION = 0.1


def rsseg(*args: str) -> str:
    """Run an rsseg command (as a user would) and return its output; stop on failure."""
    done = subprocess.run([sys.executable, "-m", "rsseg.cli", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"rsseg {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def building_labels(scene: Path, vector: Path, out: Path) -> Path:
    """The footprints rasterised on the scene grid: 1 building, 0 everything else."""
    from rsseg.data.labels import parse_classes, rasterize_vector

    with rasterio.open(scene) as ds:
        profile = ds.profile
        mask = rasterize_vector(vector, parse_classes(CLASSES), "class", ds.shape, ds.transform, ds.crs,
                                background=0, polygon_class=1)
    profile.update(count=1, dtype="uint8", nodata=None)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(mask, 1)
    return out


def bottom_rows(path: Path, fraction: float, out: Path) -> Path:
    """The bottom ``fraction`` of a raster's rows as its own GeoTIFF (georeferenced)."""
    with rasterio.open(path) as ds:
        top = ds.height - round(ds.height * fraction)
        window = Window(0, top, ds.width, ds.height - top)
        profile = ds.profile
        profile.update(height=window.height, transform=ds.window_transform(window), blockysize=1)
        data = ds.read(window=window)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
    return out


def train_and_score(out: Path, patches: Path, test_scene: Path, test_labels: Path, pretrained: bool,
                    minutes: float, backbone: str, threads: int, overrides: list[str]) -> dict:
    """One U-Net run under a time budget: its unseen-rows building IoU and validation curve."""
    run = out / f"unet-{backbone}-{'pretrained' if pretrained else 'scratch'}"
    rsseg("train", "--data", str(patches), "--model", "unet", "--output", str(run), "--overwrite", "--quiet",
          "--max-minutes", str(minutes), "--tile", "256", "--batch-size", "8", "--workers", "0",
          "--threads", str(threads), "--device", "cpu", "--set", f"model.backbone={backbone}",
          "--set", f"model.pretrained={str(pretrained).lower()}", *(a for o in overrides for a in ("--set", o)))
    rsseg("evaluate", "--checkpoint", str(run / "best.pt"), "--scene", str(test_scene), "--labels",
          str(test_labels), "--device", "cpu", "--output", str(run / "test.json"), "--overwrite", "--quiet")
    test = json.loads((run / "test.json").read_text())
    history = json.loads((run / "log.json").read_text())
    minutes_at, curve = 0.0, []
    for record in history:
        minutes_at += record["seconds"] / 60
        curve.append((minutes_at, record["metrics"]["per_class"]["building"]["IoU"]))
    return {"pretrained": pretrained, "test_iou": test["per_class"]["building"]["IoU"],
            "epochs": len(history), "curve": curve}


def class_shares(checkpoint: str | None, scene: Path, out: Path) -> dict[str, float]:
    """Share of each class in a model's map of ``scene`` (the bundled default model when no checkpoint)."""
    from rsseg.models.checkpoint import read_card
    from rsseg.models.default import DEFAULT_MODEL

    mask = out / f"{scene.stem}_mask.tif"
    rsseg("predict", str(scene), "--output", str(mask), "--device", "cpu", "--overwrite", "--quiet",
          *(["--checkpoint", checkpoint] if checkpoint else []))
    with rasterio.open(mask) as ds:
        ids = ds.read(1)
    card, _ = read_card(checkpoint or DEFAULT_MODEL)
    counts = np.bincount(ids.ravel(), minlength=256)[:card.num_classes]
    return {name: float(c) / max(1, counts.sum()) for name, c in zip(card.classes.names, counts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/rsseg_bench_real"), help="work folder")
    parser.add_argument("--minutes", type=float, default=15.0, help="train --max-minutes of each run")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared CPU")
    parser.add_argument("--only", choices=["pretrained", "scratch"], help="run one of the two")
    parser.add_argument("--shares", metavar="CHECKPOINT", nargs="?", const="",
                        help="print class shares of a model (default model without a value) on real scenes")
    parser.add_argument("--scene", type=Path, action="append", default=[], help="more scenes for --shares")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for both runs, e.g. data.mosaic=0.25 (the recipes' options)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.shares is not None:
        for scene in [ROOT / "data_samples" / "OSBS_029.tif", *args.scene]:
            shares = class_shares(args.shares or None, scene, args.out)
            print(f"{scene.name}: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in shares.items()))
        return
    record = bench_record.start("real-spacenet", vars(args))
    labels = building_labels(SCENE, BUILDINGS, args.out / "labels.tif")
    patches = args.out / "patches"
    rsseg("prepare", "generic", "--image", str(SCENE), "--labels", str(labels), "--classes", CLASSES,
          "--output", str(patches), "--patch", "256", "--stride", "128", "--val-fraction", str(VAL_FRACTION),
          "--test-fraction", str(TEST_FRACTION), "--overwrite")
    test_scene = bottom_rows(SCENE, TEST_FRACTION, args.out / "test_scene.tif")
    test_labels = bottom_rows(labels, TEST_FRACTION, args.out / "test_labels.tif")
    runs = [p for p in (True, False) if args.only is None or p == (args.only == "pretrained")]
    results = []
    for pretrained in runs:
        result = train_and_score(args.out, patches, test_scene, test_labels, pretrained, args.minutes,
                                 args.backbone, args.threads, args.overrides)
        results.append(result)
        kind = "pretrained" if pretrained else "from scratch"
        curve = "  ".join(f"{m:.1f} min {iou:.3f}" for m, iou in result["curve"])
        print(f"unet {args.backbone} {kind}: val building IoU by minute: {curve}", flush=True)
    record.table(f"{SCENE.name}: bottom {TEST_FRACTION:.0%} of rows unseen, {args.minutes:g} min per run, "
                 f"{args.threads} threads" + (f", {' '.join(args.overrides)}" if args.overrides else ""),
                 ["model", "backbone", "building IoU (unseen rows)", "epochs", "best val building IoU"],
                 [["unet", f"{args.backbone} {'pretrained' if r['pretrained'] else 'from scratch'}",
                   round(r["test_iou"], 3), r["epochs"], round(max((iou for _, iou in r["curve"]), default=0.0), 3)]
                  for r in results])
    record.save()

if __name__ == "__main__":
    main()
