"""The tiling engine and `rsseg predict`, on GeoTIFFs written and read back with rasterio."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import CRS, ConstantModel, TinyFCN, card_for, random_scene, run_cli, write_scene

from rsseg.io.mask_meta import read_class_table
from rsseg.models import save_checkpoint
from rsseg.tiling import axis_starts, predict_scene
from rsseg.tiling.blend import RowBandBlender
from rsseg.tiling.tta import tta_transforms
from rsseg.tiling.weights import blend_window


def whole_scene_classes(model: torch.nn.Module, data: np.ndarray, card) -> np.ndarray:
    """One pass over the whole scene: the reference the tiled result must match."""
    x = torch.from_numpy(data).float()[None] / card.input.scale
    x = (x - torch.tensor(card.input.mean).view(1, -1, 1, 1)) / torch.tensor(card.input.std).view(1, -1, 1, 1)
    with torch.inference_mode():
        return model.eval()(x)[0].argmax(0).numpy().astype(np.uint8)


def run(tmp_path: Path, data: np.ndarray, model, card, name: str = "scene", profile: dict | None = None, **kw):
    scene = write_scene(tmp_path / f"{name}.tif", data, nodata=kw.pop("nodata", None), **(profile or {}))
    out = tmp_path / f"{name}_mask.tif"
    report = predict_scene(scene, out, model, card, progress=False, **kw)
    with rasterio.open(out) as ds:
        return ds.read(1), report, out


def test_axis_starts_cover_and_shift_inward():
    assert axis_starts(100, 64, 32) == [0, 32, 36]
    assert axis_starts(64, 64, 32) == [0]
    assert axis_starts(10, 64, 32) == [0]
    for size in (65, 100, 129, 1000):
        starts = axis_starts(size, 64, 48)
        assert starts[-1] + 64 == size and all(b - a <= 48 for a, b in zip(starts, starts[1:]))


def test_weight_window_smooth_positive():
    w = blend_window(64, 96)
    assert w.shape == (64, 96) and float(w.min()) > 0 and float(w.max()) <= 1
    assert float(w[32, 48]) > 0.99 and float(w[0, 0]) < 1e-3 + 1e-6


def test_mask_georeference_classes_and_metadata(tmp_path, tiny):
    model, card = tiny
    labels, report, out = run(tmp_path, random_scene(200, 300), model, card)
    with rasterio.open(out) as ds, rasterio.open(tmp_path / "scene.tif") as src:
        assert ds.crs == src.crs and ds.transform == src.transform
        assert (ds.width, ds.height) == (src.width, src.height) == (300, 200)
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
        assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
        names, colors = read_class_table(ds)
        assert names == list(card.classes.names) and colors == list(card.classes.colors)
    assert labels.max() < 4
    assert report.windows == len(axis_starts(200, 64, 32)) * len(axis_starts(300, 64, 32))
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["windows"] == report.windows and record["tile"] == [64, 64]


@pytest.mark.parametrize("height,width", [(200, 300), (300, 130), (50, 40), (1, 150), (150, 1), (97, 161)])
def test_tiled_equals_whole_scene(tmp_path, tiny, height, width):
    """Non-square, smaller than a tile, 1-px strips, sizes off the stride grid."""
    model, card = tiny
    data = random_scene(max(height, 16), max(width, 16))[:, :height, :width].copy()
    labels, _, _ = run(tmp_path, data, model, card)
    reference = whole_scene_classes(model, data, card)
    agreement = float((labels == reference).mean())
    assert labels.shape == (height, width)
    assert agreement >= 0.99, agreement


@pytest.mark.parametrize("height,width,stride", [(130, 190, 32), (64, 64, 64), (100, 70, 17), (1, 90, 40)])
def test_constant_model_reproduced_exactly(tmp_path, height, width, stride):
    """Normalised weights form a partition of unity: edges and corners included."""
    model = ConstantModel(5)
    card = card_for(model, name="constant", num_classes=5, tile_size=64)
    data = random_scene(max(height, 16), max(width, 16))[:, :height, :width].copy()
    scene = write_scene(tmp_path / "c.tif", data)
    predict_scene(scene, tmp_path / "m.tif", model, card, stride=stride, probs=tmp_path / "p.tif", progress=False)
    expected = torch.softmax(model.logits.detach(), 0).numpy()
    with rasterio.open(tmp_path / "m.tif") as m, rasterio.open(tmp_path / "p.tif") as p:
        assert (m.read(1) == expected.argmax()).all()
        probs = p.read()
    target = np.rint(expected * 255).astype(np.uint8)[:, None, None]
    assert probs.shape == (5, height, width)
    assert (probs == target).all()


def test_nodata_is_255_and_costs_no_model_call(tmp_path):
    data = np.maximum(random_scene(256, 320), 1)
    data[:, :, :160] = 0  # left half: nodata
    data[:, 200:, :] = 0  # bottom band: nodata
    model = TinyFCN(4)
    card = card_for(model, tile_size=64)
    labels, report, _ = run(tmp_path, data, model, card, nodata=0, stride=64, batch_size=3)
    assert (labels[:, :160] == 255).all() and (labels[200:] == 255).all()
    assert (labels[:200, 160:] < 4).all()
    cols_valid = sum(1 for x in axis_starts(320, 64, 64) if x + 64 > 160)
    rows_valid = sum(1 for y in axis_starts(256, 64, 64) if y < 200)
    assert report.windows_run == cols_valid * rows_valid < report.windows
    assert model.calls == math.ceil(report.windows_run / 3)
    assert report.windows_skipped == report.windows - report.windows_run


def test_fully_invalid_rows_between_valid_ones(tmp_path, tiny):
    """Long runs of skipped windows between valid ones keep the band bounded and correct."""
    model, card = tiny
    data = np.maximum(random_scene(640, 128), 1)
    data[:, 40:600] = 0
    labels, report, _ = run(tmp_path, data, model, card, nodata=0, batch_size=8)
    assert (labels[40:600] == 255).all() and (labels[:40] < 4).all() and (labels[600:] < 4).all()
    assert report.windows_skipped > 0


def test_rolling_band_is_bounded_by_tile_not_scene(tmp_path, tiny, monkeypatch):
    model, card = tiny
    seen = []
    original = RowBandBlender.__init__

    def spy(self, num_classes, width, capacity, device, **kw):
        seen.append(capacity)
        original(self, num_classes, width, capacity, device, **kw)

    monkeypatch.setattr(RowBandBlender, "__init__", spy)
    run(tmp_path, random_scene(1200, 64), model, card, batch_size=2)
    assert seen and seen[0] == 64 + 32 < 1200  # window height + a stride per extra grid row in a batch


def test_band_selection(tmp_path, tiny):
    model, card = tiny
    data = random_scene(96, 96, bands=4, seed=3)
    a, _, _ = run(tmp_path, data[[2, 1, 0]].copy(), model, card, name="rgb")
    b, _, _ = run(tmp_path, data, model, card, name="four", bands=[3, 2, 1], profile={"photometric": "MINISBLACK"})
    assert (a == b).all()


def test_alpha_band_marks_invalid_pixels(tmp_path, tiny):
    model, card = tiny
    data = random_scene(96, 96, bands=4)
    data[3] = 255
    data[3, :, :30] = 0  # transparent
    labels, _, _ = run(tmp_path, data, model, card)  # 4-band uint8 GeoTIFF: RGB + alpha
    assert (labels[:, :30] == 255).all() and (labels[:, 30:] < 4).all()


def test_tta_transforms_invert_and_flip_runs_four_passes(tmp_path, tiny):
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    for mode in ("none", "flip", "d4"):
        pairs = tta_transforms(mode, square=True)
        assert len(pairs) == {"none": 1, "flip": 4, "d4": 8}[mode]
        for forward, inverse in pairs:
            assert torch.equal(inverse(forward(x)), x)
    model, card = tiny
    _, report, _ = run(tmp_path, random_scene(64, 64), model, card, tta="flip")
    assert report.model_calls == 4
    with pytest.raises(Exception, match="square"):
        run(tmp_path, random_scene(20, 200), model, card, name="strip", tile=64, tta="d4")


def test_cog_output(tmp_path, tiny):
    model, card = tiny
    _, _, out = run(tmp_path, random_scene(600, 700), model, card, cog=True)
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.overviews(1) and ds.crs.to_string() == CRS
        assert read_class_table(ds)[0] == list(card.classes.names)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_png_without_georeference_warns(tmp_path, tiny):
    model, card = tiny
    png = write_scene(tmp_path / "frame.png", random_scene(80, 120), crs=None, transform=rasterio.Affine.identity(),
                      driver="PNG")
    with pytest.warns(UserWarning, match="no georeference"):
        predict_scene(png, tmp_path / "frame_mask.tif", model, card, progress=False)
    with rasterio.open(tmp_path / "frame_mask.tif") as ds:
        assert ds.crs is None and ds.shape == (80, 120)


# ---- the command line -------------------------------------------------------------------------

@pytest.fixture
def checkpoint(tmp_path):
    model = TinyFCN(4)
    model.arch = {"name": "test_tiny_fcn", "num_classes": 4, "in_channels": 3, "kwargs": {}}
    path = tmp_path / "model.pt"
    save_checkpoint(model, path, tile_size=64, mean=[0.5] * 3, std=[0.25] * 3, class_names=list("abcd"))
    return path


def _truncated(tmp_path: Path) -> Path:
    good = write_scene(tmp_path / "good.tif", random_scene(512, 512), tiled=True, blockxsize=256, blockysize=256,
                       compress="deflate")
    raw = good.read_bytes()
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(raw[: len(raw) // 2])
    return bad


@pytest.mark.parametrize("case", ["missing", "text", "truncated", "bands", "checkpoint", "tile"])
def test_cli_bad_input_one_line_error_no_output(tmp_path, checkpoint, capsys, case):
    scene = write_scene(tmp_path / "ok.tif", random_scene(64, 64))
    ckpt = checkpoint
    extra: list[str] = []
    if case == "missing":
        scene = tmp_path / "nope.tif"
    elif case == "text":
        scene = tmp_path / "notes.tif"
        scene.write_text("this is not an image\n")
    elif case == "truncated":
        scene = _truncated(tmp_path)
    elif case == "bands":
        scene = write_scene(tmp_path / "two.tif", random_scene(64, 64, bands=2))
    elif case == "checkpoint":
        ckpt = tmp_path / "weights.pt"
        torch.save({"conv.weight": torch.zeros(3)}, ckpt)
    elif case == "tile":
        extra = ["--tile", "50"]
    out = tmp_path / "result.tif"
    before = set(tmp_path.iterdir())
    code, err = run_cli(["predict", str(scene), "-o", str(out), "--checkpoint", str(ckpt), "--quiet", *extra], capsys)
    assert code != 0
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), err
    named = ckpt.name if case == "checkpoint" else ("--tile" if case == "tile" else scene.name)
    assert named in lines[0]
    assert set(tmp_path.iterdir()) == before  # nothing written, no temporary left
