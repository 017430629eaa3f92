"""Benchmark ``rsseg.vector.vectorize_mask`` (windowed) against polygonising the whole array at once.

Writes a synthetic class mask (default 16384 x 16384, ~100k disc and box objects of three
classes on a class-0 background), then runs each path in a fresh subprocess and reports
seconds, polygons/s and peak RSS, and checks that both wrote the same polygons. Both paths
run the same code (same checks and attributes); "whole" reads the mask as one strip, so it
polygonises the whole array in one ``rasterio.features.shapes`` call and stitches nothing:

    python scripts/bench_vectorize.py --workdir /tmp/bench_vec
    python scripts/bench_vectorize.py --size 4096 --objects 6000   # quick
    python scripts/bench_vectorize.py --json     # one JSON line (memory ratio etc.) for other scripts
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import bench_record
import numpy as np
import rasterio
from affine import Affine

from rsseg.io.mask_meta import NODATA, write_class_table

NAMES = ["background", "building", "tree", "car"]


def make_mask(path: Path, size: int, objects: int, seed: int = 0) -> None:
    """Discs and boxes of classes 1-3 (radius 3-24 px) on background 0, 0.5 m pixels, EPSG:32632."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    ys, xs = rng.integers(0, size, (2, objects))
    radii = rng.integers(3, 25, objects)
    classes = rng.integers(1, 4, objects).astype(np.uint8)
    boxes = rng.random(objects) < 0.5
    for y, x, r, c, box in zip(ys, xs, radii, classes, boxes):
        y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, size), max(x - r, 0), min(x + r + 1, size)
        if box:
            mask[y0:y1, x0:x1] = c
        else:
            yy, xx = np.ogrid[y0 - y:y1 - y, x0 - x:x1 - x]
            mask[y0:y1, x0:x1][yy * yy + xx * xx <= r * r] = c
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8",
                       crs="EPSG:32632", transform=Affine(0.5, 0, 500000, 0, -0.5, 5000000), nodata=NODATA,
                       tiled=True, compress="deflate") as ds:
        ds.write(mask, 1)
        write_class_table(ds, NAMES, [(0, 0, 0), (200, 0, 0), (0, 160, 0), (0, 0, 200)])


def run(mode: str, mask: Path, out: Path, classes: list[int] | None) -> int:
    """``vectorize_mask`` in strips of its default size, or in one strip holding the whole array."""
    from rsseg.vector import vectorize_mask

    rows = None
    if mode == "whole":
        with rasterio.open(mask) as ds:
            rows = ds.height
    return vectorize_mask(mask, out, classes=classes, window_rows=rows, overwrite=True, progress=False).total


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not inherit the parent's)."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def child(mode: str, mask: Path, out: Path, classes: list[int] | None) -> None:
    """Run one path in this process; print seconds, polygons and peak RSS as JSON."""
    out.unlink(missing_ok=True)
    base = peak_rss_mb()
    start = time.perf_counter()
    polygons = run(mode, mask, out, classes)
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": mode, "seconds": seconds, "polygons": polygons,
                      "peak_rss_mb": peak_rss_mb(), "import_rss_mb": base}))


def summarise(out: Path) -> tuple[int, float]:
    """Polygon count and total area of an output, read back."""
    import pyogrio

    table = pyogrio.read_dataframe(out, read_geometry=False, columns=["area_m2"])
    return len(table), float(table.area_m2.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--classes", default="all", help="'all' or comma-separated ids, e.g. 1,2,3")
    parser.add_argument("--workdir", type=Path, default=Path("bench_vectorize_out"))
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON line (memory_ratio, peak RSS of each path, equal_output)")
    parser.add_argument("--child", choices=["windowed", "whole"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    classes = None if args.classes == "all" else [int(c) for c in args.classes.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    mask = args.workdir / f"mask_{args.size}_{args.objects}.tif"
    if args.child:
        child(args.child, mask, args.workdir / f"{args.child}.gpkg", classes)
        return
    if not mask.exists():
        start = time.perf_counter()
        make_mask(mask, args.size, args.objects)
        print(f"wrote {mask} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    record = bench_record.start(f"vectorize-{args.size}-classes-{args.classes.replace(',', '')}", vars(args))
    results = {}
    for mode in ("windowed", "whole"):
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--size", str(args.size), "--objects",
                               str(args.objects), "--classes", args.classes, "--workdir", str(args.workdir)],
                              check=True, capture_output=True, text=True)
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        results[mode]["count"], results[mode]["area"] = summarise(args.workdir / f"{mode}.gpkg")
    same = results["windowed"]["count"] == results["whole"]["count"] and \
        abs(results["windowed"]["area"] - results["whole"]["area"]) <= 1e-9 * results["whole"]["area"]
    w, h = results["windowed"], results["whole"]
    record.table(f"Mask {args.size}², {args.objects} objects, classes {args.classes}, GeoPackage; equal output: {same}",
                 ["path", "polygons", "seconds", "polygons/s", "peak RSS (MB)"],
                 [[mode, r["polygons"], round(r["seconds"], 1), round(r["polygons"] / r["seconds"]),
                   round(r["peak_rss_mb"])] for mode, r in results.items()])
    record.save()
    if args.json:
        print(json.dumps({"size": args.size, "objects": args.objects, "classes": args.classes, "equal_output": same,
                          "polygons": w["polygons"], "memory_ratio": round(w["peak_rss_mb"] / h["peak_rss_mb"], 3),
                          "windowed_peak_rss_mb": round(w["peak_rss_mb"]), "whole_peak_rss_mb": round(h["peak_rss_mb"]),
                          "time_ratio": round(w["seconds"] / h["seconds"], 3)}))
        return
    print(f"windowed/whole: time {w['seconds'] / h['seconds']:.2f}x, "
          f"peak RSS {w['peak_rss_mb'] / h['peak_rss_mb']:.2f}x "
          f"(before the run: {w['import_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
