"""QGIS styles for rsseg outputs: ``.qml`` sidecars and default styles inside GeoPackages.

QGIS loads ``NAME.qml`` beside a file-based layer ``NAME.ext`` as that layer's default style,
and the style marked ``useAsDefault`` in a GeoPackage's ``layer_styles`` table for its layers.
"""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from rsseg.io.atomic import replaced_atomically

Color = Sequence[int]
DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"
STYLE_NAME = "rsseg"
QGIS_VERSION = "3.22.0"  # the oldest QGIS these documents were checked with


def _hex(color: Color) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color[:3])


def _document(*children: ET.Element) -> str:
    root = ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")
    root.extend(children)
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root)
    return f"{DOCTYPE}\n{ET.tostring(root, encoding='unicode')}\n"


def _raster_pipe(renderer: ET.Element) -> ET.Element:
    pipe = ET.Element("pipe")
    pipe.append(renderer)
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")  # nearest neighbour: class ids stay crisp
    return pipe


def class_mask_qml(names: Sequence[str], colors: Sequence[Color]) -> str:
    """A paletted renderer on band 1 with one entry per class, labelled with its name."""
    renderer = ET.Element("rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1", nodataColor="")
    palette = ET.SubElement(renderer, "colorPalette")
    for value, (name, color) in enumerate(zip(names, colors)):
        ET.SubElement(palette, "paletteEntry", value=str(value), color=_hex(color), alpha="255", label=name)
    return _document(_raster_pipe(renderer))


def stretch_qml(band: int = 1, minimum: float = 0, maximum: float = 255) -> str:
    """A grey renderer on ``band`` stretched linearly from ``minimum`` (black) to ``maximum`` (white)."""
    renderer = ET.Element("rasterrenderer", type="singlebandgray", grayBand=str(band), gradient="BlackToWhite",
                          opacity="1", alphaBand="-1", nodataColor="")
    origin = ET.SubElement(renderer, "minMaxOrigin")
    ET.SubElement(origin, "limits").text = "None"  # fixed limits, not recomputed from statistics
    ET.SubElement(origin, "extent").text = "WholeRaster"
    contrast = ET.SubElement(renderer, "contrastEnhancement")
    ET.SubElement(contrast, "minValue").text = f"{minimum:g}"
    ET.SubElement(contrast, "maxValue").text = f"{maximum:g}"
    ET.SubElement(contrast, "algorithm").text = "StretchToMinimumMaximum"
    return _document(_raster_pipe(renderer))


def _fill_symbol(name: str, color: Color) -> ET.Element:
    symbol = ET.Element("symbol", type="fill", name=name, alpha="1", clip_to_extent="1", force_rhr="0")
    layer = ET.SubElement(symbol, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"})
    outline = tuple(max(0, int(c * 0.6)) for c in color[:3])
    props = {"color": ",".join(map(str, (*color[:3], 255))), "style": "solid",
             "outline_color": ",".join(map(str, (*outline, 255))), "outline_style": "solid",
             "outline_width": "0.26", "outline_width_unit": "MM", "joinstyle": "bevel"}
    for key, value in props.items():
        ET.SubElement(layer, "prop", k=key, v=value)
    return symbol


def polygon_qml(names: Sequence[str], colors: Sequence[Color], field: str = "class_id") -> str:
    """A categorised fill renderer on ``field`` (class ids), each category labelled with its class name."""
    renderer = ET.Element("renderer-v2", type="categorizedSymbol", attr=field, symbollevels="0",
                          enableorderby="0", forceraster="0")
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for value, (name, color) in enumerate(zip(names, colors)):
        ET.SubElement(categories, "category", symbol=str(value), value=str(value), label=name, render="true")
        symbols.append(_fill_symbol(str(value), color))
    return _document(renderer)


def sidecar_path(layer_path: str | Path) -> Path:
    """``LAYER.qml`` beside ``layer_path``: where QGIS looks for the layer's default style."""
    return Path(layer_path).with_suffix(".qml")


def write_sidecar(layer_path: str | Path, qml: str) -> Path:
    """Write ``qml`` as ``LAYER.qml`` beside ``layer_path`` (atomically); QGIS applies it when the layer is opened."""
    path = sidecar_path(layer_path)
    with replaced_atomically(path) as tmp:
        tmp.write_text(qml, encoding="utf-8")
    return path


def store_gpkg_styles(gpkg: str | Path, layers: Sequence[str], qml: str, description: str = "") -> None:
    """Store ``qml`` as the default QGIS style of ``layers`` in the GeoPackage's ``layer_styles`` table."""
    with sqlite3.connect(gpkg) as db:
        db.execute(
            'CREATE TABLE IF NOT EXISTS "layer_styles" ("id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
            '"f_table_catalog" TEXT(256), "f_table_schema" TEXT(256), "f_table_name" TEXT(256), '
            '"f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT, "styleSLD" TEXT, '
            '"useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30), '
            '"update_time" DATETIME DEFAULT (strftime(\'%Y-%m-%dT%H:%M:%fZ\',\'now\')))')
        db.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier) "
                   "VALUES ('layer_styles', 'attributes', 'layer_styles')")
        geometry = dict(db.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
        for layer in layers:
            db.execute('DELETE FROM layer_styles WHERE f_table_name = ? AND "styleName" = ?', (layer, STYLE_NAME))
            db.execute('UPDATE layer_styles SET "useAsDefault" = 0 WHERE f_table_name = ?', (layer,))
            db.execute('INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, '
                       '"styleName", "styleQML", "styleSLD", "useAsDefault", description, owner, ui) '
                       "VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', NULL)",
                       (layer, geometry.get(layer, "geom"), STYLE_NAME, qml, description))
