"""The STAC catalogue of ``predict --out-dir`` and ``export --stac``, validated against the shipped schemas."""

from __future__ import annotations

import json
import re
import shutil

import jsonschema
import pystac
import pytest
import rasterio
from affine import Affine
from conftest import TRANSFORM, TinyFCN, random_scene, run_cli, write_scene
from stac_validate import validate

import rsseg
from rsseg.models import save_checkpoint

PROJ, CLASSIFICATION, PROCESSING = (f"https://stac-extensions.github.io/{name}/schema.json" for name in
                                    ("projection/v1.1.0", "classification/v1.1.0", "processing/v1.0.0"))
CLASSES = ["road", "tree", "roof", "water"]
COLORS = [(90, 90, 90), (20, 140, 40), (200, 60, 40), (30, 80, 220)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two scenes and a model file predicted with ``--out-dir --probs --vector`` through the CLI; (folder, model)."""
    tmp = tmp_path_factory.mktemp("stac")
    model = TinyFCN(4)
    model.arch = {"name": "test_tiny_fcn", "num_classes": 4, "in_channels": 3, "kwargs": {}}
    save_checkpoint(model, tmp / "tiny.pt", tile_size=64, class_names=CLASSES, class_colors=COLORS)
    data = random_scene(128, 192, seed=8)
    (tmp / "scenes").mkdir()
    for c in range(2):
        write_scene(tmp / "scenes" / f"tile_{c}.tif", data[:, :, c * 96:(c + 1) * 96].copy(),
                    transform=TRANSFORM * Affine.translation(c * 96, 0))
    return tmp, _predict(tmp)


def _predict(tmp):
    out = tmp / "out"
    args = ["predict", str(tmp / "scenes"), "--out-dir", str(out), "--checkpoint", str(tmp / "tiny.pt"),
            "--probs", "--vector", "--tile", "64", "--threads", "1", "--quiet"]
    from rsseg.cli import main

    try:
        main(args)
    except SystemExit as exc:
        assert exc.code in (0, None)
    return out


def _stac_files(folder):
    return sorted(p for p in folder.glob("*.json") if "stac_version" in json.loads(p.read_text()))


def test_every_file_validates_against_stac_and_extension_schemas(run):
    _, out = run
    files = {p.name: validate(p) for p in _stac_files(out)}
    assert set(files) == {"collection.json", "model.json", "tile_0_item.json", "tile_1_item.json"}
    for name in ("tile_0_item.json", "tile_1_item.json"):
        assert {PROJ, CLASSIFICATION, PROCESSING} <= set(files[name])
    assert PROCESSING in files["model.json"]


def test_items_describe_the_outputs(run):
    _, out = run
    collection = pystac.Collection.from_file(str(out / "collection.json"))
    items = sorted(collection.get_items(), key=lambda i: i.id)
    assert [i.id for i in items] == ["tile_0", "tile_1"]
    item = items[0]
    assert {k: (a.media_type, a.roles) for k, a in item.assets.items()} == {
        "mask": (pystac.MediaType.COG, ["data"]), "probs": (pystac.MediaType.COG, ["data", "probs"]),
        "polygons": ("application/geopackage+sqlite3", ["data", "labels"])}
    written = json.loads((out / "tile_0_item.json").read_text())["properties"]  # pystac migrates proj: on reading
    with rasterio.open(item.assets["mask"].get_absolute_href()) as ds:
        assert written["proj:epsg"] == ds.crs.to_epsg() == 32632 and item.properties["proj:code"] == "EPSG:32632"
        assert written["proj:shape"] == [ds.height, ds.width]
        assert written["proj:transform"] == list(ds.transform)[:6]
    assert item.assets["mask"].extra_fields["classification:classes"] == [
        {"value": i, "name": n, "color_hint": "".join(f"{v:02X}" for v in c)}
        for i, (n, c) in enumerate(zip(CLASSES, COLORS))]
    assert item.properties["label:type"] == "vector" and item.properties["label:classes"][0]["classes"] == CLASSES
    assert item.properties["processing:software"] == {"rsseg": rsseg.__version__}
    assert item.properties["rsseg:parameters"]["tile"] == 64
    model = pystac.Item.from_file(str(out / "model.json"))
    assert item.get_single_link("derived_from").get_absolute_href() == model.get_self_href()
    assert model.properties["mlm:architecture"] == "test_tiny_fcn"
    named = model.properties["mlm:input"][0]["bands"]  # MLM wants them described: raster:bands of the weights
    assert named == [b["name"] for b in model.assets["weights"].extra_fields["raster:bands"]] == \
        ["band 1", "band 2", "band 3"]
    assert [s["type"] for s in model.properties["mlm:input"][0]["value_scaling"]] == ["z-score"] * 3
    assert item.assets["mask"].extra_fields["raster:bands"] == [{"data_type": "uint8", "nodata": 255}]
    assert [c["name"] for c in model.properties["mlm:output"][0]["classification:classes"]] == CLASSES
    assert {k: a.href for k, a in collection.assets.items()} == {
        "mosaic": "./mosaic.vrt", "mosaic_probs": "./mosaic_probs.vrt", "mosaic_vector": "./mosaic.gpkg"}


def test_a_moved_folder_stays_valid(run, tmp_path):
    _, out = run
    moved = shutil.copytree(out, tmp_path / "elsewhere")
    collection = pystac.Collection.from_file(str(moved / "collection.json"))
    hrefs = [a.get_absolute_href() for i in collection.get_items() for a in i.assets.values()]
    hrefs += [a.get_absolute_href() for a in collection.assets.values()]
    assert len(hrefs) == 9 and all(h.startswith(str(moved)) for h in hrefs)
    for href in hrefs:
        if href.endswith(".tif"):
            with rasterio.open(href) as ds:
                assert ds.read(1).shape == (128, 96)
    for path in _stac_files(moved):
        assert str(out) not in path.read_text()


def test_a_rerun_updates_the_catalogue_in_place(run):
    tmp, out = run
    before = {p.name: json.loads(p.read_text()) for p in _stac_files(out)}
    _predict(tmp)  # the scenes are finished: nothing is recomputed, the catalogue is rewritten
    after = {p.name: json.loads(p.read_text()) for p in _stac_files(out)}
    assert set(after) == set(before)
    assert after["collection.json"]["links"] == before["collection.json"]["links"]
    assert after["tile_0_item.json"]["assets"] == before["tile_0_item.json"]["assets"]
    assert not list(out.glob(".*rsseg-*"))


def test_the_schemas_reject_a_broken_item(run, tmp_path):
    _, out = run
    item = json.loads((out / "tile_0_item.json").read_text())
    item["assets"]["mask"]["classification:classes"][0]["color_hint"] = "#5A5A5A"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(item))
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_export_stac_writes_the_model_item(run, tmp_path, capsys):
    tmp, _ = run
    out = tmp_path / "tiny.stac.json"
    code, text = run_cli(["export", "--stac", str(tmp / "tiny.pt"), "-o", str(out)], capsys)
    assert code == 0 and text.count("\n") == 1 and out.is_file(), text
    assert validate(out)[0].endswith("item.json")
    item = pystac.Item.from_file(str(out))
    assert item.assets["weights"].roles == ["mlm:model"]
    assert item.assets["weights"].get_absolute_href() == str(tmp / "tiny.pt")
    code, text = run_cli(["export", "--stac", str(tmp / "tiny.pt"), "-o", str(out)], capsys)
    assert code == 1 and text.count("\n") == 1 and "--overwrite" in text and "Traceback" not in text


def test_odc_stac_loads_the_masks_pixel_for_pixel(run):
    odc_stac = pytest.importorskip("odc.stac", reason="odc-stac is in the `test` extra (pip install -e .[test])")
    _, out = run
    collection = pystac.Collection.from_file(str(out / "collection.json"))
    items = sorted(collection.get_items(), key=lambda i: i.id)
    for item in items:
        loaded = odc_stac.load([item], bands=["mask"]).mask.isel(time=0)
        with rasterio.open(item.assets["mask"].get_absolute_href()) as ds:
            assert loaded.dtype == ds.dtypes[0] == "uint8"
            assert loaded.shape == ds.shape and (loaded.values == ds.read(1)).all()
            assert loaded.odc.geobox.affine == ds.transform and loaded.odc.geobox.crs.epsg == ds.crs.to_epsg()
    from odc.geo.geobox import GeoBox

    with rasterio.open(out / "mosaic.vrt") as ds:  # the two scenes side by side on the mosaic's grid
        grid, mosaic = GeoBox(ds.shape, ds.transform, ds.crs.to_wkt()), ds.read(1)
    both = odc_stac.load(items, bands=["mask"], geobox=grid, groupby="solar_day").mask.isel(time=0)
    assert both.shape == mosaic.shape == (128, 192) and (both.values == mosaic).all()


def test_the_label_and_mlm_fields_their_schemas_require(run):
    """The label and MLM schemas are not shipped (tests/stac_schemas/README.md): their required fields, by hand."""
    _, out = run
    item = json.loads((out / "tile_0_item.json").read_text())
    assert item["properties"]["label:properties"] == ["class_name"] and item["properties"]["label:description"]
    assert item["properties"]["label:type"] in ("raster", "vector")
    model = json.loads((out / "model.json").read_text())
    props = model["properties"]
    assert {"mlm:name", "mlm:architecture", "mlm:tasks", "mlm:input", "mlm:output"} <= props.keys()
    assert re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_.\-\s]+[a-zA-Z0-9]", props["mlm:name"])
    assert all({"name", "bands", "input"} <= i.keys() and {"shape", "dim_order", "data_type"} <= i["input"].keys()
               for i in props["mlm:input"])
    assert all({"name", "tasks", "result"} <= o.keys() for o in props["mlm:output"])
    (weights,) = [a for a in model["assets"].values() if "mlm:model" in a["roles"]]
    assert "https://stac-extensions.github.io/raster/v1.1.0/schema.json" in model["stac_extensions"]
    assert [b["name"] for b in weights["raster:bands"]] == props["mlm:input"][0]["bands"]
