"""The synthetic scene generator: deterministic, georeferenced, realistic enough, windowed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from rsseg.data.classes import ISPRS
from rsseg.errors import RssegError
from rsseg.io.mask_meta import read_class_table
from rsseg.synthetic import (
    BUILDING,
    CAR,
    CLUTTER,
    CRS,
    GSD,
    IMSURF,
    LOWVEG,
    ORIGIN,
    TREE,
    iter_blocks,
    plan_scene,
    render_window,
    write_scene,
)


def _load_make_samples():
    path = Path(__file__).resolve().parent.parent / "scripts" / "make_samples.py"
    spec = importlib.util.spec_from_file_location("make_samples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_samples = _load_make_samples()


def read(path):
    with rasterio.open(path) as ds:
        return ds.read()


@pytest.fixture(scope="module")
def scene_1024(tmp_path_factory):
    """One 1024² RGB scene and its labels, written once for the module."""
    folder = tmp_path_factory.mktemp("scene")
    image, labels = folder / "scene.tif", folder / "labels.tif"
    write_scene(image, labels, 1024, 1024, seed=5, progress=False)
    return image, labels


def test_same_seed_same_bytes_other_seed_other_scene(tmp_path):
    paths = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        paths.append((tmp_path / f"{name}.tif", tmp_path / f"{name}_labels.tif"))
        write_scene(*paths[-1], 600, 300, seed=seed, progress=False)
    (a, a_lab), (b, b_lab), (c, c_lab) = paths
    assert a.read_bytes() == b.read_bytes() and a_lab.read_bytes() == b_lab.read_bytes()
    assert not np.array_equal(read(a), read(c))
    assert (read(a_lab) != read(c_lab)).mean() > 0.2


def test_georeference_tiling_and_class_table(scene_1024):
    image, labels = scene_1024
    for path, count in ((image, 3), (labels, 1)):
        with rasterio.open(path) as ds:
            assert ds.crs == rasterio.crs.CRS.from_string(CRS) and ds.crs.is_projected
            assert ds.res == pytest.approx((GSD, GSD))
            assert (ds.bounds.left, ds.bounds.top) == pytest.approx(ORIGIN)
            assert (ds.width, ds.height, ds.count, ds.dtypes[0]) == (1024, 1024, count, "uint8")
            assert ds.block_shapes[0] == (512, 512) and ds.compression is not None
    with rasterio.open(labels) as ds:
        names, colors = read_class_table(ds)
        assert ds.nodata == 255
    assert names == list(ISPRS.names) and colors == list(ISPRS.colors)


def test_all_six_classes_in_plausible_proportions(scene_1024):
    image, labels = scene_1024
    share = np.bincount(read(labels).ravel(), minlength=256)[:6] / 1024 ** 2
    assert share.sum() == pytest.approx(1.0)  # no other values
    assert 0.10 < share[IMSURF] < 0.55 and 0.05 < share[BUILDING] < 0.45
    assert 0.10 < share[LOWVEG] < 0.60 and 0.03 < share[TREE] < 0.45
    assert 0.002 < share[CAR] < 0.06 and 0.001 < share[CLUTTER] < 0.06


def test_classes_look_like_their_material(scene_1024):
    """Vegetation is green, impervious surfaces are grey: what a model must learn to transfer."""
    image, labels = scene_1024
    rgb, lab = read(image).astype(float), read(labels)[0]
    mean = {c: rgb[:, lab == c].mean(axis=1) for c in (IMSURF, LOWVEG, TREE)}
    for veg in (LOWVEG, TREE):
        assert mean[veg][1] > mean[veg][0] + 10 and mean[veg][1] > mean[veg][2] + 20
    assert np.ptp(mean[IMSURF]) < 15  # grey: R, G, B within a few levels
    assert mean[TREE].sum() < mean[LOWVEG].sum()  # crowns darker than lawns


def test_irrg_shares_red_and_green_with_rgb_and_vegetation_is_bright_in_nir():
    plan = plan_scene(400, 300, seed=8)
    window = Window(0, 0, 400, 300)
    rgb, lab = render_window(plan, window, "RGB")
    irrg, lab2 = render_window(plan, window, "IRRG")
    np.testing.assert_array_equal(lab, lab2)
    np.testing.assert_array_equal(irrg[1:], rgb[:2])
    nir, red = irrg[0].astype(float), irrg[1].astype(float)
    veg, grey = np.isin(lab, (LOWVEG, TREE)), lab == IMSURF
    assert veg.any() and grey.any()
    assert (nir - red)[veg].mean() > 60 and abs((nir - red)[grey].mean()) < 15


def test_any_window_renders_as_the_same_crop_of_the_whole_scene():
    plan = plan_scene(700, 300, seed=11)  # non-square, not a multiple of the 512 block
    img = np.concatenate([b[1] for b in iter_blocks(plan)], axis=1)
    lab = np.concatenate([b[2] for b in iter_blocks(plan)], axis=0)
    assert img.shape == (3, 300, 700) and lab.shape == (300, 700)
    for col, row, w, h in ((0, 0, 700, 300), (123, 45, 401, 199), (690, 290, 10, 10)):
        part, part_lab = render_window(plan, Window(col, row, w, h))
        np.testing.assert_array_equal(part, img[:, row:row + h, col:col + w])
        np.testing.assert_array_equal(part_lab, lab[row:row + h, col:col + w])


def test_plan_is_cheap_and_local():
    """A huge scene's plan holds objects only, and each 512 block sees only its neighbourhood."""
    plan = plan_scene(8192, 8192, seed=1)
    assert len(plan.prims) > 5_000
    per_block = [len(v) for v in plan.buckets.values()]
    assert len(per_block) == 16 * 16 and max(per_block) < len(plan.prims) / 20


