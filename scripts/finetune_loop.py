#!/usr/bin/env python
"""The fine-tune loop of docs/real-imagery.md, measured on the SpaceNet tile: a few polygons -> own model.

    python scripts/finetune_loop.py --work /tmp/finetune --minutes 15                     # background,building
    python scripts/finetune_loop.py --work /tmp/finetune2 --minutes 15 --classes default  # the default's classes
    python scripts/finetune_loop.py --work /tmp/finetune --prepare-only

Each of ``--rounds`` rounds does what a user does in QGIS: map the top 60 % rows of
``data_samples/spacenet_atlanta.tif`` (grey RGB, see ``scripts/real_training_data.py``) with the
current model (``--gsd auto``), draw 10 more footprints where it misses buildings most and 10 more background
squares where it sees buildings or cars that are not there (:func:`draw_polygons`), prepare
patches from all polygons so far on the rows resampled to the default's GSD (0.2 m: trained on
the 0.5 m pixels, the model met roofs 2.5 times smaller than it knew and called 89 % of the
unseen rows Building) (pixels under no polygon are ignored) and train from the current
model (the default in round 1) for its share of ``--minutes``. Building IoU on the bottom 40 %
rows, which no step sees, is reported for the default model (its Building class) and after each
round. ``--classes default`` keeps the default's classes (every tensor kept): the polygons are
``Building`` and the label set ``254`` (ImSurf, LowVeg, Tree or Clutter). Recorded through
``scripts/bench_record.py`` (benchmark ``finetune_loop``, ``finetune_loop-default-classes``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import bench_record
import numpy as np
import rasterio
import real_training_data as real

POLYGONS = 10  # of each class
SQUARE_M, CLEARANCE_M = 15.0, 3.0  # background squares: side, and distance from every footprint
CAR = 4  # ISPRS id, beside real_training_data's
CLASSES = {  # --classes: polygon class names (building, background), prepare's class options, the record's words
    "new": (("building", "background"), ("--classes", "background,building"), "classes background,building"),
    "default": (("Building", str(real.NOT_BUILDING)), ("--classes", "isprs", "--label-set", real.LABEL_SETS[0]),
                "the default's classes, background as a label set"),
}


def rsseg(*args: str) -> None:
    """Run an rsseg command as a user would; stop with its output on failure."""
    done = subprocess.run([sys.executable, "-m", "rsseg.cli", *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"rsseg {' '.join(args[:2])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def draw_polygons(top_map: Path, model_names: list[str], names: tuple[str, str], drawn=None, seed: int = 0):
    """Polygons where the map ``top_map`` is wrong, as a user would draw them in QGIS, after ``drawn``.

    The ``POLYGONS`` footprints the map misses most (lowest share of their pixels called building)
    and ``POLYGONS`` background squares where it calls building or car though no footprint is within
    ``CLEARANCE_M`` (random such squares when it makes fewer mistakes), none of them overlapping
    ``drawn`` (the polygons of earlier rounds); returns ``drawn`` and them, a GeoDataFrame whose
    ``class`` column holds ``names`` (building, background).
    """
    import geopandas as gpd
    import pandas as pd
    from rasterio.features import rasterize
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    with rasterio.open(top_map) as ds:
        pred, transform, bounds = ds.read(1), ds.transform, ds.bounds
    lowered = [n.lower() for n in model_names]
    building = pred == lowered.index("building")
    wrong = building | (pred == lowered.index("car") if "car" in lowered else False)
    footprints = gpd.read_file(real.SPACENET_BUILDINGS)
    taken = drawn.geometry.union_all() if drawn is not None else box(0, 0, 0, 0)
    inside = footprints[footprints.within(box(*bounds)) & (footprints.area >= 40)
                        & ~footprints.intersects(taken)].reset_index(drop=True)
    ids = rasterize(((g, i + 1) for i, g in enumerate(inside.geometry)), pred.shape, transform=transform,
                    dtype="int32")
    found = np.bincount(ids.ravel(), weights=building.ravel(), minlength=len(inside) + 1)[1:]
    recall = found / np.maximum(1, np.bincount(ids.ravel(), minlength=len(inside) + 1)[1:])
    missed = np.lexsort((rng.random(len(inside)), recall))[:POLYGONS]
    keep_out = footprints.geometry.buffer(CLEARANCE_M).union_all().union(taken)
    side = round(SQUARE_M / transform.a)
    candidates = []
    for row in range(0, pred.shape[0] - side + 1, side // 2):
        for col in range(0, pred.shape[1] - side + 1, side // 2):
            x, y = transform * (col, row)
            square = box(x, y - SQUARE_M, x + SQUARE_M, y)
            if not square.intersects(keep_out):
                candidates.append((float(wrong[row:row + side, col:col + side].mean()), float(rng.random()), square))
    squares: list = []
    for _, _, square in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if len(squares) < POLYGONS and not any(square.intersects(s) for s in squares):
            squares.append(square)
    frame = gpd.GeoDataFrame({"class": [names[0]] * len(missed) + [names[1]] * len(squares)},
                             geometry=[*inside.geometry.iloc[missed], *squares], crs=footprints.crs)
    return frame if drawn is None else gpd.GeoDataFrame(pd.concat([drawn, frame], ignore_index=True),
                                                        crs=footprints.crs)


def predict(checkpoint: str | Path, scene: Path, out: Path) -> list[str]:
    """Map ``scene`` into ``out`` (on the scene's grid, ``--gsd auto``); the model's class names."""
    from rsseg.models import load_checkpoint
    from rsseg.tiling import predict_scene

    model, card = load_checkpoint(checkpoint, "cpu")
    predict_scene(scene, out, model, card, device="cpu", progress=False, record=False, gsd="auto", overwrite=True)
    return list(card.classes.names)


def building_iou(checkpoint: str | Path, scene: Path, truth: np.ndarray, out: Path) -> float:
    """Building IoU of a model's map of ``scene`` (the class named building, any case) against ``truth``."""
    names = predict(checkpoint, scene, out)
    with rasterio.open(out) as ds:
        pred = ds.read(1) == [n.lower() for n in names].index("building")
    return float((pred & truth).sum() / max(1, (pred | truth).sum()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget, shared by the rounds")
    parser.add_argument("--rounds", type=int, default=2, help="predict, draw, train rounds (each from the last model)")
    parser.add_argument("--classes", choices=list(CLASSES), default="new",
                        help="new: background,building (a new classifier); default: the default model's, "
                             "background polygons as the label set 'not Building or Car' (every tensor kept)")
    parser.add_argument("--prepare-only", action="store_true", help="the first round's polygons and patches, then stop")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    names, prepare_args, label = CLASSES[args.classes]
    benchmark = "finetune_loop" if args.classes == "new" else f"finetune_loop-{args.classes}-classes"
    record = bench_record.start(benchmark, settings={"minutes": args.minutes, "rounds": args.rounds,
                                                     "polygons": POLYGONS, "classes": args.classes})
    rgb, _, transform, crs = real.spacenet_scene("train")
    top, _ = real.write_pair(args.work, "spacenet_top", rgb, np.zeros(rgb.shape[1:], np.uint8), transform, crs)
    from rsseg.models.checkpoint import read_card
    from rsseg.models.default import DEFAULT_MODEL

    gsd = read_card(DEFAULT_MODEL)[0].input.gsd  # patches at the model's GSD, as `gdalwarp -tr` would make them
    fine = real.resample(rgb, np.zeros(rgb.shape[1:], np.uint8), transform, gsd)
    top_fine, _ = real.write_pair(args.work, f"spacenet_top_{gsd:g}m", fine[0], fine[1], fine[2], crs)
    test_rgb, truth, test_transform, _ = real.spacenet_scene("test")
    bottom, _ = real.write_pair(args.work, "spacenet_bottom", test_rgb, truth, test_transform, crs)
    truth = truth == real.BUILDING
    model: Path = DEFAULT_MODEL
    rows = [["default (Building class)", "-", f"{building_iou(model, bottom, truth, args.work / 'before.tif'):.3f}",
             "-"]]
    drawn, spent = None, 0.0
    for n in range(1, args.rounds + 1):
        folder = args.work / f"round{n}"
        folder.mkdir(exist_ok=True)
        drawn = draw_polygons(folder / "top_map.tif", predict(model, top, folder / "top_map.tif"), names, drawn, n)
        drawn.to_file(folder / "polygons.gpkg", driver="GPKG")
        rsseg("prepare", "generic", "--image", str(top_fine), "--labels", str(folder / "polygons.gpkg"), *prepare_args,
              "--patch", "256", "--stride", "128", "--val-fraction", "0.2", "--output", str(folder / "patches"),
              "--overwrite")
        print(f"round {n}: {len(drawn)} polygons, patches in {folder / 'patches'}", flush=True)
        if args.prepare_only:
            return 0
        started = time.perf_counter()
        rsseg("train", "--data", str(folder / "patches"), "--init", str(model) if n > 1 else "default",
              "--max-minutes", str(args.minutes / args.rounds), "--tile", "256", "--batch-size", "4",
              "--workers", "0", "--device", "cpu", "--output", str(folder / "run"), "--overwrite", "--quiet")
        spent += (time.perf_counter() - started) / 60
        model = folder / "run" / "best.pt"
        iou = building_iou(model, bottom, truth, folder / "bottom_map.tif")
        rows.append([f"round {n}: --init {'default' if n == 1 else 'round ' + str(n - 1)}, {label}",
                     f"{len(drawn)}", f"{iou:.3f}", f"{spent:.1f}"])
        print(f"round {n}: building IoU {iou:.3f} after {spent:.1f} min", flush=True)
    record.table("Fine-tune loop on SpaceNet Atlanta (building IoU, bottom 40 % rows)",
                 ["model", "polygons", "building IoU", "training minutes (total)"], rows)
    record.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
