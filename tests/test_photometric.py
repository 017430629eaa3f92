"""Photometric randomisation: looks change, geometry and labels do not, reproducible per generator."""

from __future__ import annotations

import torch

from rsseg.data.photometric import Photometric

MEAN, STD = [0.4, 0.42, 0.35], [0.15, 0.14, 0.16]


def normalised_image(size: int = 64) -> torch.Tensor:
    """Left half bright, right half dark, normalised with MEAN/STD."""
    raw = torch.full((3, size, size), 0.2)
    raw[:, :, : size // 2] = 0.7
    return (raw - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def test_same_generator_same_result_and_strength_zero_is_identity():
    photometric = Photometric(MEAN, STD)
    x = normalised_image()
    results = [photometric.randomise(x, torch.Generator().manual_seed(s)) for s in (3, 3, 4)]
    assert torch.equal(results[0], results[1]) and not torch.equal(results[0], results[2])
    off = Photometric(MEAN, STD, strength=0.0).randomise(x, torch.Generator().manual_seed(3))
    assert torch.allclose(off, x, atol=1e-5)


def test_looks_vary_but_stay_in_range_and_keep_the_edge():
    photometric = Photometric(MEAN, STD)
    x = normalised_image()
    means = []
    for seed in range(40):
        y = photometric.randomise(x, torch.Generator().manual_seed(seed))
        raw = y * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
        assert y.shape == x.shape and raw.min() >= -1e-4 and raw.max() <= 1 + 1e-4
        assert raw[:, :, :24].mean() > raw[:, :, 40:].mean()  # bright half stays brighter
        means.append(raw.mean(dim=(1, 2)))
    spread = torch.stack(means).std(0)
    assert (spread > 0.03).all()  # brightness and colour balance really vary


def test_as_a_transform_it_changes_the_image_only():
    mask = torch.randint(0, 4, (64, 64))
    x = normalised_image()
    image, out_mask = Photometric(MEAN, STD)(x, mask, torch.Generator().manual_seed(0))
    assert out_mask is mask and image.shape == x.shape and not torch.equal(image, x)


def test_saturation_reaches_grey():
    """Panchromatic scenes shown as grey RGB are among the looks: some draws take colour out entirely."""
    raw = torch.tensor([0.8, 0.3, 0.1]).view(3, 1, 1).expand(3, 16, 16)
    x = (raw - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    photometric = Photometric(MEAN, STD)
    spreads = []
    for seed in range(200):
        y = photometric.randomise(x, torch.Generator().manual_seed(seed))
        out = y * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
        spreads.append(float((out.max(0).values - out.min(0).values).mean()))
    assert min(spreads) < 0.08 < max(spreads)  # the input's channels differ by 0.7
