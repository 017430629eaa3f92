"""Multi-scale test-time augmentation (``--tta flip+scales``) and the existing modes unchanged."""

from __future__ import annotations

import numpy as np
import rasterio
import torch
from conftest import TinyFCN, card_for, random_scene, write_scene

from rsseg.tiling import predict_scene
from rsseg.tiling.tta import TTA_SCALES, rescale, tta_probs, tta_transforms


def test_flip_scales_views_are_flips_at_three_sizes_of_multiples_of_32():
    x = torch.rand(1, 3, 128, 96)
    views = tta_transforms("flip+scales", square=False)
    assert len(views) == 12 and TTA_SCALES == (0.75, 1.0, 1.25)
    sizes = [tuple(forward(x).shape[-2:]) for forward, _ in views]
    assert sizes == [(96, 64)] * 4 + [(128, 96)] * 4 + [(160, 128)] * 4  # 72 → 64, 120 → 128
    for forward, inverse in views[4:8]:  # the unscaled views invert exactly
        assert torch.equal(inverse(forward(x)), x)
    assert rescale(x, 1.0) is x


def test_existing_modes_stay_byte_identical():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        plain = torch.softmax(model(x), 1)
        flips = [torch.softmax(model(x.flip(d)), 1).flip(d) if d else torch.softmax(model(x), 1)
                 for d in ((), (3,), (2,), (2, 3))]
        expected = flips[0].clone()
        for p in flips[1:]:
            expected.add_(p)
        assert torch.equal(tta_probs(model, x, tta_transforms("none", True)), plain)
        assert torch.equal(tta_probs(model, x, tta_transforms("flip", True)), expected / 4)


def test_flip_scales_average_in_probability_space():
    model = torch.nn.Conv2d(3, 4, 1)  # pointwise: on a constant image every view gives the same probabilities
    x = torch.ones(1, 3, 64, 96) * torch.tensor([0.2, -0.5, 1.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = tta_probs(model, x, tta_transforms("flip+scales", square=False))
        assert probs.shape == (1, 4, 64, 96)
        assert torch.allclose(probs, torch.softmax(model(x), 1), atol=1e-6)
        views: list[torch.Tensor] = []
        ramp = torch.linspace(-2, 2, 96).expand(1, 3, 64, 96).contiguous()
        averaged = tta_probs(model, ramp, tta_transforms("flip+scales", False), views)
        by_hand = sum(torch.nn.functional.interpolate(torch.softmax(model(fwd(ramp)), 1).flip(d) if d else
                                                      torch.softmax(model(fwd(ramp)), 1), size=(64, 96),
                                                      mode="bilinear", align_corners=False)
                      for (fwd, _), d in zip(tta_transforms("flip+scales", False), [(), (3,), (2,), (2, 3)] * 3))
        assert len(views) == 12 and views[0].shape == (1, 64, 96)
        assert torch.allclose(averaged, by_hand / 12, atol=1e-6)


def test_predict_scene_with_multi_scale_tta_writes_the_mask(tmp_path):
    tta = "flip+scales"
    model = TinyFCN(4)
    card = card_for(model, tile_size=64)
    scene = write_scene(tmp_path / "scene.tif", random_scene(96, 160))
    masks = {}
    for mode in ("none", tta):
        out = tmp_path / f"{mode}.tif"
        report = predict_scene(scene, out, model, card, progress=False, tta=mode)
        with rasterio.open(out) as ds:
            masks[mode] = ds.read(1)
        calls = report.model_calls
    none_calls = predict_scene(scene, tmp_path / "again.tif", model, card, progress=False).model_calls
    assert calls == 12 * none_calls
    assert masks[tta].shape == (96, 160) and set(np.unique(masks[tta])) <= {0, 1, 2, 3}
    assert (masks[tta] == masks["none"]).mean() > 0.6  # the same model, seen at three scales
