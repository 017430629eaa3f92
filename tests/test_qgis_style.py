"""QGIS styles of rsseg outputs: .qml sidecars, GeoPackage default styles, and a real QGIS when installed."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import TinyFCN, card_for, random_scene, write_scene
from PIL import Image

from rsseg.tiling import predict_scene
from rsseg.vector import vectorize_mask

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["road", "tree", "roof", "water"]


def _qml(text: str) -> ET.Element:
    assert text.startswith("<!DOCTYPE qgis")
    root = ET.fromstring(text.split("\n", 1)[1])
    assert root.tag == "qgis"
    return root


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """A predicted mask with probabilities, and its polygons as GeoPackage and Shapefile."""
    tmp = tmp_path_factory.mktemp("qgis")
    scene = write_scene(tmp / "scene.tif", random_scene(128, 160))
    model = TinyFCN(4)
    card = card_for(model, tile_size=64, class_names=NAMES)
    predict_scene(scene, tmp / "mask.tif", model, card, probs=tmp / "probs.tif", device="cpu", progress=False)
    for suffix in ("gpkg", "shp"):
        vectorize_mask(tmp / "mask.tif", tmp / f"polygons.{suffix}", progress=False)
    return tmp, card


def test_mask_qml_is_paletted_with_class_names(outputs):
    tmp, card = outputs
    root = _qml((tmp / "mask.qml").read_text())
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = renderer.findall("colorPalette/paletteEntry")
    assert [e.get("label") for e in entries] == NAMES
    assert [e.get("value") for e in entries] == ["0", "1", "2", "3"]
    assert [e.get("color") for e in entries] == ["#{:02x}{:02x}{:02x}".format(*c) for c in card.classes.colors]


def test_probability_raster_band_names_and_stretch(outputs):
    tmp, _ = outputs
    with rasterio.open(tmp / "probs.tif") as ds:
        assert list(ds.descriptions) == NAMES
    renderer = _qml((tmp / "probs.qml").read_text()).find("pipe/rasterrenderer")
    assert renderer.get("type") == "singlebandgray"
    assert [renderer.findtext(f"contrastEnhancement/{k}") for k in ("minValue", "maxValue", "algorithm")] == \
        ["0", "255", "StretchToMinimumMaximum"]


def _check_categories(qml: str) -> None:
    renderer = _qml(qml).find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class_id"
    assert [c.get("label") for c in renderer.findall("categories/category")] == NAMES
    assert len(renderer.findall("symbols/symbol")) == len(NAMES)


def test_geopackage_default_style_and_shapefile_sidecar(outputs):
    tmp, _ = outputs
    with sqlite3.connect(tmp / "polygons.gpkg") as db:
        rows = db.execute('SELECT f_table_name, f_geometry_column, "useAsDefault", "styleQML" '
                          "FROM layer_styles").fetchall()
        registered = db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone()
    assert [(r[0], r[1], r[2]) for r in rows] == [("polygons", "geom", 1)] and registered == ("attributes",)
    _check_categories(rows[0][3])
    _check_categories((tmp / "polygons.qml").read_text())
    assert not list(tmp.glob(".*"))  # sidecars were renamed with their layer, no temporary left


def _qgis_python() -> str | None:
    """A Python that imports QGIS's bindings (usually the system one, not the venv's)."""
    for exe in dict.fromkeys(filter(None, [shutil.which("python3"), "/usr/bin/python3"])):
        if Path(exe).exists() and subprocess.run([exe, "-c", "import qgis.core"], capture_output=True).returncode == 0:
            return exe
    return None


def test_outputs_open_styled_in_qgis(outputs):
    python = _qgis_python()
    if python is None:
        pytest.skip("QGIS is not installed (apt-get install qgis python3-qgis); QML structure checked above")
    tmp, _ = outputs
    result = subprocess.run([python, str(ROOT / "scripts" / "qgis_check.py"), str(tmp / "mask.tif"),
                             "--probs", str(tmp / "probs.tif"), "--vector", str(tmp / "polygons.gpkg"),
                             "--vector", str(tmp / "polygons.shp"), "--png", str(tmp / "map.png"), "--size", "200",
                             "--require"], capture_output=True, text=True, env={"QT_QPA_PLATFORM": "offscreen",
                                                                                 "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "renderer paletted, 4 classes: 0=road" in result.stdout
    assert result.stdout.count("renderer categorizedSymbol on class_id, 4 categories") == 2
    png = np.asarray(Image.open(tmp / "map.png").convert("RGB"))
    assert len(np.unique(png.reshape(-1, 3), axis=0)) >= 3  # the classes' colours, not a blank map
