"""Confidence rasters of `rsseg predict --confidence`: read back and checked against the probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import torch
from conftest import CRS, TinyFCN, card_for, random_scene, run_cli, write_scene
from torch import nn

from rsseg.models import save_checkpoint
from rsseg.models.base import SegmentationModel
from rsseg.tiling import predict_scene
from rsseg.tiling.confidence import confidence_bands, view_disagreement


class PixelModel(SegmentationModel):
    """A 1×1 convolution: each pixel's logits depend on that pixel only, so flips change nothing."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * 3


class LeftRightModel(PixelModel):
    """Adds a horizontal ramp to the logits: a flipped view sees it reversed, so views disagree."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-4, 4, x.shape[-1], device=x.device)
        logits = super().forward(x)
        return logits + torch.stack([ramp, -ramp, 0 * ramp, 0 * ramp])[None, :, None, :]


def predict(tmp_path, model, tta="none", data=None, nodata=None, **kw):
    data = random_scene(150, 130) if data is None else data
    scene = write_scene(tmp_path / "scene.tif", data, nodata=nodata)
    out = {k: tmp_path / f"{k}.tif" for k in ("mask", "probs", "confidence")}
    report = predict_scene(scene, out["mask"], model, card_for(model, tile_size=64), tta=tta, probs=out["probs"],
                           confidence=out["confidence"], progress=False, **kw)
    return out, report


def test_bands_follow_the_probability_raster(tmp_path):
    model = PixelModel()
    out, report = predict(tmp_path, model, nodata=0, data=np.pad(random_scene(150, 130) | 1, ((0, 0), (0, 0), (10, 0))))
    with rasterio.open(out["mask"]) as m, rasterio.open(out["probs"]) as p, rasterio.open(out["confidence"]) as c:
        assert (c.crs, c.transform, c.shape) == (m.crs, m.transform, m.shape) and c.crs.to_string() == CRS
        assert c.count == 3 and c.dtypes == ("uint8",) * 3
        assert c.descriptions == ("top_probability", "margin", "entropy")
        assert c.tags()["RSSEG_CONFIDENCE_SCALE"] == "255"
        assert c.profile["tiled"] and c.profile["compress"] == "deflate"
        classes, probs, conf = m.read(1), p.read().astype(np.int64), c.read().astype(np.int64)
        valid = c.read_masks(1) > 0
    assert report.confidence == str(out["confidence"])
    assert (valid == (classes != 255)).all() and not valid[:, :10].any()
    top2 = np.sort(probs, axis=0)[-2:]
    assert np.abs(conf[0] - top2[1])[valid].max() <= 1  # top-class probability == max of the probabilities
    assert np.abs(conf[1] - (top2[1] - top2[0]))[valid].max() <= 2  # margin == top1 - top2
    assert (np.take_along_axis(probs, classes[None].astype(np.int64) % 4, 0)[0] == probs.max(0))[valid].all()
    p = probs / 255
    entropy = -(p * np.log(np.where(p > 0, p, 1))).sum(0) / math.log(4) * 255
    assert np.abs(conf[2] - entropy)[valid].max() <= 6  # from probabilities rounded to 1/255
    assert conf[0][valid].min() >= 255 // 4


def test_tta_disagreement_band(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    invariant, _ = predict(tmp_path / "a", PixelModel(), tta="flip")
    varying, _ = predict(tmp_path / "b", LeftRightModel(), tta="flip")
    with rasterio.open(invariant["confidence"]) as a, rasterio.open(varying["confidence"]) as b:
        assert a.count == b.count == 4 and a.descriptions[3] == "tta_disagreement"
        assert a.read(4).max() == 0  # every flipped view agrees
        disagreement = b.read(4)
    assert disagreement.max() >= 255 // 2  # horizontally flipped views vote for the other class
    assert disagreement.min() == 0


def test_confidence_maths():
    probs = torch.tensor([[1.0, 0.5, 0.25], [0.0, 0.5, 0.25], [0.0, 0.0, 0.25], [0.0, 0.0, 0.25]])[:, None]
    top, margin, entropy = confidence_bands(probs)[:, 0]
    assert top.tolist() == [1.0, 0.5, 0.25] and margin.tolist() == [1.0, 0.0, 0.0]
    assert entropy.tolist() == pytest.approx([0.0, 0.5, 1.0])
    mean = torch.tensor([[0.6, 0.4]]).view(1, 2, 1, 1)
    views = [torch.tensor([[[0]]], dtype=torch.uint8), torch.tensor([[[1]]], dtype=torch.uint8)] * 2
    assert view_disagreement(views, mean).item() == 0.5


def test_cli_confidence_atomic_and_refuses_existing(tmp_path, capsys):
    model = TinyFCN(4)
    model.arch = {"name": "test_tiny_fcn", "num_classes": 4, "in_channels": 3, "kwargs": {}}
    ckpt = tmp_path / "model.pt"
    save_checkpoint(model, ckpt, tile_size=64, mean=[0.5] * 3, std=[0.25] * 3, class_names=list("abcd"))
    scene = write_scene(tmp_path / "scene.tif", random_scene(64, 96))
    conf = tmp_path / "conf.tif"
    conf.write_bytes(b"old")
    before = set(tmp_path.iterdir())
    args = ["predict", str(scene), "-o", str(tmp_path / "m.tif"), "--checkpoint", str(ckpt), "--confidence", str(conf),
            "--tta", "flip", "--quiet"]
    code, err = run_cli(args, capsys)
    assert code == 1 and "conf.tif: output exists" in err.splitlines()[-1]
    assert set(tmp_path.iterdir()) == before and conf.read_bytes() == b"old"
    code, _ = run_cli([*args, "--overwrite"], capsys)
    assert code == 0 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with rasterio.open(conf) as ds:
        assert ds.count == 4 and ds.shape == (64, 96)


def test_failed_run_leaves_no_confidence_temporary(tmp_path):
    class Broken(PixelModel):
        calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 2:
                raise RuntimeError("boom")
            return super().forward(x)

    with pytest.raises(RuntimeError, match="boom"):
        predict(tmp_path, Broken(), data=random_scene(300, 130), batch_size=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]
