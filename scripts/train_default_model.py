#!/usr/bin/env python
"""Train the bundled default model reproducibly: generated scenes + real pixels -> prepare -> train -> fp16 file.

    python scripts/train_default_model.py --gsd-mode narrow --work runs/narrow --prepare-only   # scenes, patches
    python scripts/train_default_model.py --gsd-mode narrow --work runs/narrow --minutes 20     # timed training

``--gsd-mode narrow``: every scene at 0.2 m (generated there; real ones resampled), crops at scale
0.75–1.25; the card records GSD 0.2 and ``gsd_range`` [0.15, 0.25], so ``rsseg predict --gsd auto``
resamples every other scene to 0.2 m. ``wide``: generated scenes at 0.09, 0.2 and 0.35–0.4 m, real
ones at their own GSD, crops at scale 0.5–1.35, card GSD 0.15 and ``gsd_range`` [0.05, 0.5].
Both use the urban, rural, suburban and industrial landscapes and the real scenes of
``scripts/real_training_data.py`` (SpaceNet footprints, NEON crowns when deepforest's data is found).
The preparation (scenes, patches) is skipped when ``WORK/patches`` exists, so a timed run starts at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import real_training_data

ROOT = Path(__file__).resolve().parent.parent
MODES = {  # scale jitter, card GSD, card gsd_range, generated scenes: (landscape, seed, size, gsd)
    "narrow": dict(scale=(0.75, 1.25), gsd=0.2, span=(0.15, 0.25), real_gsd=0.2, scenes=[
        *[(land, seed, 1024, 0.2) for land, seeds in (("urban", (11, 12, 13, 14)), ("rural", (21, 22, 23)),
                                                       ("suburban", (51, 52, 53, 54)), ("industrial", (61, 62, 63)))
          for seed in seeds]]),
    "wide": dict(scale=(0.5, 1.35), gsd=0.15, span=(0.05, 0.5), real_gsd=None, scenes=[
        *[("urban", s, 1536, 0.09) for s in (11, 12, 13)], *[("rural", s, 1536, 0.09) for s in (21, 22, 23)],
        ("suburban", 51, 1536, 0.09), ("industrial", 61, 1536, 0.09),
        *[(land, s, 1024, 0.2) for land, s in (("urban", 31), ("rural", 32), ("suburban", 52), ("industrial", 62))],
        *[(land, s, 768, 0.35) for land, s in (("urban", 41), ("suburban", 53), ("industrial", 63))]]),
}
HELD_OUT = [("urban", 99), ("suburban", 97), ("industrial", 96), ("rural", 98)]  # never trained on
VAL_KEEP = 6  # keep every sixth validation patch: enough to pick the best epoch


def step(message: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:6.0f} s] {message}", flush=True)


def rsseg(*args: str) -> None:
    """Run an rsseg command as a user would; stop with its output on failure."""
    done = subprocess.run([sys.executable, "-m", "rsseg.cli", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"rsseg {' '.join(args[:2])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def scene(work: Path, landscape: str, seed: int, size: int, gsd: float) -> tuple[Path, Path]:
    """Generate one scene (once) and return its image and labels."""
    from rsseg.synthetic import write_scene

    image = work / "scenes" / f"{landscape}_{seed}_{gsd:g}.tif"
    labels = image.with_name(f"{image.stem}_labels.tif")
    if not image.exists():
        write_scene(image, labels, size, size, seed=seed, landscape=landscape, gsd=gsd, progress=False)
    return image, labels


def thin_validation(patches: Path) -> None:
    """Keep every ``VAL_KEEP``-th validation patch and update the dataset's counts."""
    from rsseg.data.patches import read_dataset_info, write_dataset_info

    for i, image in enumerate(sorted((patches / "val" / "images").iterdir())):
        if i % VAL_KEEP:
            image.unlink()
            (patches / "val" / "masks" / image.name).unlink()
    info = read_dataset_info(patches)
    info.counts["val"] = len(list((patches / "val" / "images").iterdir()))
    write_dataset_info(patches, info)


