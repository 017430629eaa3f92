#!/usr/bin/env python
"""Segment real scenes with a model: class shares, accuracy where a reference exists, confidence, the note.

    python scripts/real_scenes.py                                 # the bundled default model
    python scripts/real_scenes.py --checkpoint best.pt --out-dir /tmp/real --tta flip
    python scripts/real_scenes.py --calibrate                     # choose the note's thresholds

Scenes: ``data_samples/OSBS_029.tif`` (NEON, 0.1 m; Tree IoU against its crown boxes when
deepforest's data is found), the other deepforest NEON images (``--deepforest`` or the installed
package; SOAP_061 and the YELL crops are training scenes of ``scripts/train_default_model.py``),
and ``data_samples/spacenet_atlanta.tif`` as grey RGB at 0.5 m (building IoU on the bottom 40 %
rows, which training never sees, against the footprints). Per scene: class shares, building IoU
or Tree IoU (crown ellipses Tree, pixels over 1 m from every crown not Tree; Tree recall beside it),
mean top-class probability,
mean entropy, TTA disagreement (with ``--tta``), whether the engine's note fired and which
signals of :mod:`rsseg.tiling.familiarity` fire. Previews go to ``--out-dir``; the table is
recorded through ``scripts/bench_record.py`` (benchmark ``real_scenes``).

``--calibrate`` adds held-out generated scenes (maps taken as right) and, over every scene,
counts how often each signal fires on right and on wrong maps (right: building IoU >= 0.3,
Tree IoU >= 0.5) at candidate thresholds, and picks for each the threshold that fires on the
most wrong maps and, among those, the fewest right ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import bench_record
import numpy as np
import rasterio
import real_training_data as real

ROOT = Path(__file__).resolve().parents[1]
RIGHT_IOU, RIGHT_TREE_IOU, RIGHT_MIOU = 0.3, 0.5, 0.5  # a map at or above these is "right"
CANDIDATES = {  # signal -> (thresholds, fires when the value is "above" or "below")
    "top_probability": ([0.55, 0.6, 0.65, 0.7, 0.75, 0.8], "below"),
    "entropy": ([0.2, 0.25, 0.3, 0.35, 0.4, 0.5], "above"),
    "car_share": ([0.02, 0.03, 0.05, 0.08], "above"),
    "tta_disagreement": ([0.05, 0.08, 0.12, 0.2], "above"),
}
GENERATED = [("urban", 99, 0.09), ("suburban", 97, 0.2), ("industrial", 96, 0.35), ("rural", 98, 0.2)]


def scenes(tmp: Path, deepforest: Path | None, calibrate: bool) -> list[tuple[str, Path, dict]]:
    """(name, GeoTIFF, reference) of every scene available here; references: building / crowns / generated."""
    out: list[tuple[str, Path, dict]] = []
    data = real.deepforest_data(deepforest)
    osbs = {"crowns": real.crown_boxes(data, "OSBS_029")} if data and (data / "OSBS_029.xml").is_file() else {}
    out.append(("OSBS_029 (held out)", ROOT / "data_samples" / "OSBS_029.tif", osbs))
    for stem in real.NEON_TRAIN if data else ():
        if (data / f"{stem}.xml").is_file():
            image, _ = real.write_pair(tmp, stem, *real.neon_scene(data, stem))
            out.append((f"{stem[:28]} (train)", image, {"crowns": real.crown_boxes(data, stem)}))
    with rasterio.open(real.SPACENET) as ds:
        pan, transform, crs = ds.read(1), ds.transform, str(ds.crs)
    labels = np.zeros(pan.shape, np.uint8)
    image, _ = real.write_pair(tmp, "spacenet_grey", real.pan_to_grey(pan), labels, transform, crs)
    test_rows = real.spacenet_scene("test")[1] == real.BUILDING
    out.append(("SpaceNet Atlanta (bottom 40 %)", image, {"buildings": test_rows}))
    if calibrate:
        from rsseg.synthetic import write_scene

        for landscape, seed, gsd in GENERATED:
            image, labels = tmp / f"{landscape}_{seed}.tif", tmp / f"{landscape}_{seed}_labels.tif"
            write_scene(image, labels, 768, 768, seed=seed, landscape=landscape, gsd=gsd, progress=False)
            out.append((f"generated {landscape} {gsd:g} m", image, {"labels": labels}))
    return out


def measure(name: str, scene: Path, ref: dict, model, card, args, tmp: Path) -> dict:
    """Predict one scene and return its row of figures."""
    from rsseg.tiling import predict_scene
    from rsseg.tiling.familiarity import RunStatistics, unfamiliar_reasons
    from rsseg.viz import write_preview

    mask_path, conf_path = tmp / f"{scene.stem}_mask.tif", tmp / f"{scene.stem}_conf.tif"
    report = predict_scene(scene, mask_path, model, card, device=args.device, progress=False, record=False,
                           gsd="auto", tta=args.tta, confidence=conf_path, overwrite=True)
    with rasterio.open(mask_path) as ds:
        mask = ds.read(1)
    with rasterio.open(conf_path) as ds:
        conf = ds.read().astype(np.float32) / 255
    names = list(card.classes.names)
    counts = np.bincount(mask[mask < len(names)], minlength=len(names))
    shares = {n: float(c) / max(1, int(counts.sum())) for n, c in zip(names, counts)}
    row = {"scene": name, "shares": shares, "top_probability": float(conf[0].mean()),
           "entropy": float(conf[2].mean()), "tta_disagreement": float(conf[3].mean()) if len(conf) > 3 else None,
           "car_share": shares.get("Car", 0.0), "engine_note": report.unfamiliar_line() is not None}
    if "buildings" in ref:
        truth = ref["buildings"]
        pred = mask[-truth.shape[0]:] == names.index("Building")
        row["accuracy"] = ("building IoU", float((pred & truth).sum() / max(1, (pred | truth).sum())))
    elif "labels" in ref:  # generated: right when the map's mIoU over the classes present is high enough
        with rasterio.open(ref["labels"]) as ds:
            truth = ds.read(1)
        present = [c for c in range(len(names)) if (truth == c).any()]
        ious = [((mask == c) & (truth == c)).sum() / max(1, ((mask == c) | (truth == c)).sum()) for c in present]
        row["accuracy"] = ("mIoU", float(np.mean(ious)))
    elif "crowns" in ref:
        inside = real.crown_ellipses(mask.shape, ref["crowns"])
        truth = real.with_background(np.where(inside, real.TREE, real.IGNORE).astype(np.uint8), inside,
                                     real.LOW_VEG, real.MARGIN_M / real.NEON_GSD)
        pred, tree, labelled = mask == names.index("Tree"), truth == real.TREE, truth != real.IGNORE
        iou = float((pred & tree).sum() / max(1, ((pred | tree) & labelled).sum()))
        row["accuracy"] = ("Tree IoU", iou, float(pred[inside].mean()))
    right_at = {"building IoU": RIGHT_IOU, "Tree IoU": RIGHT_TREE_IOU, "mIoU": RIGHT_MIOU}
    row["right"] = None if "accuracy" not in row else row["accuracy"][1] >= right_at[row["accuracy"][0]]
    stats = RunStatistics(row["top_probability"], row["entropy"], row["tta_disagreement"])
    row["signals"] = unfamiliar_reasons(stats) or []
    if args.out_dir:
        write_preview(scene, mask_path, args.out_dir / f"{scene.stem}_preview.png", max_size=600, overwrite=True)
    return row


def reference(row: dict) -> str:
    """The accuracy cell of a row: the measure and its value (and Tree recall beside Tree IoU)."""
    if "accuracy" not in row:
        return "-"
    name, value, *recall = row["accuracy"]
    return f"{name} {value:.2f}" + (f" (recall {recall[0]:.2f})" if recall else "")


def calibration(rows: list[dict]) -> list[list]:
    """Per signal and threshold: fires on how many right and wrong maps; the chosen threshold starred."""
    judged = [r for r in rows if r["right"] is not None]
    table = []
    for signal, (thresholds, side) in CANDIDATES.items():
        scored = []
        for t in thresholds:
            fired = [r for r in judged
                     if r[signal] is not None and (r[signal] < t if side == "below" else r[signal] > t)]
            right = sum(r["right"] for r in fired)
            scored.append((t, right, len(fired) - right))
        best = max(scored, key=lambda s: (s[2], -s[1]))
        n_right = sum(r["right"] for r in judged)
        table += [[signal, f"{side} {t:g}" + (" *" if (t, a, b) == best else ""), f"{a}/{n_right}",
                   f"{b}/{len(judged) - n_right}"] for t, a, b in scored]
    return table


def main(argv: list[str] | None = None) -> int:
    from rsseg.models import load_checkpoint
    from rsseg.models.default import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--out-dir", type=Path, default=None, help="previews here (default: none)")
    parser.add_argument("--deepforest", type=Path, help="deepforest's data folder (default: the installed package)")
    parser.add_argument("--tta", default="none", help="test-time augmentation (e.g. flip): adds TTA disagreement")
    parser.add_argument("--calibrate", action="store_true", help="also held-out generated scenes; fire rates")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--record", default="real_scenes", help="benchmark name of the record (one per name)")
    args = parser.parse_args(argv)
    record = bench_record.start(args.record, settings={k: str(v) for k, v in vars(args).items()})
    model, card = load_checkpoint(args.checkpoint, args.device)
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(*item, model, card, args, Path(tmp)) for item in scenes(Path(tmp), args.deepforest,
                                                                                 args.calibrate)]
    names = list(card.classes.names)
    record.table(f"Real scenes, {args.checkpoint.name}", ["scene", *names, "reference", "top-prob", "entropy",
                                                          "TTA dis.", "engine note", "signals"],
                 [[r["scene"], *(f"{100 * r['shares'][n]:.1f}" for n in names),
                   reference(r),
                   f"{r['top_probability']:.2f}", f"{r['entropy']:.2f}",
                   "-" if r["tta_disagreement"] is None else f"{r['tta_disagreement']:.2f}",
                   "fired" if r["engine_note"] else "silent", "; ".join(r["signals"]) or "-"] for r in rows])
    if args.calibrate:
        record.table("Note calibration: fires on right / wrong maps (* chosen)",
                     ["signal", "threshold", "right maps", "wrong maps"], calibration(rows))
    record.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
