"""Label sets: partial labels ("one of these classes") from `prepare generic --label-set` to the loss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from conftest import run_cli, write_scene

from rsseg.data.patch_dataset import PatchDataset
from rsseg.models import load_checkpoint
from rsseg.schema import ClassSchema, SchemaError
from rsseg.train.losses import SegmentationLoss

CLASSES = "road,building,grass,car"
NOT_BUILT = "9=road,grass"  # pixels known to be no building and no car


def rsseg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsseg.cli", *args], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, Path]:
    """A 96² scene: red roofs labelled building (1), the rest 9 (a label set) or unlabelled (255)."""
    root = tmp_path_factory.mktemp("label_sets")
    rng = np.random.default_rng(0)
    image = rng.normal(100, 15, (3, 96, 96))
    labels = np.full((96, 96), 9, np.uint8)
    for r, c in ((8, 8), (40, 50), (70, 20), (64, 70)):
        image[:, r:r + 16, c:c + 16] = np.array([200, 60, 50])[:, None, None]
        labels[r:r + 16, c:c + 16] = 1
    labels[:, 88:] = 255
    write_scene(root / "scene.tif", np.clip(image, 0, 255).astype(np.uint8))
    write_scene(root / "labels.tif", labels[None])
    return root / "scene.tif", root / "labels.tif"


def prepare(scene: tuple[Path, Path], out: Path, *extra: str) -> subprocess.CompletedProcess:
    return rsseg("prepare", "generic", "--image", str(scene[0]), "--labels", str(scene[1]), "--classes", CLASSES,
                 "-o", str(out), "--patch", "48", "--stride", "48", "--val-fraction", "0.25", *extra)


def test_schema_round_trip_and_refusals():
    schema = ClassSchema(("a", "b", "c"), label_sets=((7, (0, 2)),))
    assert schema.to_dict()["label_sets"] == {"7": ["a", "c"]}
    assert ClassSchema.from_dict(schema.to_dict()) == schema
    assert schema.is_label(7) and schema.is_label(2) and schema.is_label(255) and not schema.is_label(3)
    assert "label_sets" not in ClassSchema(("a", "b")).to_dict()  # cards without sets are unchanged
    for sets, problem in ((((2, (0, 1)),), "must be in 3..255"), (((255, (0, 1)),), "not the ignore index"),
                          (((7, (0,)),), "two or more"), (((7, (0, 5)),), "two or more"),
                          (((7, (0, 1)), (7, (1, 2))), "repeat")):
        with pytest.raises(SchemaError, match=problem):
            ClassSchema(("a", "b", "c"), label_sets=sets)


def test_loss_asks_only_for_some_class_of_the_set():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8)
    target = torch.randint(0, 4, (2, 8, 8))
    target[0, :3] = 255
    plain, with_sets = SegmentationLoss(255), SegmentationLoss(255, label_sets=[(9, [0, 2])])
    assert torch.equal(plain(logits, target), with_sets(logits, target))  # no set pixel: the same loss
    target[1] = 9
    swapped = logits.clone()
    swapped[1, [0, 2]] = logits[1, [2, 0]]
    assert torch.allclose(with_sets(logits, target), with_sets(swapped, target))  # which set class: free
    sure = logits.clone()
    sure[1, [0, 2]] += 20  # the set's classes take all the probability: its pixels cost (almost) nothing
    unsure = logits.clone()
    unsure[1, 1] += 20  # all on building: they cost a lot
    only_sets = SegmentationLoss(255, label_smoothing=0.0, dice_weight=0.0, label_sets=[(9, [0, 2])])
    target[0] = 255
    assert float(only_sets(sure, target)) < 1e-6 < 10 < float(only_sets(unsure, target))


def test_prepare_and_train_with_a_label_set(scene, tmp_path, capsys):
    done = prepare(scene, tmp_path / "patches", "--label-set", NOT_BUILT)
    assert done.returncode == 0, done.stderr
    info = yaml.safe_load((tmp_path / "patches" / "dataset.yaml").read_text())
    assert info["classes"]["label_sets"] == {"9": ["road", "grass"]}
    data = PatchDataset(tmp_path / "patches", "train")
    values = set(np.unique(torch.stack([data[i][1] for i in range(len(data))]).numpy()).tolist())
    assert values == {1, 9, 255}
    run = tmp_path / "run"
    code, text = run_cli(["train", "--data", str(tmp_path / "patches"), "--model", "test_tiny_fcn", "--epochs", "2",
                          "--batch-size", "2", "--tile", "48", "--workers", "0", "--device", "cpu", "-o", str(run),
                          "--quiet"], capsys)
    assert code == 0, text
    _, card = load_checkpoint(run / "last.pt")
    assert card.classes.names == tuple(CLASSES.split(",")) and card.classes.label_sets == ()  # not a model notion


@pytest.mark.parametrize("label_set, problem", [
    (None, "value 9 is not a class id (0..3) nor the ignore index 255"),
    ("2=road,grass", "--label-set 2=road,grass: label set 2: its value must be in 4..255"),
    ("9=road,roof", "--label-set '9=road,roof': expected VALUE=NAME,NAME,... with two or more of the classes"),
    ("9=road", "--label-set '9=road': expected VALUE=NAME,NAME,..."),
])
def test_bad_label_sets_are_one_line_and_write_nothing(scene, tmp_path, label_set, problem):
    done = prepare(scene, tmp_path / "patches", *(("--label-set", label_set) if label_set else ()))
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and problem in lines[0], done.stderr
    assert not (tmp_path / "patches").exists()
    with rasterio.open(scene[1]) as ds:  # the labels file is only read
        assert ds.read(1).max() == 255


def test_vector_labels_name_a_set_by_its_value(scene, tmp_path):
    """Footprints as Building and everything else "no building": `--background` and polygons may name a set."""
    import geopandas as gpd
    from conftest import CRS, TRANSFORM
    from shapely.geometry import box

    x0, y0, res = TRANSFORM.c, TRANSFORM.f, TRANSFORM.a
    roof = box(x0 + 8 * res, y0 - 24 * res, x0 + 24 * res, y0 - 8 * res)
    lawn = box(x0 + 40 * res, y0 - 30 * res, x0 + 80 * res, y0 - 4 * res)
    gpd.GeoDataFrame({"class": ["building"]}, geometry=[roof], crs=CRS).to_file(tmp_path / "roofs.gpkg")
    gpd.GeoDataFrame({"class": ["building", "9"]}, geometry=[roof, lawn], crs=CRS).to_file(tmp_path / "drawn.gpkg")
    for labels, extra, expected in (("roofs.gpkg", ("--polygon-class", "building", "--background", "9"), {1, 9}),
                                    ("drawn.gpkg", (), {1, 9, 255})):
        out = tmp_path / f"patches_{labels}"
        done = rsseg("prepare", "generic", "--image", str(scene[0]), "--labels", str(tmp_path / labels),
                     "--classes", CLASSES, "--label-set", NOT_BUILT, "-o", str(out), "--patch", "48",
                     "--stride", "48", "--val-fraction", "0.25", *extra)
        assert done.returncode == 0, done.stderr
        data = PatchDataset(out, "train")
        values = set(np.unique(torch.stack([data[i][1] for i in range(len(data))]).numpy()).tolist())
        assert values == expected, labels
    done = rsseg("prepare", "generic", "--image", str(scene[0]), "--labels", str(tmp_path / "drawn.gpkg"),
                 "--classes", CLASSES, "-o", str(tmp_path / "refused"))
    assert done.returncode == 1 and "class='9' is not one of the classes road, building, grass, car" in done.stderr
    assert not (tmp_path / "refused").exists()


def test_validation_with_only_set_pixels_picks_best_by_loss(scene, tmp_path, capsys):
    """No class pixel in the validation strip: the metric is NaN, the validation loss picks ``best.pt``."""
    with rasterio.open(scene[1]) as ds:
        labels = ds.read(1)
    labels[60:][labels[60:] == 1] = 9
    write_scene(tmp_path / "labels.tif", labels[None])
    done = prepare((scene[0], tmp_path / "labels.tif"), tmp_path / "patches", "--label-set", NOT_BUILT)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    code, text = run_cli(["train", "--data", str(tmp_path / "patches"), "--model", "test_tiny_fcn", "--epochs", "2",
                          "--batch-size", "2", "--tile", "48", "--workers", "0", "--device", "cpu", "-o", str(run)],
                         capsys)
    assert code == 0, text
    assert text.count("n/a (< 2 classes: val loss picks)") == 2 and (run / "best.pt").is_file()
    _, card = load_checkpoint(run / "best.pt")
    losses = [h["val_loss"] for h in json.loads((run / "log.json").read_text())]
    assert card.extra["epoch"] == max(i + 1 for i, v in enumerate(losses) if v == min(losses))