def prepare(work: Path, mode: dict, deepforest: Path | None, start: float) -> None:
    """Every training and held-out scene, then the patch folder (written last: its presence means done)."""
    (work / "scenes").mkdir(parents=True, exist_ok=True)
    pairs = [scene(work, *spec) for spec in mode["scenes"]]
    step(f"{len(pairs)} generated scenes", start)
    pairs += real_training_data.build(work / "real", deepforest, mode["real_gsd"])
    for landscape, seed in HELD_OUT:
        scene(work, landscape, seed, 768, mode["gsd"] if mode["real_gsd"] else 0.09)
    step("real and held-out scenes", start)
    args = [a for image, labels in pairs for a in ("--image", str(image), "--labels", str(labels))]
    sets = [a for label_set in real_training_data.LABEL_SETS for a in ("--label-set", label_set)]
    rsseg("prepare", "generic", *args, *sets, "--classes", "isprs", "--patch", "256", "--stride", "256",
          "--val-fraction", "0.17", "--output", str(work / "patches.tmp"), "--overwrite")
    thin_validation(work / "patches.tmp")
    (work / "patches.tmp").rename(work / "patches")
    step(f"patches in {work / 'patches'}", start)


def train(work: Path, mode: dict, minutes: float, model: Path, start: float, init: str | None = None) -> None:
    """The timed training, the fp16 model file with its GSD record, the held-out scores."""
    from rsseg.models import load_checkpoint, save_checkpoint

    lo, hi = mode["scale"]
    architecture = ("--init", init) if init else (
        "--model", "abcnet", "--set", "model.backbone=tf_efficientnet_lite0", "--set", "model.channels=96",
        "--set", "model.pretrained=true")
    rsseg("train", "--data", str(work / "patches"), *architecture, "--set", "data.photometric=1.0",
          "--set", f"data.scale=[{lo},{hi}]", "--set", "data.max_class_share=0.8",
          "--set", "optim.lr=0.001", "--set", "optim.encoder_lr=0",
          "--set", "optim.warmup_epochs=0.1", "--set", "data.samples_per_epoch=336", "--max-minutes", str(minutes),
          "--batch-size", "4", "--tile", "160", "--workers", "1", "--output", str(work / "run"), "--overwrite",
          "--quiet")
    step("trained", start)
    net, card = load_checkpoint(work / "run" / "best.pt")
    model.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(net, model, half=True, classes=card.classes, input=dataclasses.replace(card.input, gsd=mode["gsd"]),
                    tile_size=256, extra={**card.extra, "gsd_range": list(mode["span"])})
    step(f"wrote {model} ({model.stat().st_size / 1e6:.2f} MB, float16)", start)
    print("held-out generated scenes (mIoU of 5 classes):")
    for image in sorted((work / "scenes").glob("*_9[6-9]_*.tif")):
        if image.name.endswith("_labels.tif"):
            continue
        out = work / f"{image.stem}_metrics.json"
        rsseg("evaluate", "--checkpoint", str(model), "--scene", str(image), "--labels",
              str(image.with_name(f"{image.stem}_labels.tif")), "--output", str(out), "--overwrite", "--quiet")
        papers = json.loads(out.read_text())["papers"]
        print(f"  {image.stem}: mIoU {100 * papers['mIoU']:.2f} %, OA {100 * papers['OA']:.2f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gsd-mode", choices=list(MODES), default="narrow")
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "default_model")
    parser.add_argument("--model", type=Path, help="model file to write (default: WORK/default.pt)")
    parser.add_argument("--deepforest", type=Path, help="deepforest's data folder (see real_training_data.py)")
    parser.add_argument("--init", help="continue from this model file (e.g. 'default', the bundled one) instead "
                                       "of an ImageNet encoder")
    parser.add_argument("--prepare-only", action="store_true", help="generate scenes and patches, then stop")
    args = parser.parse_args(argv)
    mode, start = MODES[args.gsd_mode], time.perf_counter()
    if not (args.work / "patches").is_dir():
        prepare(args.work, mode, args.deepforest, start)
    else:
        step(f"{args.work / 'patches'} exists: preparation skipped", start)
    if not args.prepare_only:
        train(args.work, mode, args.minutes, args.model or args.work / "default.pt", start, args.init)
    return 0


if __name__ == "__main__":
    sys.exit(main())
