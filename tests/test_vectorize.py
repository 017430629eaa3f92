"""rsseg.vector / ``rsseg vectorize``: windowed polygonisation equals whole-raster, GIS outputs."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Geod
from rasterio.features import shapes
from shapely.geometry import shape

from rsseg.cli import main
from rsseg.io.mask_meta import NODATA, write_class_table
from rsseg.vector import vectorize_mask

UTM = Affine(0.5, 0, 500000, 0, -0.5, 5000000)  # 0.5 m pixels, EPSG:32632
NAMES = ["ground", "building", "tree", "car"]


def write_mask(path, mask, crs="EPSG:32632", transform=UTM, names=NAMES, dtype="uint8"):
    with rasterio.open(path, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1,
                       dtype=dtype, crs=crs, transform=transform, nodata=NODATA) as ds:
        ds.write(mask.astype(dtype), 1)
        if names:
            write_class_table(ds, names, [(i * 40, 0, 0) for i in range(len(names))])
    return path


def blob_mask(seed):
    """Random discs of 4 classes, nodata speckle, a checkerboard (diagonal contacts) and a U shape."""
    rng = np.random.default_rng(seed)
    h, w = 90, 70
    mask = np.zeros((h, w), np.uint8)
    yy, xx = np.ogrid[:h, :w]
    for _ in range(50):
        y, x, r = rng.integers(0, h), rng.integers(0, w), rng.integers(1, 10)
        mask[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = rng.integers(0, 4)
    mask[rng.random((h, w)) < 0.04] = NODATA
    mask[60:70, 20:40] = np.indices((10, 20)).sum(0) % 2 + 1
    mask[5:40, 50:53] = 3  # U: two arms that only join at the bottom, and an inverted U
    mask[5:40, 60:63] = 3
    mask[37:40, 50:63] = 3
    mask[45:48, 45:65] = 2
    mask[45:80, 45:48] = 2
    mask[45:80, 62:65] = 2
    return mask


def whole_raster(mask, transform=UTM):
    """Reference: rasterio.features.shapes on the whole array."""
    pairs = [(shape(g), int(v)) for g, v in shapes(mask, mask=mask != NODATA, transform=transform)]
    return np.array([g for g, _ in pairs], dtype=object), np.array([v for _, v in pairs])


def poly_key(g):
    c = g.centroid
    return round(g.area, 6), round(c.x, 6), round(c.y, 6)


@pytest.mark.parametrize("seed,window_rows", [(0, 1), (1, 7), (2, 16), (3, 1000)])
def test_windowed_equals_whole_raster(tmp_path, seed, window_rows):
    mask = blob_mask(seed)
    src = write_mask(tmp_path / "m.tif", mask)
    vectorize_mask(src, tmp_path / "o.gpkg", window_rows=window_rows, progress=False)
    out = gpd.read_file(tmp_path / "o.gpkg")
    ref_geoms, ref_ids = whole_raster(mask)
    assert out.geometry.is_valid.all()
    for c in range(4):
        got = sorted(out.geometry.values[out.class_id.values == c], key=poly_key)
        ref = sorted(ref_geoms[ref_ids == c], key=poly_key)
        assert len(got) == len(ref) > 0
        assert all(a.equals(b) for a, b in zip(got, ref))
        u_got, u_ref = shapely.union_all(got), shapely.union_all(ref)
        assert u_got.area == pytest.approx(u_ref.area, rel=1e-6)
        assert u_got.symmetric_difference(u_ref).area <= 1e-9 * u_ref.area
    assert set(out.class_name) == set(NAMES)


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_areas_in_m2_and_crs_round_trip(tmp_path, suffix):
    mask = blob_mask(4)
    src = write_mask(tmp_path / "m.tif", mask)
    summary = vectorize_mask(src, tmp_path / f"o{suffix}", window_rows=9, progress=False)
    out = gpd.read_file(tmp_path / f"o{suffix}")
    assert out.crs.to_epsg() == 32632
    assert all(len(c) <= 10 for c in out.columns)
    assert set(out.geom_type) == {"Polygon"}
    np.testing.assert_allclose(out.area_m2, out.geometry.area, rtol=1e-9)
    for c, name in enumerate(NAMES):
        pixels = int((mask == c).sum())
        assert out.area_m2[out.class_id == c].sum() == pytest.approx(pixels * 0.25, rel=1e-9)
        assert summary.areas[name] == pytest.approx(pixels * 0.25, rel=1e-9)
        assert summary.counts[name] == int((out.class_id == c).sum())
    if suffix == ".shp":
        assert (tmp_path / "o.prj").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_geographic_mask_areas_in_m2(tmp_path):
    mask = blob_mask(5)
    transform = Affine(1e-4, 0, 9.0, 0, -1e-4, 48.0)  # ~7.5 x 11 m pixels at 48°N
    src = write_mask(tmp_path / "m.tif", mask, crs="EPSG:4326", transform=transform)
    vectorize_mask(src, tmp_path / "o.gpkg", window_rows=6, progress=False)
    out = gpd.read_file(tmp_path / "o.gpkg")
    assert out.crs.to_epsg() == 4326
    geod = Geod(ellps="WGS84")
    geodesic = np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in out.geometry])
    np.testing.assert_allclose(out.area_m2, geodesic, rtol=1e-4)
    assert out.area_m2.min() > 50  # m², not square degrees


def test_mask_without_crs_gives_pixel_polygons_and_warning(tmp_path):
    mask = blob_mask(6)
    src = write_mask(tmp_path / "m.tif", mask, crs=None, transform=Affine.identity(), names=None)
    with pytest.warns(UserWarning, match="no CRS"):
        summary = vectorize_mask(src, tmp_path / "o.gpkg", window_rows=4, progress=False)
    out = gpd.read_file(tmp_path / "o.gpkg")
    assert out.crs is None and "area_px" in out.columns
    minx, miny, maxx, maxy = out.total_bounds
    assert minx >= 0 and miny >= 0 and maxx <= 70 and maxy <= 90
    for c in range(4):
        assert out.area_px[out.class_id == c].sum() == (mask == c).sum()
    assert set(summary.counts) <= {f"class_{c}" for c in range(4)}
    assert "px" in summary.summary_line()


def test_simplified_coverage_has_no_gaps_or_overlaps(tmp_path):
    mask = blob_mask(7)
    mask[mask == NODATA] = 0
    src = write_mask(tmp_path / "m.tif", mask)
    vectorize_mask(src, tmp_path / "raw.gpkg", window_rows=8, progress=False)
    vectorize_mask(src, tmp_path / "s.gpkg", window_rows=8, simplify=1.0, progress=False)
    raw, simple = gpd.read_file(tmp_path / "raw.gpkg"), gpd.read_file(tmp_path / "s.gpkg")
    assert len(simple) == len(raw)
    assert simple.geometry.is_valid.all()
    assert shapely.get_num_coordinates(simple.geometry.values).sum() < \
        0.8 * shapely.get_num_coordinates(raw.geometry.values).sum()
    union = shapely.union_all(simple.geometry.values)
    assert union.area == pytest.approx(simple.geometry.area.sum(), rel=1e-9)  # no overlaps
    assert union.area == pytest.approx(90 * 70 * 0.25, rel=1e-9)  # no gaps inside the scene
    assert union.equals(shapely.box(500000, 5000000 - 45, 500035, 5000000))
    np.testing.assert_allclose(simple.area_m2, raw.area_m2)  # attribute = the region's pixel area


def test_nodata_and_class_filter_give_no_polygons(tmp_path):
    mask = blob_mask(8)
    mask[10:30, 5:25] = NODATA
    src = write_mask(tmp_path / "m.tif", mask)
    vectorize_mask(src, tmp_path / "o.gpkg", classes=["building", "3"], layer_per_class=True,
                   window_rows=5, progress=False)
    assert sorted(pyogrio.list_layers(tmp_path / "o.gpkg")[:, 0]) == ["building", "car", "layer_styles"]  # QGIS styles
    out = pd.concat([gpd.read_file(tmp_path / "o.gpkg", layer=n) for n in ("building", "car")], ignore_index=True)
    assert set(out.class_id) == {1, 3}
    hole = shapely.box(500000 + 2.5, 5000000 - 15, 500000 + 12.5, 5000000 - 5)  # rows 10-30, cols 5-25
    assert shapely.union_all(out.geometry.values).intersection(hole).area == 0
    for c in (1, 3):
        assert out.area_m2[out.class_id == c].sum() == pytest.approx((mask == c).sum() * 0.25)


def test_min_area_removes_exactly_the_regions_below_it(tmp_path):
    mask = np.zeros((40, 30), np.uint8)
    mask[:] = NODATA
    mask[2:4, 2:4] = 1            # 4 px = 1.00 m²: removed
    mask[2:4, 10:13] = 1          # 6 px = 1.50 m²: kept (exactly the threshold)
    mask[2:3, 20:25] = 2          # 5 px = 1.25 m²: removed
    mask[8:38, 5:6] = 3           # 30 px thin column across many 3-row windows: kept
    mask[20:22, 20:21] = 3        # 2 px: removed
    mask[30, 20] = 1
    mask[31, 21] = 1              # two diagonal 1-px regions: both removed
    mask[9:12, 14:16] = 2         # 6 px crossing the window edges (rows 9 | 10-11): kept
    src = write_mask(tmp_path / "m.tif", mask)
    summary = vectorize_mask(src, tmp_path / "o.gpkg", min_area=1.5, window_rows=3, progress=False)
    out = gpd.read_file(tmp_path / "o.gpkg")
    ref_geoms, ref_ids = whole_raster(mask)
    big = np.array([g.area >= 1.5 for g in ref_geoms])
    assert sorted(map(poly_key, out.geometry)) == sorted(map(poly_key, ref_geoms[big]))
    assert sorted(out.area_m2) == [1.5, 1.5, 7.5]
    assert summary.removed == int((~big).sum()) == 5


def test_mean_probability_per_polygon(tmp_path):
    mask = np.full((20, 16), NODATA, np.uint8)
    mask[2:18, 3:6] = 1      # crosses every 4-row window
    mask[5:7, 10:14] = 2
    src = write_mask(tmp_path / "m.tif", mask)
    rng = np.random.default_rng(9)
    probs = rng.integers(0, 256, (4, 20, 16)).astype(np.uint8)
    with rasterio.open(tmp_path / "p.tif", "w", driver="GTiff", width=16, height=20, count=4, dtype="uint8",
                       crs="EPSG:32632", transform=UTM) as ds:
        ds.write(probs)
    vectorize_mask(src, tmp_path / "o.gpkg", probs_path=tmp_path / "p.tif", window_rows=4, progress=False)
    out = gpd.read_file(tmp_path / "o.gpkg").sort_values("class_id")
    expected = [probs[1][mask == 1].mean() / 255, probs[2][mask == 2].mean() / 255]
    np.testing.assert_allclose(out.mean_prob, expected, rtol=1e-9)


@pytest.mark.parametrize("fmt", ["geojson", "fgb"])
def test_other_formats_and_atomic_overwrite(tmp_path, fmt):
    src = write_mask(tmp_path / "m.tif", blob_mask(10))
    target = tmp_path / f"o.{fmt}"
    first = vectorize_mask(src, target, window_rows=7, progress=False)
    with pytest.raises(Exception, match="output exists"):
        vectorize_mask(src, target, progress=False)
    second = vectorize_mask(src, target, overwrite=True, progress=False)
    assert len(gpd.read_file(target)) == first.total == second.total
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code, capsys.readouterr()


def test_cli_summary_and_clear_errors(tmp_path, capsys):
    mask = blob_mask(11)
    src = write_mask(tmp_path / "m.tif", mask)
    main(["vectorize", str(src), "-o", str(tmp_path / "o.gpkg"), "--classes", "1,tree"])
    line = capsys.readouterr().out.strip()
    assert "polygons ->" in line and "building" in line and "tree" in line and "ground" not in line

    floats = tmp_path / "f.tif"
    write_mask(floats, mask.astype(np.float32), dtype="float32", names=None)
    cases = [
        ([str(floats), "-o", str(tmp_path / "a.gpkg")], "f.tif: pixel type float32 is not a class mask"),
        ([str(tmp_path / "missing.tif"), "-o", str(tmp_path / "b.gpkg")], "missing.tif: file not found"),
        ([str(src), "-o", str(tmp_path / "c.gpkg"), "--classes", "2,roads,7"], "unknown class(es) roads, 7"),
        ([str(src), "-o", str(tmp_path / "d.shp"), "--layer-per-class"], "holds one layer only"),
    ]
    for args, message in cases:
        code, captured = run_cli(["vectorize", *args], capsys)
        lines = captured.err.strip().splitlines()
        assert code == 1 and lines[-1].startswith("Error: ") and message in lines[-1]
    assert not (tmp_path / "a.gpkg").exists() and not (tmp_path / "c.gpkg").exists()


def test_open_background_keeps_holes_compact_and_equals_whole_raster(tmp_path):
    """A background region open across every strip, holed in every strip, is written from compact rings."""
    from rsseg.vector.polygonize import polygonize_windows
    from rsseg.vector.rings import OpenPart, RingPolygon

    rng = np.random.default_rng(12)
    mask = np.zeros((64, 48), np.uint8)
    for y in range(1, 61, 5):
        for x in range(1, 45, 5):
            mask[y:y + rng.integers(1, 4), x:x + rng.integers(1, 4)] = rng.integers(1, 4)
    mask[20, 20], mask[21, 21] = 2, 2  # holes touching each other diagonally
    mask[30:39, 30:33] = 1  # a hole spanning two strips
    src = write_mask(tmp_path / "m.tif", mask)

    ref_geoms, ref_ids = whole_raster(mask, transform=Affine.identity())
    (background,) = ref_geoms[ref_ids == 0]
    with rasterio.open(src) as ds:
        regions = list(polygonize_windows(ds, lambda d: d != NODATA, 8))
    compact = [(g, c) for r in regions if r.compact for g, c in zip(r.geoms, r.class_ids)]
    (region,) = [g for g, c in compact if c == 0]
    assert isinstance(region, RingPolygon) and len(region.holes) >= 6  # one hole array per holed strip
    assert all(h.coords.dtype == np.int32 for h in region.holes)
    assert sum(map(len, region.holes)) + len(region.shell) - 1 == len(background.interiors)
    assert region.area_px == background.area == int((mask == 0).sum())
    rebuilt = shapely.from_wkb(region.wkb(lambda xy: xy))
    assert rebuilt.is_valid and rebuilt.equals(background) and rebuilt.equals(region.to_polygon())

    part = OpenPart.split(np.array([background]), np.array([0]), None)[0]
    assert len(part.shell.interiors) == 0 and len(part.holes) == len(background.interiors) and part.valid

    vectorize_mask(src, tmp_path / "o.gpkg", window_rows=8, progress=False)
    out = gpd.read_file(tmp_path / "o.gpkg")
    got = out.geometry.values[out.class_id.values == 0]
    assert len(got) == 1 and got[0].is_valid and got[0].equals(whole_raster(mask)[0][ref_ids == 0][0])
    assert out.area_m2[out.class_id == 0].item() == (mask == 0).sum() * 0.25
