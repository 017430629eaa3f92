#!/usr/bin/env python
"""`make demo`: segment the bundled sample scene and a real orthophoto with the bundled model.

Writes to demo_out/: class masks (GeoTIFF), polygons (GeoPackage), preview PNGs, and prints
the sample scene's mIoU against its labels. Runs the same `rsseg` commands a user would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
OUT = ROOT / "demo_out"
RSSEG = Path(sys.executable).with_name("rsseg")


def rsseg(*args: str) -> None:
    """Run an rsseg command as a user would, echoing it."""
    print("$ rsseg " + " ".join(args), flush=True)
    subprocess.run([str(RSSEG), *args], check=True)


def main() -> None:
    from rsseg.models import load_checkpoint
    from rsseg.models.default import DEFAULT_MODEL
    from rsseg.train.evaluation import confusion_from_rasters
    from rsseg.train.metrics import compute_metrics, format_table
    from rsseg.viz import write_preview

    scene, labels = SAMPLES / "demo_scene.tif", SAMPLES / "demo_labels.tif"
    if not scene.exists():  # committed; regenerated only if someone removed it
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), "--samples"], check=True)
    OUT.mkdir(exist_ok=True)

    mask, polygons = OUT / "demo_scene_mask.tif", OUT / "demo_scene_polygons.gpkg"
    rsseg("predict", str(scene), "-o", str(mask), "--vector", str(polygons), "--overwrite")
    preview = write_preview(scene, mask, OUT / "demo_scene_preview.png", overwrite=True)
    _, card = load_checkpoint(DEFAULT_MODEL)
    matrix, _ = confusion_from_rasters(mask, labels, card)
    metrics = compute_metrics(matrix.matrix, card.classes.names, card.classes.excluded_from_mean)
    print(format_table(metrics))

    real = SAMPLES / "OSBS_029.tif"
    real_mask = OUT / "OSBS_029_mask.tif"
    rsseg("predict", str(real), "-o", str(real_mask), "--overwrite", "--quiet")
    real_preview = write_preview(real, real_mask, OUT / "OSBS_029_preview.png", overwrite=True)

    print("\nDemo outputs:")
    for path in (mask, polygons, preview, real_mask, real_preview):
        print(f"  {path.relative_to(ROOT)}")
    print(f"Sample scene mIoU against its labels: {100 * metrics['all']['mIoU']:.1f} % (all 6 classes), "
          f"{100 * metrics['papers']['mIoU']:.1f} % (5 classes, ISPRS convention). "
          "The bundled model was trained on synthetic scenes: for real maps, train one with `rsseg train`.")


if __name__ == "__main__":
    main()
