#!/usr/bin/env python
"""Generate deterministic ISPRS-like scenes (image + label GeoTIFFs) from a seed.

    python scripts/make_samples.py --width 2048 --height 2048 --seed 1 \\
        --out-image scene.tif --out-labels scene_labels.tif
    python scripts/make_samples.py --width 16384 --height 16384 --bands IRRG --out-image big.tif
    python scripts/make_samples.py --samples        # regenerate the committed data_samples/demo_*.tif
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rsseg.errors import RssegError
from rsseg.synthetic import GSD, LANDSCAPES, write_scene

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"
DEMO = dict(width=2048, height=2048, seed=2026, bands="RGB", compress="jpeg", quality=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bands", choices=["RGB", "IRRG"], default="RGB")
    parser.add_argument("--landscape", choices=list(LANDSCAPES), default="urban")
    parser.add_argument("--gsd", type=float, default=GSD, help=f"metres per pixel (at least {GSD})")
    parser.add_argument("--compress", choices=["deflate", "jpeg", "webp"], default="deflate",
                        help="image compression (labels are always deflate)")
    parser.add_argument("--quality", type=int, default=90, help="jpeg / webp quality")
    parser.add_argument("--out-image", type=Path)
    parser.add_argument("--out-labels", type=Path)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--samples", action="store_true",
                        help=f"regenerate the committed demo scene and labels in {SAMPLES}")
    args = parser.parse_args(argv)
    if args.samples:
        jobs = [dict(DEMO, image_path=SAMPLES / "demo_scene.tif", labels_path=SAMPLES / "demo_labels.tif",
                     overwrite=True)]
    elif args.out_image is None:
        parser.error("--out-image is required (or --samples)")
    else:
        jobs = [dict(width=args.width, height=args.height, seed=args.seed, bands=args.bands, compress=args.compress,
                     quality=args.quality, image_path=args.out_image, labels_path=args.out_labels,
                     overwrite=args.overwrite, landscape=args.landscape, gsd=args.gsd)]
    try:
        for job in jobs:
            start = time.perf_counter()
            write_scene(**job)
            outputs = " + ".join(str(p) for p in (job["image_path"], job["labels_path"]) if p)
            print(f"wrote {outputs}: {job['width']}x{job['height']} {job['bands']}, seed {job['seed']}, "
                  f"{time.perf_counter() - start:.1f} s")
    except RssegError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
