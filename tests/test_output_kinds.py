"""An output kind defined here, registered and nothing else: it passes through resume, ranks, COG and catalogues."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import TRANSFORM, random_scene, run_cli, write_scene

from rsseg.distributed import DistEnv
from rsseg.io.mask_writer import quantize_probs
from rsseg.io.qgis_style import stretch_qml
from rsseg.tiling import OUTPUT_KINDS, OutputKind, predict_scene
from rsseg.tiling.catalogue import predict_scenes
from rsseg.tiling.journal import BandJournal, partial_dir

TOP = OutputKind("top", "_top.tif", bands=lambda names, tta: ["top_probability"],
                 compute=lambda rows: rows.probs.amax(0, keepdim=True), quantize=quantize_probs,
                 style=lambda names, colors: stretch_qml(), tags={"TEST_TOP_SCALE": "255"})
KW = dict(progress=False, band_rows=64, batch_size=3, threads=1)


class Killed(BaseException):
    """Stands in for a signal: not an Exception, so the journal is kept."""


@pytest.fixture(autouse=True)
def top_kind(monkeypatch):
    monkeypatch.setitem(OUTPUT_KINDS, TOP.name, TOP)


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.descriptions, ds.tags(), ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")


def test_new_kind_written_as_cog_and_resumed_byte_identical(tmp_path, tiny, monkeypatch):
    model, card = tiny
    scene = write_scene(tmp_path / "s.tif", random_scene(300, 150))
    ref = predict_scene(scene, tmp_path / "ref.tif", model, card, probs=tmp_path / "ref_p.tif",
                        outputs={"top": tmp_path / "ref_top.tif"}, cog=True, **KW)
    assert ref.outputs == {"probs": str(tmp_path / "ref_p.tif"), "top": str(tmp_path / "ref_top.tif")}
    top, descriptions, tags, layout = read(tmp_path / "ref_top.tif")
    probs = read(tmp_path / "ref_p.tif")[0]
    assert top.shape == (1, 300, 150) and descriptions == ("top_probability",) and layout == "COG"
    assert tags["TEST_TOP_SCALE"] == "255" and (tmp_path / "ref_top.qml").read_text() == stretch_qml()
    assert (top[0] == probs.max(0)).all() and top.min() > 255 // 4  # the top of 4 probabilities is >= 1/4

    out, top_path = tmp_path / "m.tif", tmp_path / "top.tif"
    saves = []

    def killing_save(self, band, arrays):
        if saves:
            raise Killed
        assert sorted(arrays) == ["mask", "top"] and arrays["top"].dtype == np.uint8
        saves.append(original(self, band, arrays))

    original = BandJournal.save
    with monkeypatch.context() as m:
        m.setattr(BandJournal, "save", killing_save)
        with pytest.raises(Killed):
            predict_scene(scene, out, model, card, outputs={"top": top_path}, cog=True, **KW)
    assert not top_path.exists() and len(list(partial_dir(out).glob("rows-*.npz"))) == 1
    report = predict_scene(scene, out, model, card, outputs={"top": top_path}, cog=True, **KW)
    assert report.resumed_row == 64
    assert top_path.read_bytes() == (tmp_path / "ref_top.tif").read_bytes()
    assert out.read_bytes() == (tmp_path / "ref.tif").read_bytes()


def test_new_kind_from_two_ranks_byte_identical(tmp_path, tiny, monkeypatch):
    """Ranks simulated in one process: rank 0 computes its bands and stops where it would wait for
    rank 1, rank 1 computes the others, then rank 0 assembles every band."""
    model, card = tiny
    scene = write_scene(tmp_path / "s.tif", random_scene(300, 150, seed=3))
    predict_scene(scene, tmp_path / "ref.tif", model, card, outputs={"top": tmp_path / "ref_top.tif"}, **KW)
    out, top = tmp_path / "m.tif", tmp_path / "top.tif"

    def stop(*args, **kw):
        raise Killed
    with monkeypatch.context() as m:
        m.setattr("rsseg.tiling.run.write_outputs", stop)
        with pytest.raises(Killed):
            predict_scene(scene, out, model, card, outputs={"top": top}, split=DistEnv(0, 2), **KW)
    assert len(list(partial_dir(out).glob("rows-*.npz"))) == 2  # bands 0-1 of 5
    predict_scene(scene, out, model, card, outputs={"top": top}, split=DistEnv(1, 2), **KW)
    assert not top.exists() and len(list(partial_dir(out).glob("rows-*.npz"))) == 5
    report = predict_scene(scene, out, model, card, outputs={"top": top}, split=DistEnv(0, 2), **KW)
    assert report.resumed_row == 0 and report.windows_run == 0  # rank 0's bands were done: it only assembles
    assert top.read_bytes() == (tmp_path / "ref_top.tif").read_bytes()
    assert out.read_bytes() == (tmp_path / "ref.tif").read_bytes()


def test_new_kind_in_a_catalogue_with_its_mosaic(tmp_path, tiny):
    model, card = tiny
    data = random_scene(96, 160, seed=4)
    scenes = [write_scene(tmp_path / f"t{c}.tif", data[:, :, c * 80:(c + 1) * 80].copy(),
                          transform=TRANSFORM * Affine.translation(c * 80, 0)) for c in range(2)]
    report = predict_scenes(scenes, tmp_path / "out", model, card, outputs=("top", "confidence"), **KW)
    out = tmp_path / "out"
    assert not report.failed and len(report.reports) == 2
    assert set(report.mosaics) == {"mask", "confidence", "top"}
    entries = json.loads((out / "catalog.json").read_text())["scenes"]
    assert [e["top"] for e in entries] == [str(out / "t0_top.tif"), str(out / "t1_top.tif")]
    assert [e["probs"] for e in entries] == [None, None]
    with rasterio.open(out / "mosaic_top.vrt") as vrt:
        mosaic = vrt.read(1)
    assert mosaic.shape == (96, 160)
    for c in range(len(scenes)):
        assert (mosaic[:, c * 80:(c + 1) * 80] == read(out / f"t{c}_top.tif")[0][0]).all()
    with rasterio.open(out / "mosaic_confidence.vrt") as vrt:
        assert vrt.count == 3 and vrt.shape == (96, 160)


def test_confidence_is_in_the_early_output_check(tmp_path, capsys):
    scene = write_scene(tmp_path / "s.tif", random_scene(64, 64))
    code, text = run_cli(["predict", str(scene), "-o", str(tmp_path / "m.tif"), "--confidence", str(scene)], capsys)
    assert code == 1 and f"{scene}: --confidence would overwrite the input {scene}" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]
