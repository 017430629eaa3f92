#!/usr/bin/env python
"""Segment real orthophotos with a model; print class shares, mean top-class probability, GSD.

    python scripts/real_scenes.py                         # the bundled default model
    python scripts/real_scenes.py --checkpoint best.pt --out-dir /tmp/real

Scenes: the bundled data_samples/OSBS_029.tif and the NEON RGB orthophotos (0.1 m, MIT) that
ship in the deepforest package, when it is installed. Previews (scene | overlay | legend) go to
--out-dir. No labels: these figures show whether maps are plausible, not how accurate they are.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
NEON_GSD = 0.1  # metres; the deepforest PNGs carry no georeference
DEEPFOREST_IMAGES = ("OSBS_029.png", "SOAP_031.png", "SOAP_061.png", "2019_YELL_2_541000_4977000_image_crop.png",
                     "2019_YELL_2_528000_4978000_image_crop2.png")


def real_scenes() -> list[tuple[Path, float | None]]:
    """(path, forced GSD or None) of every real scene available here."""
    scenes: list[tuple[Path, float | None]] = [(ROOT / "data_samples" / "OSBS_029.tif", None)]
    spec = importlib.util.find_spec("deepforest")
    if spec and spec.submodule_search_locations:
        data = Path(list(spec.submodule_search_locations)[0]) / "data"
        scenes += [(data / name, NEON_GSD) for name in DEEPFOREST_IMAGES if (data / name).is_file()]
    return scenes


def class_shares(mask_path: Path, names: list[str]) -> dict[str, float]:
    """Share of each class among the mask's valid pixels."""
    with rasterio.open(mask_path) as ds:
        mask = ds.read(1)
    counts = np.bincount(mask[mask < len(names)], minlength=len(names))
    return {name: float(c) / max(1, int(counts.sum())) for name, c in zip(names, counts)}


def main(argv: list[str] | None = None) -> int:
    from rsseg.models import load_checkpoint
    from rsseg.models.default import DEFAULT_MODEL
    from rsseg.tiling import predict_scene
    from rsseg.viz import write_preview

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--out-dir", type=Path, default=None, help="previews here (default: none)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model, card = load_checkpoint(args.checkpoint, args.device)
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    print(f"model {args.checkpoint}: " + ", ".join(card.classes.names))
    with tempfile.TemporaryDirectory() as tmp:
        for scene, gsd in real_scenes():
            mask = Path(tmp) / f"{len(list(Path(tmp).iterdir()))}_{scene.stem}_mask.tif"
            report = predict_scene(scene, mask, model, card, device=args.device, progress=False, record=False,
                                   gsd=gsd if gsd else "auto")
            shares = class_shares(mask, list(card.classes.names))
            text = "  ".join(f"{name} {100 * share:5.1f}%" for name, share in shares.items())
            print(f"{scene.name[:42]:42s} {report.width}x{report.height}  {text}  "
                  f"top-prob {report.mean_top_probability:.2f}")
            note = report.unfamiliar_line()
            if note:
                print(f"  {note}")
            if args.out_dir:
                write_preview(scene, mask, args.out_dir / f"{scene.stem}_preview.png", max_size=600, overwrite=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
