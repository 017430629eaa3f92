"""Preview PNGs: scene | overlay | legend, read decimated from GeoTIFFs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from PIL import Image

from rsseg.data.classes import ISPRS
from rsseg.errors import RssegError
from rsseg.synthetic import BUILDING, write_scene
from rsseg.viz import GAP, panel_shape, write_preview


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("viz")
    image, labels = folder / "scene.tif", folder / "labels.tif"
    write_scene(image, labels, 800, 400, seed=5, progress=False)
    return image, labels


def test_preview_panels_and_legend(scene, tmp_path):
    image, labels = scene
    out = write_preview(image, labels, tmp_path / "preview.png", max_size=200)
    png = np.asarray(Image.open(out).convert("RGB"))
    assert png.shape[0] == 100 and png.shape[1] > 2 * 200 + 2 * GAP + 50  # two 200×100 panels and a legend
    with rasterio.open(image) as ds:
        small = ds.read(out_shape=(3, 100, 200)).transpose(1, 2, 0)
    with rasterio.open(labels) as ds:
        classes = ds.read(1, out_shape=(100, 200), resampling=rasterio.enums.Resampling.nearest)
    scene_panel = png[:, :200].astype(int)
    overlay_panel = png[:, 200 + GAP:400 + GAP].astype(int)
    assert np.abs(scene_panel - small.astype(int)).mean() < 3  # the scene, decimated
    blue = classes == BUILDING
    assert blue.any()
    assert (overlay_panel[blue, 2] - scene_panel[blue, 2]).mean() > 40  # buildings tinted blue
    legend = png[:, 400 + 2 * GAP:].reshape(-1, 3)
    present = {tuple(c) for c in np.unique(legend, axis=0)}
    assert all(tuple(c) in present for c in ISPRS.colors)  # one swatch per class


def test_small_scene_is_not_enlarged_and_existing_output_refused(scene, tmp_path):
    image, labels = scene
    assert panel_shape(800, 400, 4096) == (400, 800)
    out = write_preview(image, labels, tmp_path / "p.png")
    assert Image.open(out).height == 400
    with pytest.raises(RssegError, match="output exists"):
        write_preview(image, labels, out)


def test_mask_without_class_table_is_refused(scene, tmp_path):
    image, _ = scene
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", crs="EPSG:32632",
                       transform=rasterio.transform.Affine(0.09, 0, 0, 0, -0.09, 0)) as ds:
        ds.write(np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(RssegError, match="plain.tif: class mask has no colour table"):
        write_preview(image, plain, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
