"""A multi-scene catalogue from Python, as the docs show it: ``rsseg.predict_scenes``."""

from __future__ import annotations

import json
import subprocess
import sys

import rasterio
from affine import Affine
from conftest import TRANSFORM, random_scene, write_scene

import rsseg


def test_import_rsseg_stays_light():
    code = "import sys, rsseg; assert 'torch' not in sys.modules; rsseg.predict_scenes; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_catalogue_of_two_scenes_from_python(tmp_path, tiny):
    model, card = tiny
    data = random_scene(128, 192, seed=8)
    scenes = [write_scene(tmp_path / f"tile_{c}.tif", data[:, :, c * 96:(c + 1) * 96].copy(),
                          transform=TRANSFORM * Affine.translation(c * 96, 0)) for c in range(2)]
    broken = tmp_path / "broken.tif"
    broken.write_text("not a raster")
    seen = []

    report = rsseg.predict_scenes([*scenes, broken], tmp_path / "out", model, card, outputs=["probs"],
                                  on_scene=seen.append, tile=64, progress=False, threads=1)

    out = tmp_path / "out"
    assert [r.scene for r in seen] == [*scenes, broken]
    assert [e["status"] for e in report.entries] == ["done", "done", "failed"]
    assert "broken.tif" in report.failed[0]["error"] and "Traceback" not in report.failed[0]["error"]
    assert [r.tile for r in report.reports] == [(64, 64)] * 2
    assert report.mosaics == {"mask": out / "mosaic.vrt", "probs": out / "mosaic_probs.vrt"}
    assert report.summary_line().startswith("3 scenes: 2 done, 1 failed")
    for c in range(len(scenes)):
        with rasterio.open(out / f"tile_{c}_mask.tif") as ds:
            mask = ds.read(1)
            assert ds.crs == "EPSG:32632" and ds.transform == TRANSFORM * Affine.translation(c * 96, 0)
            assert mask.shape == (128, 96) and set(mask.ravel()) <= set(range(4))
        with rasterio.open(out / "mosaic.vrt") as vrt:
            assert (vrt.read(1)[:, c * 96:(c + 1) * 96] == mask).all()
    catalog = json.loads((out / "catalog.json").read_text())
    assert catalog["mosaic"] == str(out / "mosaic.vrt") and len(catalog["scenes"]) == 3
