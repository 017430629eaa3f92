"""``train.init`` / ``rsseg train --init``: start from the default or any model file; partial labels; refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import torch
from conftest import CRS, TRANSFORM, run_cli, write_scene
from shapely.geometry import box
from torch import nn

from rsseg.data.patch_dataset import PatchDataset
from rsseg.models import create_model, load_checkpoint, save_checkpoint
from rsseg.models.default import DEFAULT_MODEL
from rsseg.train import build_config
from rsseg.train.losses import SegmentationLoss
from rsseg.train.trainer import Trainer
from rsseg.train.warm_start import class_dependent

CLASSES = "background,building"


def pixel_box(col0: int, row0: int, col1: int, row1: int):
    """A polygon over pixel columns col0..col1 and rows row0..row1 of the test scenes."""
    x0, y0, res = TRANSFORM.c, TRANSFORM.f, TRANSFORM.a
    return box(x0 + col0 * res, y0 - row1 * res, x0 + col1 * res, y0 - row0 * res)


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> Path:
    """A 128² scene with red roofs; polygons label 4 roofs and 4 background areas, the rest is unlabelled."""
    root = tmp_path_factory.mktemp("init_data")
    rng = np.random.default_rng(0)
    image = rng.normal(110, 20, (3, 128, 128))
    roofs = [(8, 8, 28, 24), (70, 12, 90, 30), (20, 60, 40, 84), (80, 70, 104, 90)]
    for c0, r0, c1, r1 in roofs:
        image[:, r0:r1, c0:c1] = np.array([200, 60, 50])[:, None, None] + rng.normal(0, 10, (3, r1 - r0, c1 - c0))
    write_scene(root / "scene.tif", np.clip(image, 0, 255).astype(np.uint8))
    grounds = [(36, 4, 60, 28), (100, 4, 124, 40), (50, 40, 70, 60), (8, 96, 60, 124)]
    gpd.GeoDataFrame({"class": ["building"] * 4 + ["background"] * 4},
                     geometry=[pixel_box(*b) for b in roofs + grounds], crs=CRS).to_file(root / "labels.gpkg")
    code = subprocess.run([sys.executable, "-m", "rsseg.cli", "prepare", "generic", "--image", str(root / "scene.tif"),
                           "--labels", str(root / "labels.gpkg"), "--classes", CLASSES, "-o", str(root / "patches"),
                           "--patch", "64", "--stride", "32", "--val-fraction", "0.25"],
                          capture_output=True, text=True, timeout=120)
    assert code.returncode == 0, code.stderr
    return root / "patches"


def config(data: Path, *overrides: str):
    return build_config(None, ("model.name=unet", "train.device=cpu", "data.workers=0", *overrides),
                        {"data": {"root": str(data), "tile": 64}, "train": {"epochs": 1, "batch_size": 2}})


def test_init_with_the_same_classes_keeps_every_tensor_and_the_architecture(patches, tmp_path):
    source = create_model("test_tiny_fcn", 2, 3, seed=5)
    save_checkpoint(source, tmp_path / "tiny.pt", class_names=CLASSES.split(","), mean=[0.4] * 3, std=[0.2] * 3)
    trainer = Trainer(config(patches, f"train.init={tmp_path / 'tiny.pt'}"), tmp_path / "run", progress=False)
    assert trainer.config.model.name == "test_tiny_fcn" and trainer.config.model.kwargs == {"seed": 5}
    assert trainer.notes == ["init: the model of tiny.pt, test_tiny_fcn(seed=5), replaces the config's model section",
                             "init: kept all 10 tensors of tiny.pt"]
    for (name, value), loaded in zip(source.state_dict().items(), trainer.model.state_dict().values()):
        assert torch.equal(value, loaded), name
    assert not (tmp_path / "run").exists()  # nothing written before fit()


def test_init_default_with_other_classes_reinitialises_only_the_classifier(patches, tmp_path, capsys):
    default, card = load_checkpoint(DEFAULT_MODEL)
    trainer = Trainer(config(patches, "train.init=default"), tmp_path / "run", progress=False)
    model = trainer.model.state_dict()
    fresh = class_dependent(trainer.model)
    assert fresh == {f"{head}.1.{p}" for head in ("head", "aux_head8", "aux_head16") for p in ("weight", "bias")}
    assert all(model[name].shape[0] * 3 == default.state_dict()[name].shape[0] for name in fresh)  # 2 vs 6 classes
    with torch.no_grad():
        assert trainer.model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 64, 64)
    kept = [name for name in model if name not in fresh]
    assert all(torch.equal(model[name], default.state_dict()[name]) for name in kept)
    assert trainer.notes[-1] == (f"init: kept {len(kept)} tensors of default.pt, re-initialised the classifier for "
                                 "2 classes: background, building")
    assert trainer.config.model.name == card.arch["name"] == "abcnet"

    run = tmp_path / "cli"  # the whole run through the CLI: one epoch of fine-tuning
    code, text = run_cli(["train", "--data", str(patches), "--init", "default", "--epochs", "1", "--batch-size",
                          "2", "--tile", "64", "--workers", "0", "--device", "cpu", "--threads", "1", "-o", str(run)],
                         capsys)
    assert code == 0, text
    assert trainer.notes[-1] in text and "replaces the config's model section" in text
    tuned, tuned_card = load_checkpoint(run / "last.pt")
    assert tuned_card.arch == {**card.arch, "num_classes": 2} and tuned_card.classes.names == ("background", "building")
    assert tuned_card.extra["config"]["train"]["init"] == "default"


def test_pixels_under_no_polygon_contribute_nothing_to_the_loss(patches):
    data = PatchDataset(patches, "train")
    x, y = map(torch.stack, zip(*(data[i] for i in range(len(data)))))
    ignored = y == 255
    assert 0.2 < ignored.float().mean() < 0.9 and (y == 0).any() and (y == 1).any()  # partly labelled
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 1)  # per pixel: a pixel's image values reach only its own logits
    criterion = SegmentationLoss(255, label_smoothing=0.05, dice_weight=1.0)

    def loss_and_grad(images: torch.Tensor) -> tuple[float, torch.Tensor]:
        model.zero_grad()
        loss = criterion(model(images), y)
        loss.backward()
        return float(loss.detach()), model.weight.grad.clone()

    noise = torch.randn_like(x) * 5
    loss, grad = loss_and_grad(x)
    other_loss, other_grad = loss_and_grad(torch.where(ignored[:, None], noise, x))
    assert other_loss == loss and torch.equal(other_grad, grad)
    changed_loss, _ = loss_and_grad(torch.where(ignored[:, None], x, noise))
    assert changed_loss != loss  # the labelled pixels do count


@pytest.mark.parametrize("case", ["missing", "text", "geotiff", "bands"])
def test_bad_init_is_one_line_and_writes_nothing(patches, tmp_path, case):
    path = {"missing": tmp_path / "missing.pt", "text": tmp_path / "notes.txt", "geotiff": tmp_path / "scene.tif",
            "bands": tmp_path / "four_bands.pt"}[case]
    expected = {"missing": "model file not found", "text": "not an rsseg model file (torch.load failed",
                "geotiff": "not an rsseg model file (torch.load failed",
                "bands": f"the model reads bands [1, 2, 3, 4] of its scenes, the patches in {patches} hold bands "
                         "[1, 2, 3]"}[case]
    if case == "text":
        path.write_text("weights: none\n")
    elif case == "geotiff":
        write_scene(path, np.zeros((3, 32, 32), dtype=np.uint8))
    elif case == "bands":
        save_checkpoint(create_model("test_tiny_fcn", 2, 4), path, class_names=CLASSES.split(","))
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "rsseg.cli", "train", "--data", str(patches), "--init", str(path),
                             "--epochs", "1", "--tile", "64", "--device", "cpu", "-o", str(run), "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: --init {path}: {expected}"), result.stderr
    assert not run.exists()


def test_resume_with_init_is_refused(tmp_path, capsys):
    code, text = run_cli(["train", "--resume", str(tmp_path), "--init", "default"], capsys)
    assert code == 1 and text.strip() == f"Error: {tmp_path}: --resume continues from the run's own state; drop --init"
