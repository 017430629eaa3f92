"""GSD-aware prediction: scene GSD in metres, the resampling plan, masks and scores read back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
from conftest import ConstantModel, TinyFCN, card_for, random_scene, run_cli, write_scene
from rasterio.transform import from_origin

from rsseg.errors import RssegError
from rsseg.models import load_checkpoint, save_checkpoint
from rsseg.models.default import DEFAULT_MODEL
from rsseg.synthetic import write_scene as write_synthetic
from rsseg.tiling import predict_scene
from rsseg.tiling.gsd import model_gsd_range, parse_gsd, plan_gsd, scene_gsd
from rsseg.train.metrics import compute_metrics


def _open(path):
    return rasterio.open(path)


@pytest.mark.parametrize("crs, pixel, metres", [
    ("EPSG:32632", 0.09, 0.09),
    ("EPSG:2263", 1.0, 0.3048006),  # New York state plane, US survey feet
    ("EPSG:4326", 1e-6, 1e-6 * np.pi / 180 * 6378137.0 * np.sqrt(np.cos(np.radians(48.0)))),
])
def test_scene_gsd_in_metres(tmp_path, crs, pixel, metres):
    origin = (8.0, 48.0 + 32 * pixel) if crs == "EPSG:4326" else (500000.0, 5400000.0)
    path = write_scene(tmp_path / "s.tif", random_scene(64, 64), crs=crs, transform=from_origin(*origin, pixel, pixel))
    with _open(path) as ds:
        assert scene_gsd(ds) == pytest.approx(metres, rel=1e-4)
    no_crs = write_scene(tmp_path / "n.tif", random_scene(64, 64), crs=None)
    with _open(no_crs) as ds:
        assert scene_gsd(ds) is None


def test_plan_resamples_only_beyond_tolerance_and_to_the_nearest_trained_gsd(tmp_path):
    model = TinyFCN(4)
    point = card_for(model, gsd=0.09)
    ranged = dataclasses.replace(point, input=dataclasses.replace(point.input, gsd=0.15),
                                 extra={"gsd_range": [0.05, 0.5]})
    assert model_gsd_range(point) == (0.09, 0.09) and model_gsd_range(ranged) == (0.05, 0.5)
    for pixel, factor_point, factor_ranged in ((0.1, 1.0, 1.0), (0.225, 2.5, 1.0), (1.0, 1 / 0.09, 2.0),
                                               (0.02, 0.02 / 0.09, 0.4)):
        path = write_scene(tmp_path / f"{pixel}.tif", random_scene(32, 32),
                           transform=from_origin(500000, 5400000, pixel, pixel))
        with _open(path) as ds:
            assert plan_gsd("auto", ds, point).factor == pytest.approx(factor_point)
            assert plan_gsd("auto", ds, ranged).factor == pytest.approx(factor_ranged)
            assert plan_gsd("native", ds, point).factor == 1.0
            assert plan_gsd(0.45, ds, point).factor == pytest.approx(5.0)
    with _open(path) as ds:
        plan = plan_gsd("auto", ds, dataclasses.replace(point, input=dataclasses.replace(point.input, gsd=None)))
    assert plan.factor == 1.0 and "records no training GSD" in plan.warning
    assert parse_gsd("auto") == "auto" and parse_gsd("0.3") == 0.3
    for bad in ("fast", "-1", "0"):
        with pytest.raises(RssegError, match="gsd"):
            parse_gsd(bad)


def test_auto_equals_native_at_the_models_own_gsd(tmp_path):
    model = TinyFCN(4)
    card = card_for(model, tile_size=64, gsd=0.09)
    scene = write_scene(tmp_path / "s.tif", random_scene(150, 230))
    masks = []
    for mode in ("auto", "native"):
        out = tmp_path / f"{mode}.tif"
        report = predict_scene(scene, out, model, card, gsd=mode, progress=False)
        assert report.gsd["factor"] == 1.0
        with _open(out) as ds:
            masks.append(ds.read(1))
    np.testing.assert_array_equal(masks[0], masks[1])


def test_resampled_windows_keep_the_scene_grid(tmp_path):
    """A scene 4x coarser than the model: windows cover the model's ground, the mask keeps the scene's grid."""
    model = ConstantModel(4)
    card = card_for(model, name="constant", tile_size=128, gsd=0.09)
    scene = write_scene(tmp_path / "s.tif", random_scene(100, 170), transform=from_origin(500000, 5400000, 0.36, 0.36))
    out = tmp_path / "m.tif"
    report = predict_scene(scene, out, model, card, probs=tmp_path / "p.tif", progress=False)
    assert report.gsd["factor"] == pytest.approx(4.0) and report.tile == (32, 32)
    with _open(out) as ds, _open(scene) as src:
        assert ds.transform == src.transform and ds.crs == src.crs and (ds.width, ds.height) == (170, 100)
        assert (ds.read(1) == int(np.argmax(model.logits.detach().numpy()))).all()
    assert "GSD 0.36 m -> 0.09 m" in report.summary_line()


def test_cli_warns_once_without_model_gsd_and_flags_an_unfamiliar_gsd(tmp_path, capsys):
    model = TinyFCN(4)
    card = card_for(model, tile_size=64, gsd=None)
    checkpoint = tmp_path / "nogsd.pt"
    save_checkpoint(model, checkpoint, classes=card.classes, input=card.input, tile_size=64)
    scene = write_scene(tmp_path / "s.tif", random_scene(64, 96))
    code, text = run_cli(["predict", str(scene), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "a.tif"),
                          "--quiet"], capsys)
    assert code == 0 and [line for line in text.splitlines() if "GSD" in line and "Warning" in line] == \
        [line for line in text.splitlines() if line.startswith("Warning")]
    assert len([line for line in text.splitlines() if line.startswith("Warning")]) == 1
    coarse = write_scene(tmp_path / "c.tif", random_scene(64, 96), transform=from_origin(500000, 5400000, 5.0, 5.0))
    save_checkpoint(model, checkpoint, classes=card.classes, input=dataclasses.replace(card.input, gsd=0.09),
                    tile_size=64)
    code, text = run_cli(["predict", str(coarse), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "b.tif"),
                          "--gsd", "native", "--quiet"], capsys)
    notes = [line for line in text.splitlines() if "looks unlike" in line]
    assert code == 0 and len(notes) == 1 and "scene GSD 5 m far from the trained 0.09 m" in notes[0]
    code, text = run_cli(["predict", str(coarse), "--checkpoint", str(checkpoint), "--gsd", "big"], capsys)
    assert code != 0 and "--gsd big" in text and "Traceback" not in text


@pytest.fixture(scope="module")
def point_model():
    """The default model with its trained GSD (0.2 m) and no range, so that only exactly 0.2 m counts as native."""
    model, card = load_checkpoint(DEFAULT_MODEL)
    return model, dataclasses.replace(card, input=dataclasses.replace(card.input, gsd=POINT_GSD), extra={})


POINT_GSD = 0.2


def _miou(mask: np.ndarray, labels: np.ndarray) -> float:
    matrix = np.bincount(labels.ravel().astype(np.int64) * 6 + mask.ravel(), minlength=36).reshape(6, 6)
    return compute_metrics(matrix, [str(i) for i in range(6)], [5])["papers"]["mIoU"]


def test_scene_at_2_5x_the_training_gsd_scores_higher_with_auto(tmp_path, point_model):
    model, card = point_model
    image, labels = tmp_path / "coarse.tif", tmp_path / "coarse_labels.tif"
    write_synthetic(image, labels, 320, 320, seed=7, gsd=2.5 * POINT_GSD, progress=False)
    with _open(labels) as ds:
        truth = ds.read(1)
    scores = {}
    for mode in ("auto", "native"):
        out = tmp_path / f"{mode}.tif"
        report = predict_scene(image, out, model, card, gsd=mode, progress=False, device="cpu")
        assert report.gsd["factor"] == pytest.approx(2.5 if mode == "auto" else 1.0)
        with _open(out) as ds:
            scores[mode] = _miou(ds.read(1), truth)
    assert scores["auto"] > scores["native"] + 0.05 and scores["auto"] > 1.25 * scores["native"], scores


def test_prepare_records_the_gsd_in_metres_or_as_given(tmp_path):
    from rsseg.data.generic import prepare_generic
    from rsseg.data.patches import read_dataset_info

    pixel = 1e-6  # degrees: 0.0745 m east-west x 0.111 m north-south at 48° N, 0.0909 m geometric mean
    tf = from_origin(8.0, 48.0 + 64 * pixel, pixel, pixel)
    image = write_scene(tmp_path / "s.tif", random_scene(64, 64), crs="EPSG:4326", transform=tf)
    labels = write_scene(tmp_path / "l.tif", np.zeros((1, 64, 64), np.uint8), crs="EPSG:4326", transform=tf)
    prepare_generic([image], [labels], "a,b", tmp_path / "p", patch=32, stride=32, val_fraction=0.5)
    assert read_dataset_info(tmp_path / "p").input.gsd == pytest.approx(0.0909, abs=2e-4)
    prepare_generic([image], [labels], "a,b", tmp_path / "q", patch=32, stride=32, val_fraction=0.5, gsd=0.3)
    assert read_dataset_info(tmp_path / "q").input.gsd == 0.3
    with pytest.raises(RssegError, match="gsd=-1.0: metres per pixel must be positive"):
        prepare_generic([image], [labels], "a,b", tmp_path / "r", patch=32, stride=32, gsd=-1.0)
