"""A multi-scene catalogue from Python, as the docs show it: ``rsseg.predict_scenes``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import rasterio
from affine import Affine
from conftest import TRANSFORM, TinyFCN, card_for, random_scene, write_scene

import rsseg
from rsseg.cli.flags import cli_message
from rsseg.errors import OptionError, RssegError
from rsseg.tiling import predict_scene


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


def test_library_errors_name_parameters_and_the_cli_names_flags(tmp_path, tiny):
    model, card = tiny
    scene = write_scene(tmp_path / "s.tif", random_scene(64, 64))
    with pytest.raises(RssegError) as err:
        predict_scene(scene, tmp_path / "m.tif", model, card, probs=scene, overwrite=True, progress=False)
    assert str(err.value) == f"{scene}: `probs` would overwrite the input {scene}"
    assert cli_message(err.value) == f"{scene}: --probs would overwrite the input {scene}"
    (tmp_path / "m.tif").write_bytes(b"")
    with pytest.raises(RssegError) as err:
        predict_scene(scene, tmp_path / "m.tif", model, card, progress=False)
    assert cli_message(err.value) == f"{tmp_path / 'm.tif'}: output exists (use --overwrite to replace it)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif", "s.tif"]


def test_window_multiple_comes_from_the_model(tmp_path):
    class Coarse(TinyFCN):
        window_multiple = 64

    model = Coarse(4)
    card = card_for(model, tile_size=128)
    scene = write_scene(tmp_path / "s.tif", random_scene(70, 100))
    with pytest.raises(OptionError, match="tile=96: must be a positive multiple of 64"):
        predict_scene(scene, tmp_path / "m.tif", model, card, tile=96, progress=False)
    report = predict_scene(scene, tmp_path / "m.tif", model, card, progress=False)
    assert report.tile == (128, 128)  # the scene's sides rounded up to 64, within the 128 tile
    assert predict_scene(scene, tmp_path / "t.tif", TinyFCN(4), card, progress=False).tile == (96, 128)
