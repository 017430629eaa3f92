"""Random training crops on a real scene: the SpaceNet sample and its building footprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from rsseg.data.generic import prepare_generic
from rsseg.data.patch_dataset import PatchDataset
from rsseg.data.samplers import RandomCropDataset, mosaic
from rsseg.errors import RssegError

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> Path:
    """The real 900² SpaceNet scene with its footprints as building/background: 12 train patches of 256 px."""
    out = tmp_path_factory.mktemp("spacenet") / "patches"
    info = prepare_generic([SAMPLES / "spacenet_atlanta.tif"], [SAMPLES / "spacenet_atlanta_buildings.geojson"],
                           "background,building", out, patch=256, stride=256, val_fraction=0.4,
                           background="background", polygon_class="building").info
    assert info.counts["train"] == 12 and info.input.scale == 65535  # 540 rows × 900: 3 × 4 windows
    return out


def test_footprints_rasterise_to_buildings_on_background(patches):
    masks = [PatchDataset(patches, "train").load(i)[1] for i in range(12)]
    share = np.concatenate([m.ravel() for m in masks]).mean()
    assert set(np.unique(masks[0])) <= {0, 1} and 0.02 < share < 0.2  # 43 footprints in 450 × 450 m


def test_crops_are_windows_of_the_patches(patches):
    source = PatchDataset(patches, "train", seed=3)
    crops = RandomCropDataset(source, 128, samples_per_epoch=50, scale=(1.0, 1.0), flips=False, rot90=False)
    assert len(crops) == 50
    for index in range(6):
        image, mask = crops[index]
        patch, window, size = crops.crop(index, source.generator(index))
        assert size == 128 and image.shape == (1, 128, 128) and mask.shape == (128, 128)
        with rasterio.open(source.pairs[patch][0]) as ds:
            raw = ds.read(window=window)
        expected = (raw.astype(np.float32) / 65535 - source.info.input.mean[0]) / source.info.input.std[0]
        assert np.allclose(image.numpy(), expected, atol=1e-5)
        with rasterio.open(source.pairs[patch][1]) as ds:
            assert np.array_equal(mask.numpy(), ds.read(1, window=window))


def test_scale_jitter_epochs_and_determinism(patches):
    source = PatchDataset(patches, "train", seed=0)
    crops = RandomCropDataset(source, 64, samples_per_epoch=40, scale=(0.5, 2.0))
    sizes = {crops.crop(i, source.generator(i))[2] for i in range(40)}
    assert min(sizes) < 64 < max(sizes) and max(sizes) <= 128 and min(sizes) >= 32
    assert len({crops.crop(i, source.generator(i))[0] for i in range(40)}) >= 8  # of 12 patches
    first = [crops[i] for i in range(4)]
    again = [crops[i] for i in range(4)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    crops.set_epoch(1)
    other = [crops[i] for i in range(4)]
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))
    # a crop reaching past the patch edge is padded: image 0, mask the ignore index
    wide = RandomCropDataset(source, 64, samples_per_epoch=4, scale=(0.2, 0.2), flips=False, rot90=False)
    _, window, size = wide.crop(0, source.generator(0))
    assert size == 320 and window == Window(0, 0, 256, 256)
    assert (wide[0][1] == 255).float().mean() > 0.3


def test_default_samples_cover_the_training_area_once(patches):
    source = PatchDataset(patches, "train")
    assert len(RandomCropDataset(source, 128)) == 12 * 256 * 256 // 128 ** 2
    assert len(RandomCropDataset(source, 512)) == 12  # at least one crop per patch


def test_polygon_class_must_be_a_class(tmp_path):
    with pytest.raises(RssegError, match="polygon_class='roof': not one of the classes background, building"):
        prepare_generic([SAMPLES / "spacenet_atlanta.tif"], [SAMPLES / "spacenet_atlanta_buildings.geojson"],
                        "background,building", tmp_path / "p", polygon_class="roof")


def test_class_balanced_redraw_skips_crops_that_one_class_fills(patches):
    # the scene is mostly background: most 64 px crops are > 90 % one class
    source = PatchDataset(patches, "train", seed=1)
    plain = RandomCropDataset(source, 64, samples_per_epoch=30, scale=(1.0, 1.0), flips=False, rot90=False)
    balanced = RandomCropDataset(source, 64, samples_per_epoch=30, scale=(1.0, 1.0), flips=False, rot90=False,
                                 max_class_share=0.9)
    over = [plain.class_share(plain[i][1].numpy().astype(np.uint8)) > 0.9 for i in range(30)]
    kept = [balanced.class_share(balanced[i][1].numpy().astype(np.uint8)) > 0.9 for i in range(30)]
    assert sum(over) >= 15 and sum(kept) < sum(over) // 2
    for index in range(8):  # the item is the first draw under the limit, from the same generator
        generator = source.generator(index)
        for _ in range(11):
            patch, window, _ = balanced.crop(index, generator)
            mask = source.load(patch, window)[1]
            if balanced.class_share(mask) <= 0.9:
                break
        assert np.array_equal(balanced[index][1].numpy(), mask)
    none = RandomCropDataset(source, 64, samples_per_epoch=4, max_class_share=0.9, redraws=0)
    assert all(torch.equal(none[i][1], RandomCropDataset(source, 64, samples_per_epoch=4)[i][1]) for i in range(4))
    assert plain.class_share(np.full((4, 4), 255, np.uint8)) == 0.0


def test_mosaic_tiles_four_crops_and_labels_move_with_pixels(patches):
    crops = [(torch.full((2, 8, 8), float(k)), torch.full((8, 8), k)) for k in range(4)]
    image, mask = mosaic(crops, 3, 5)
    assert image.shape == (2, 8, 8) and mask.shape == (8, 8)
    assert mask[:3, :5].eq(0).all() and mask[:3, 5:].eq(1).all() and mask[3:, :5].eq(2).all()
    assert mask[3:, 5:].eq(3).all() and torch.equal(image[0], mask.float()) and torch.equal(image[1], mask.float())
    source = PatchDataset(patches, "train", seed=2)
    tiled = RandomCropDataset(source, 64, samples_per_epoch=20, scale=(1.0, 1.0), mosaic=1.0)
    plain = RandomCropDataset(source, 64, samples_per_epoch=20, scale=(1.0, 1.0))
    allowed = {(round(float(v), 4), int(m)) for img, msk in map(source.load, range(len(source)))
               for v, m in zip(source.normalise(img, msk)[0][0].flatten(), msk.flatten())}
    for index in range(3):
        image, mask = tiled[index]
        assert image.shape == (1, 64, 64) and mask.shape == (64, 64)
        assert not torch.equal(mask, plain[index][1]) or not torch.equal(image, plain[index][0])
        # every pixel keeps its label: the brightness of building pixels is the building's, not the ground's
        values = {(round(float(v), 4), int(m)) for v, m in zip(image[0].flatten()[::37], mask.flatten()[::37])}
        assert values <= allowed
