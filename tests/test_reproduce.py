"""scripts/reproduce.py end to end on a generated scene set laid out as the ISPRS Vaihingen download."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import write_scene

from rsseg.data.classes import ISPRS

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reproduce.py"
TINY = ["model.pretrained=false", "data.tile=64", "data.workers=0", "data.samples_per_epoch=4", "train.batch_size=2",
        "train.device=cpu", "train.amp=false", "model.decode_channels=32"]


def vaihingen_download(root: Path) -> None:
    """top/, gts_for_participants/ and gts_eroded_for_participants/ (boundaries black) for five areas."""
    for area in (1, 3, 30, 2, 4):  # train, train, the held-out validation tile, test, test
        rng = np.random.default_rng(area)
        ids = np.kron(rng.integers(0, 6, (4, 4)), np.ones((32, 32), dtype=np.int64))
        image = (np.asarray(ISPRS.colors, dtype=np.uint8)[ids].transpose(2, 0, 1) // 2
                 + rng.integers(0, 40, (3, 128, 128), dtype=np.uint8))
        full = np.asarray(ISPRS.colors, dtype=np.uint8)[ids].transpose(2, 0, 1).copy()
        eroded = full.copy()
        eroded[:, ::32, :] = 0
        eroded[:, :, ::32] = 0
        name = f"top_mosaic_09cm_area{area}"
        for folder, data, suffix in (("top", image, ""), ("gts_for_participants", full, ""),
                                     ("gts_eroded_for_participants", eroded, "_noBoundary")):
            (root / folder).mkdir(parents=True, exist_ok=True)
            write_scene(root / folder / f"{name}{suffix}.tif", data)


def reproduce(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_reproduce_prepares_trains_and_scores_the_test_scenes(tmp_path):
    src, out = tmp_path / "Vaihingen", tmp_path / "out"
    vaihingen_download(src)
    done = reproduce("--dataset", "vaihingen", "--model", "unetformer", "--data-root", str(src), "--epochs", "1",
                     "--out", str(out), "--patch", "64", *(a for o in TINY for a in ("--set", o)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = json.loads((out / "reproduce.json").read_text())
    assert table["protocol"] == "isprs" and table["tta"] == "flip+scales"
    measured, geoseg = table["figures"]["measured"], table["figures"]["GeoSeg"]
    assert geoseg["mIoU"] == 82.54 and geoseg["difference"] == round(measured["mIoU"] - 82.54, 2)
    evaluation = table["evaluation"]
    assert evaluation["eroded_reference"] == "given"  # the noBoundary files, not a computed erosion
    assert [Path(s).name for s in evaluation["scenes"]] == ["top_mosaic_09cm_area2.tif", "top_mosaic_09cm_area4.tif"]
    assert all(p.endswith("_noBoundary.tif") for p in evaluation["labels"])
    assert evaluation["pixels"] < 2 * 128 * 128  # the boundaries are not scored
    assert "GeoSeg" in done.stdout and f"{measured['mIoU']:6.2f}" in done.stdout


def test_reproduce_without_the_data_says_where_to_get_it(tmp_path):
    (tmp_path / "empty").mkdir()
    done = reproduce("--dataset", "vaihingen", "--model", "unetformer", "--data-root", str(tmp_path / "empty"))
    assert done.returncode == 2 and not (Path.cwd() / "reproduce").exists()
    assert done.stderr.count("\n") == 1 and "isprs.org" in done.stderr and "no vaihingen download" in done.stderr