def test_bad_size_and_existing_output_are_refused(tmp_path):
    with pytest.raises(RssegError, match="must be positive"):
        plan_scene(0, 10)
    out = tmp_path / "scene.tif"
    write_scene(out, None, 64, 48, progress=False)
    with pytest.raises(RssegError, match="output exists"):
        write_scene(out, None, 64, 48, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_make_samples_cli(tmp_path, capsys):
    image, labels = tmp_path / "s.tif", tmp_path / "s_labels.tif"
    assert make_samples.main(["--width", "300", "--height", "200", "--seed", "2", "--bands", "IRRG",
                              "--compress", "jpeg", "--out-image", str(image), "--out-labels", str(labels)]) == 0
    assert "300x200 IRRG, seed 2" in capsys.readouterr().out
    with rasterio.open(image) as ds:
        assert ds.compression.name.lower() == "jpeg" and ds.descriptions == ("nir", "red", "green")
    assert make_samples.main(["--out-image", str(image)]) == 1
    assert "output exists" in capsys.readouterr().err


def test_committed_demo_scene_matches_the_generator():
    """data_samples/demo_*.tif are what ``make_samples.py --samples`` writes (labels are lossless)."""
    DEMO, SAMPLES = make_samples.DEMO, make_samples.SAMPLES
    with rasterio.open(SAMPLES / "demo_labels.tif") as ds:
        committed = ds.read(1, window=Window(512, 1024, 512, 512))
    _, fresh = render_window(plan_scene(DEMO["width"], DEMO["height"], DEMO["seed"]), Window(512, 1024, 512, 512))
    np.testing.assert_array_equal(committed, fresh)
    with rasterio.open(SAMPLES / "demo_scene.tif") as ds:
        assert (ds.width, ds.height, ds.compression.name.lower(), ds.photometric.name.lower()) == \
            (2048, 2048, "jpeg", "ycbcr")


def test_rural_scenes_are_mostly_vegetation_and_ground():
    plan = plan_scene(768, 768, seed=6, landscape="rural")
    img, lab = render_window(plan, Window(0, 0, 768, 768))
    share = np.bincount(lab.ravel(), minlength=6)[:6] / lab.size
    assert share[LOWVEG] + share[TREE] > 0.85 and share[TREE] > 0.05
    assert share[BUILDING] < 0.05 and share[CAR] < 0.01
    grass_only = render_window(plan_scene(768, 768, seed=6), Window(0, 0, 768, 768))[0]
    assert not np.array_equal(img, grass_only)  # another landscape, not the urban plan
    with pytest.raises(RssegError, match="landscape"):
        plan_scene(10, 10, landscape="desert")


@pytest.mark.parametrize("landscape", ["suburban", "industrial"])
def test_district_scenes_have_real_roofs_cars_and_ground(tmp_path, landscape):
    """Suburban / industrial: roofs of tiles, metal, gravel or concrete; real-size cars; deterministic files."""
    from rsseg.synthetic.materials import MATERIAL_IDS, REAL_CAR_COLORS

    plan = plan_scene(4000, 4000, seed=3, landscape=landscape)
    roofs = {p.material for p in plan.prims if p.kind == "roof"}
    assert roofs <= {"tiles", "metal", "gravel", "concrete"} and len(roofs) >= 3
    cars = [p for p in plan.prims if p.kind == "car"]
    assert cars and all(p.color in REAL_CAR_COLORS for p in cars)
    sizes = np.sort([[abs(p.box[2] - p.box[0]), abs(p.box[3] - p.box[1])] for p in cars], axis=1) * GSD
    assert (sizes[:, 1] > 4.1).all() and (sizes[:, 1] < 4.7).all() and (sizes[:, 0] > 1.7).all()
    img, lab = render_window(plan, Window(1000, 1000, 1536, 1536))
    share = np.bincount(lab.ravel(), minlength=6)[:6] / lab.size
    assert share[BUILDING] > 0.08 and share[IMSURF] > 0.1 and 0 < share[CAR] < 0.05
    assert len({p.material for p in plan.prims} & {"soil", "pool", "track", "turf", "wall", "yard"}) >= 3
    assert MATERIAL_IDS["tiles"] > MATERIAL_IDS["litter"]  # appended: the older materials keep their ids
    paths = [tmp_path / f"{landscape}{i}.tif" for i in range(2)]
    for path in paths:
        write_scene(path, None, 300, 300, seed=3, landscape=landscape, gsd=0.35, progress=False)
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_coarser_gsd_covers_the_same_ground(tmp_path):
    """The same seed at 2.5x the generator's GSD: 2.5x fewer pixels over the same area, same classes."""
    fine, coarse = tmp_path / "fine.tif", tmp_path / "coarse.tif"
    write_scene(fine, tmp_path / "fine_labels.tif", 500, 400, seed=6, progress=False)
    write_scene(coarse, tmp_path / "coarse_labels.tif", 200, 160, seed=6, gsd=2.5 * GSD, progress=False)
    with rasterio.open(coarse) as ds:
        assert ds.res == pytest.approx((2.5 * GSD, 2.5 * GSD))
        assert (ds.bounds.left, ds.bounds.top) == pytest.approx(ORIGIN)
        assert (ds.width, ds.height) == (200, 160)
    fine_lab, coarse_lab = read(tmp_path / "fine_labels.tif")[0], read(tmp_path / "coarse_labels.tif")[0]
    np.testing.assert_allclose(np.bincount(coarse_lab.ravel(), minlength=6) / coarse_lab.size,
                               np.bincount(fine_lab.ravel(), minlength=6) / fine_lab.size, atol=0.02)
    assert abs(read(coarse).astype(float).mean() - read(fine).astype(float).mean()) < 3
    with pytest.raises(RssegError, match="finer"):
        write_scene(tmp_path / "x.tif", None, 10, 10, gsd=0.05, progress=False)
