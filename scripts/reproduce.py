"""Reproduce a paper's figure: ``rsseg prepare`` → ``rsseg train`` (the recipe config) → ``rsseg evaluate``.

    python scripts/reproduce.py --dataset vaihingen --model unetformer --data-root ~/data/Vaihingen

Vaihingen and Potsdam are scored on their whole test scenes through the tiling engine under the
ISPRS protocol (eroded reference, Clutter out of the means); UAVid on its prepared test patches
under the UAVid protocol (all classes). The measured table is printed beside the paper's and
GeoSeg's figures, with the difference, and written as JSON. The full tables need the benchmark
data and a GPU; see docs/reproduce.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rsseg.data.datasets.potsdam import POTSDAM_SPLIT
from rsseg.data.datasets.vaihingen import VAIHINGEN_SPLIT
from rsseg.data.prepare import find_files

ROOT = Path(__file__).resolve().parent.parent
DOWNLOADS = {
    "vaihingen": "https://www.isprs.org/education/benchmarks/UrbanSemLab/2d-sem-label-vaihingen.aspx",
    "potsdam": "https://www.isprs.org/education/benchmarks/UrbanSemLab/2d-sem-label-potsdam.aspx",
    "uavid": "https://uavid.nl/",
}
PROTOCOLS = {"vaihingen": "isprs", "potsdam": "isprs", "uavid": "uavid"}
#: mIoU (%): the papers' own tables, and GeoSeg's re-runs (WangLibo1995/GeoSeg README)
FIGURES = {
    ("manet", "vaihingen"): {"paper": 82.71}, ("manet", "potsdam"): {"paper": 86.95},
    ("maresunet", "vaihingen"): {"paper": 83.30}, ("abcnet", "uavid"): {"paper": 63.8},
    ("unetformer", "vaihingen"): {"GeoSeg": 82.54}, ("unetformer", "potsdam"): {"GeoSeg": 86.52},
    ("unetformer", "uavid"): {"GeoSeg": 67.63},
}


def test_scenes(dataset: str, root: Path) -> list[tuple[Path, Path]]:
    """(scene, label) of each ISPRS test tile under ``root``: the eroded label when present."""
    if dataset == "vaihingen":
        names = [(f"top_mosaic_09cm_area{a}.tif", f"top_mosaic_09cm_area{a}") for a in VAIHINGEN_SPLIT["test"]]
    else:
        names = [(f"top_potsdam_{t}_RGB.tif", f"top_potsdam_{t}_label") for t in POTSDAM_SPLIT["test"]]
    pairs = []
    for image, label in names:
        scenes = [p for p in find_files(root, image) if "gts" not in p.parent.name]
        labels = find_files(root, label + "_noBoundary.tif") or find_files(root, label + ".tif")
        if scenes and labels:
            pairs.append((scenes[0], labels[0]))
    return pairs


def rsseg(*args: str) -> None:
    """Run one ``rsseg`` command; stop with its exit status when it fails."""
    print("$ rsseg " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "rsseg.cli", *args])
    if done.returncode:
        sys.exit(done.returncode)


def report(measured: dict, dataset: str, model: str) -> dict:
    """The measured figures beside the published ones (mIoU in %, difference measured − published)."""
    miou = 100 * float(measured["protocol"]["mIoU"])
    published = FIGURES.get((model, dataset), {})
    rows = {"measured": {"mIoU": round(miou, 2), "mF1": round(100 * float(measured["protocol"]["mF1"]), 2),
                         "OA": round(100 * float(measured["protocol"]["OA"]), 2)}}
    rows.update({source: {"mIoU": value, "difference": round(miou - value, 2)} for source, value in published.items()})
    print(f"{model} on {dataset} ({measured['protocol']['name']} protocol, TTA {measured['tta']}), mIoU %")
    for source, row in rows.items():
        extra = f"  measured {row['difference']:+.2f}" if "difference" in row else ""
        print(f"  {source:<9} {row['mIoU']:6.2f}{extra}")
    return {"dataset": dataset, "model": model, "protocol": measured["protocol"]["name"], "tta": measured["tta"],
            "figures": rows, "evaluation": measured}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, choices=sorted(DOWNLOADS))
    parser.add_argument("--model", required=True, choices=sorted({m for m, _ in FIGURES}))
    parser.add_argument("--data-root", required=True, type=Path, help="the benchmark download")
    parser.add_argument("--epochs", type=int, help="train this many epochs instead of the recipe's")
    parser.add_argument("--out", type=Path, default=Path("reproduce"), help="prepared data, run and results")
    parser.add_argument("--tta", default="flip+scales", help="test-time augmentation (the recipe: flip+scales)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override passed to rsseg train (repeatable)")
    parser.add_argument("--patch", type=int, default=1024, help="rsseg prepare's patch size")
    args = parser.parse_args(argv)
    config = ROOT / "configs" / args.dataset / f"{args.model}.yaml"
    if not args.data_root.is_dir() or not any(args.data_root.iterdir()):
        print(f"{args.data_root}: no {args.dataset} download here; get it from {DOWNLOADS[args.dataset]}",
              file=sys.stderr)
        return 2
    if not config.is_file():
        print(f"{config}: no recipe for {args.model} on {args.dataset}", file=sys.stderr)
        return 2
    scenes = test_scenes(args.dataset, args.data_root) if PROTOCOLS[args.dataset] == "isprs" else []
    if PROTOCOLS[args.dataset] == "isprs" and not scenes:
        print(f"{args.data_root}: no {args.dataset} test tiles with labels; get them from {DOWNLOADS[args.dataset]}",
              file=sys.stderr)
        return 2
    data, run = args.out / "data", args.out / "run"
    args.out.mkdir(parents=True, exist_ok=True)
    if not (data / "dataset.yaml").exists():
        rsseg("prepare", args.dataset, "--src", str(args.data_root), "-o", str(data), "--patch", str(args.patch),
              "--stride", str(args.patch // 2))
    overrides = [f"train.out={run}", *([f"train.epochs={args.epochs}"] if args.epochs else []), *args.overrides]
    rsseg("train", "--config", str(config), "--data", str(data), *(a for o in overrides for a in ("--set", o)))
    result = args.out / "evaluation.json"
    where = [a for scene, label in scenes for a in ("--scene", str(scene), "--labels", str(label))] or \
        ["--data", str(data), "--split", "test"]
    rsseg("evaluate", "--checkpoint", str(run / "best.pt"), *where, "--protocol", PROTOCOLS[args.dataset],
          "--tta", args.tta, "-o", str(result), "--overwrite")
    table = report(json.loads(result.read_text()), args.dataset, args.model)
    (args.out / "reproduce.json").write_text(json.dumps(table, indent=1))
    print(f"-> {args.out / 'reproduce.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
