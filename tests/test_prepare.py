"""`rsseg prepare` on tiny fake copies of the benchmarks' real layouts, generic scenes, bad patch folders."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from conftest import CRS, TRANSFORM, run_cli, write_scene
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import box

from rsseg.data.classes import ISPRS, UAVID
from rsseg.data.patch_dataset import PatchDataset
from rsseg.data.patches import read_dataset_info
from rsseg.errors import RssegError
from rsseg.io.geometry import axis_starts
from rsseg.io.mask_meta import read_class_table
from rsseg.schema import colors_to_index

H, W = 100, 90
UNKNOWN = (255, 204, 0)  # the "other" yellow some code uses for Car: not the ISPRS legend's


def fake_tile(seed: int, num_classes: int, bands: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """An image and blocky class ids (10×10 px blocks)."""
    rng = np.random.default_rng(seed)
    ids = np.kron(rng.integers(0, num_classes, (H // 10, W // 10)), np.ones((10, 10), dtype=np.int64))
    image = rng.integers(0, 256, (bands, H, W), dtype=np.uint8)
    return image, ids.astype(np.uint8)


def colorize(ids: np.ndarray, colors) -> np.ndarray:
    return np.asarray(colors, dtype=np.uint8)[ids].transpose(2, 0, 1).copy()


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def check_split(out: Path, split: str, stem: str, image: np.ndarray, ids: np.ndarray, stride: int, patch: int = 64):
    """Every patch of a tile is on disk, exactly equal to its window, georeferenced like the source."""
    starts = [(y, x) for y in axis_starts(H, patch, stride) for x in axis_starts(W, patch, stride)]
    for y, x in starts:
        img, mask = out / split / "images" / f"{stem}_{y}_{x}.tif", out / split / "masks" / f"{stem}_{y}_{x}.tif"
        np.testing.assert_array_equal(read(img), image[:, y:y + patch, x:x + patch])
        np.testing.assert_array_equal(read(mask)[0], ids[y:y + patch, x:x + patch])
        with rasterio.open(mask) as ds:
            assert ds.transform == window_transform(Window(x, y, patch, patch), TRANSFORM)
            assert ds.nodata == 255 and read_class_table(ds)[0] == list(ISPRS.names if split else UAVID.names)
    return len(starts)


def test_colors_to_index_exact_match_unknown_counted():
    ids = np.array([[0, 1], [5, 4]])
    rgb = colorize(ids, ISPRS.colors)
    rgb[:, 1, 1] = UNKNOWN
    rgb[:, 0, 0] = 0  # boundary black of eroded labels: ignored, not "unknown"
    out, unknown = colors_to_index(rgb, ISPRS.colors, boundary=(0, 0, 0))
    assert out.tolist() == [[255, 1], [5, 255]]
    assert unknown == {UNKNOWN: 1}


def test_prepare_vaihingen_layout(tmp_path, capsys):
    src = tmp_path / "Vaihingen"
    tiles = {1: "train", 30: "val", 2: "test"}
    expected = {}
    for area, split in tiles.items():
        image, ids = fake_tile(area, 6)
        name = f"top_mosaic_09cm_area{area}"
        (src / "top").mkdir(parents=True, exist_ok=True)
        write_scene(src / "top" / f"{name}.tif", image)
        full = colorize(ids, ISPRS.colors)
        if area == 1:
            full[:, 3, 4] = UNKNOWN
            ids = ids.copy()
            ids[3, 4] = 255
        (src / "gts_for_participants").mkdir(exist_ok=True)
        write_scene(src / "gts_for_participants" / f"{name}.tif", full)
        if split == "test":
            eroded = full.copy()
            eroded[:, :, 45] = 0  # a boundary line
            ids = ids.copy()
            ids[:, 45] = 255
            (src / "gts_eroded_for_participants").mkdir(exist_ok=True)
            write_scene(src / "gts_eroded_for_participants" / f"{name}_noBoundary.tif", eroded)
        expected[area] = (image, ids)
    out = tmp_path / "patches"
    code, text = run_cli(["prepare", "vaihingen", "--src", str(src), "-o", str(out), "--patch", "64",
                          "--stride", "32"], capsys)
    assert code == 0, text
    counts = {split: check_split(out, split, f"top_mosaic_09cm_area{area}", *expected[area],
                                 stride=64 if split == "test" else 32) for area, split in tiles.items()}
    assert counts == {"train": 6, "val": 6, "test": 4}
    assert "1 label pixels of unknown colours set to ignore 255 ((255, 204, 0)×1)" in text
    assert "test labels: 1 eroded (noBoundary), 0 full" in text and "do not compare" not in text
    info = read_dataset_info(out)
    assert info.counts == counts and info.classes == ISPRS and info.input.gsd == 0.09
    train_image = expected[1][0].reshape(3, -1) / 255.0
    np.testing.assert_allclose(info.input.mean, train_image.mean(1), atol=1e-6)
    np.testing.assert_allclose(info.input.std, train_image.std(1), atol=1e-5)
    code, text = run_cli(["prepare", "vaihingen", "--src", str(src), "-o", str(out)], capsys)
    assert code == 1 and "patch folder exists" in text


def test_prepare_potsdam_split_and_faulty_tile(tmp_path, capsys):
    src = tmp_path / "Potsdam"
    for tile in ("2_11", "2_10", "2_13", "7_10"):
        image, ids = fake_tile(7, 6)
        (src / "2_Ortho_RGB").mkdir(parents=True, exist_ok=True)
        (src / "5_Labels_all").mkdir(exist_ok=True)
        write_scene(src / "2_Ortho_RGB" / f"top_potsdam_{tile}_RGB.tif", image)
        write_scene(src / "5_Labels_all" / f"top_potsdam_{tile}_label.tif", colorize(ids, ISPRS.colors))
    out = tmp_path / "potsdam"
    code, text = run_cli(["prepare", "potsdam", "--src", str(src), "-o", str(out), "--patch", "64",
                          "--stride", "32"], capsys)
    assert code == 0, text
    assert "test labels: 0 eroded (noBoundary), 1 full (scores on full labels do not compare" in text
    info = read_dataset_info(out)
    assert info.counts == {"train": 6, "val": 6, "test": 4} and info.name == "potsdam-rgb"
    assert sorted({p.name.rsplit("_", 2)[0] for p in (out / "train" / "images").iterdir()}) == ["top_potsdam_2_11"]
    assert not list(out.rglob("top_potsdam_7_10*"))
    code, text = run_cli(["prepare", "potsdam", "--src", str(src), "-o", str(tmp_path / "irrg"),
                          "--variant", "IRRG"], capsys)
    assert code == 1 and "3_Ortho_IRRG/top_potsdam_X_Y_IRRG.tif" in text


def test_prepare_uavid_png_frames(tmp_path, capsys):
    src = tmp_path / "UAVid"
    expected = {}
    for split, seq in (("train", "seq1"), ("val", "seq16"), ("test", "seq21")):
        image, ids = fake_tile(3, 8)
        frames = src / f"uavid_{split}" / seq
        (frames / "Images").mkdir(parents=True)
        write_scene(frames / "Images" / "000000.png", image, crs=None, transform=None, driver="PNG")
        if split != "test":  # UAVid's test labels are not public
            (frames / "Labels").mkdir()
            write_scene(frames / "Labels" / "000000.png", colorize(ids, UAVID.colors), crs=None, transform=None,
                        driver="PNG")
        expected[split] = (f"{seq}_000000", image, ids)
    out = tmp_path / "uavid"
    code, text = run_cli(["prepare", "uavid", "--src", str(src), "-o", str(out), "--patch", "64",
                          "--stride", "32"], capsys)
    assert code == 0, text
    assert "uavid_test/seq21/Labels/000000.png; skipped" in text
    info = read_dataset_info(out)
    assert info.counts == {"train": 6, "val": 6, "test": 0} and info.classes == UAVID
    stem, image, ids = expected["train"]
    patch = read(out / "train" / "masks" / f"{stem}_36_26.tif")[0]
    np.testing.assert_array_equal(patch, ids[36:, 26:])
    assert (ids == 7).any() and 255 not in patch  # black is UAVid's Clutter class, not "unknown"


def test_prepare_generic_vector_labels_reprojected(tmp_path, capsys):
    image = np.random.default_rng(0).integers(0, 256, (4, 120, 100), dtype=np.uint8)
    scene = write_scene(tmp_path / "scene.tif", image)
    x0, y0, res = TRANSFORM.c, TRANSFORM.f, TRANSFORM.a
    polygons = gpd.GeoDataFrame(
        {"kind": ["Building", "Road", "2"]},
        geometry=[box(x0 + 10 * res, y0 - 40 * res, x0 + 50 * res, y0 - 10 * res),
                  box(x0 + 60 * res, y0 - 110 * res, x0 + 90 * res, y0 - 20 * res),
                  box(x0, y0 - 118 * res, x0 + 40 * res, y0 - 70 * res)], crs=CRS).to_crs("EPSG:4326")
    polygons.to_file(tmp_path / "labels.gpkg")
    out = tmp_path / "generic"
    code, text = run_cli(["prepare", "generic", "--image", str(scene), "--labels", str(tmp_path / "labels.gpkg"),
                          "--classes", "Building,Road,Water", "--class-field", "kind", "--bands", "3,1,2",
                          "-o", str(out), "--patch", "64", "--stride", "32", "--val-fraction", "0.25"], capsys)
    assert code == 0, text
    info = read_dataset_info(out)
    assert info.input.bands == (3, 1, 2) and info.classes.names == ("Building", "Road", "Water")
    assert info.counts["train"] == 6 and info.counts["val"] == 3  # 90 train rows, 30 val rows
    mask = read(out / "train" / "masks" / "scene_r0_0_0.tif")[0]
    assert (mask[12:38, 12:48] == 0).all() and (mask[22:60, 62:64] == 1).all() and mask[5, 5] == 255
    np.testing.assert_array_equal(read(out / "train" / "images" / "scene_r0_0_0.tif"), image[[2, 0, 1], :64, :64])
    val = read(out / "val" / "masks" / "scene_r90_0_36.tif")[0]  # rows 90..119, columns 36..99
    assert (val[:18, 28:52] == 1).all() and (val[:, :2] == 2)[:26].all()
    with rasterio.open(out / "val" / "masks" / "scene_r90_0_36.tif") as ds:
        assert ds.transform == window_transform(Window(36, 90, 64, 30), TRANSFORM)
    bad = polygons.assign(kind=["Building", "Lake", "Road"])
    bad.to_file(tmp_path / "bad.gpkg")
    code, text = run_cli(["prepare", "generic", "--image", str(scene), "--labels", str(tmp_path / "bad.gpkg"),
                          "--classes", "Building,Road,Water", "--class-field", "kind", "-o",
                          str(tmp_path / "g2")], capsys)
    assert code == 1 and "bad.gpkg: kind='Lake' is not one of the classes" in text


def test_prepare_generic_raster_labels_palette_and_bad_values(tmp_path, capsys):
    image, ids = fake_tile(5, 6)
    scene = write_scene(tmp_path / "scene.tif", image)
    colours = write_scene(tmp_path / "colours.tif", colorize(ids, ISPRS.colors))
    out = tmp_path / "g"
    code, text = run_cli(["prepare", "generic", "--image", str(scene), "--labels", str(colours), "--classes", "isprs",
                          "--palette", "isprs", "-o", str(out), "--patch", "64", "--stride", "32",
                          "--val-fraction", "0.3"], capsys)
    assert code == 0, text
    np.testing.assert_array_equal(read(out / "train" / "masks" / "scene_r0_0_0.tif")[0], ids[:64, :64])
    index = ids.copy()
    index[50, 50] = 9
    labels = write_scene(tmp_path / "index.tif", index[None])
    code, text = run_cli(["prepare", "generic", "--image", str(scene), "--labels", str(labels), "--classes", "isprs",
                          "-o", str(tmp_path / "g3")], capsys)
    assert code == 1 and text.strip() == f"Error: {labels}: value 9 is not a class id (0..5) nor the ignore index 255"


@pytest.fixture
def small_folder(tmp_path, capsys):
    image, ids = fake_tile(11, 6)
    scene = write_scene(tmp_path / "scene.tif", image)
    labels = write_scene(tmp_path / "labels.tif", ids[None])
    out = tmp_path / "folder"
    code, text = run_cli(["prepare", "generic", "--image", str(scene), "--labels", str(labels), "--classes", "isprs",
                          "-o", str(out), "--patch", "32", "--stride", "32"], capsys)
    assert code == 0, text
    return out


def test_patch_dataset_items_normalised(small_folder):
    info = read_dataset_info(small_folder)
    ds = PatchDataset(small_folder, "train")
    x, y = ds[0]
    raw = read(ds.pairs[0][0]).astype(np.float32) / 255.0
    expected = (raw - np.array(info.input.mean)[:, None, None]) / np.array(info.input.std)[:, None, None]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y.numpy(), read(ds.pairs[0][1])[0])


def test_patch_dataset_bad_inputs_name_the_file(small_folder):
    ds = PatchDataset(small_folder, "train")
    image_path, mask_path = ds.pairs[0]
    write_scene(mask_path, np.zeros((1, 16, 32), dtype=np.uint8))
    with pytest.raises(RssegError, match=f"{mask_path}: mask is 1×16×32 .* image {image_path.name} is 32×32"):
        ds[0]
    write_scene(mask_path, np.full((1, 32, 32), 7, dtype=np.uint8))
    with pytest.raises(RssegError, match=f"{mask_path}: value 7 is not a class id"):
        ds[0]
    image_path.write_bytes(b"not a tiff")
    with pytest.raises(RssegError, match=f"{image_path}: not a raster GDAL can read"):
        ds[0]
    for p in (small_folder / "val" / "images").iterdir():
        p.unlink()
    with pytest.raises(RssegError, match=f"{small_folder / 'val' / 'images'}: split 'val' is empty"):
        PatchDataset(small_folder, "val")
    with pytest.raises(RssegError, match="split 'test' has no images folder"):
        PatchDataset(small_folder, "test")


def test_pad_collate_pads_to_model_multiple_with_ignore():
    from rsseg.data.patch_dataset import pad_collate

    batch = [(torch.ones(3, 102, 256), torch.zeros(102, 256, dtype=torch.long)),
             (torch.ones(3, 64, 70), torch.ones(64, 70, dtype=torch.long))]
    images, masks = pad_collate(batch)
    assert images.shape == (2, 3, 128, 256) and masks.shape == (2, 128, 256)
    assert (masks[0, 102:] == 255).all() and (masks[0, :102] == 0).all()
    assert (images[1, :, 64:] == 0).all() and (masks[1, :64, :70] == 1).all() and (masks[1, :, 70:] == 255).all()
