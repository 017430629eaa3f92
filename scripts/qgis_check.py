#!/usr/bin/env python3
"""Open rsseg outputs in a real (headless) QGIS and check that their styles apply.

Run with the Python that has QGIS's bindings (Debian: ``apt-get install qgis python3-qgis``, then the
system ``python3``, not the project's venv):

    QT_QPA_PLATFORM=offscreen python3 scripts/qgis_check.py MASK.tif --probs PROBS.tif \\
        --vector POLYGONS.gpkg --vector POLYGONS.shp --png map.png

It loads each layer as a user would (QGIS applies the ``.qml`` beside a file, or a GeoPackage's
default style), prints the renderer type and its classes (value, label, colour) and fails if the
mask is not paletted with the class names of its GeoTIFF tag, or a polygon layer is not
categorised by ``class_id`` with those names. ``--png`` renders the first polygon layer
over the mask, each with its style. Without QGIS it prints a line saying so and exits 0 (``--require`` makes it exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def fail(message: str) -> None:
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def class_names(mask: Path) -> list[str]:
    """The class names rsseg stored in the mask's RSSEG_CLASS_NAMES tag (read through GDAL)."""
    from osgeo import gdal

    tag = gdal.Open(str(mask)).GetMetadataItem("RSSEG_CLASS_NAMES")
    if not tag:
        fail(f"{mask}: no RSSEG_CLASS_NAMES tag")
    return json.loads(tag)


def check_mask(layer, names: list[str]) -> None:  # noqa: ANN001 - QgsRasterLayer
    renderer = layer.renderer()
    paletted = renderer.type() == "paletted"
    classes = [(int(c.value), c.label, c.color.name()) for c in renderer.classes()] if paletted else []
    print(f"mask {layer.source()}: renderer {renderer.type()}, {len(classes)} classes: "
          + ", ".join(f"{v}={label} {color}" for v, label, color in classes))
    if renderer.type() != "paletted" or [label for _, label, _ in classes] != names:
        fail("the mask is not paletted with the class names as labels")


def check_probs(layer) -> None:  # noqa: ANN001 - QgsRasterLayer
    renderer = layer.renderer()
    bands = [layer.bandName(b) for b in range(1, layer.bandCount() + 1)]
    ce = renderer.contrastEnhancement() if renderer.type() == "singlebandgray" else None
    stretch = f"{ce.minimumValue():g}..{ce.maximumValue():g}" if ce else "none"
    print(f"probabilities {layer.source()}: renderer {renderer.type()}, stretch {stretch}, bands: {', '.join(bands)}")
    if ce is None or (ce.minimumValue(), ce.maximumValue()) != (0, 255):
        fail("the probabilities are not stretched 0..255")


def check_vector(layer, names: list[str]) -> None:  # noqa: ANN001 - QgsVectorLayer
    renderer = layer.renderer()
    cats = [(c.value(), c.label(), c.symbol().color().name()) for c in renderer.categories()] \
        if renderer.type() == "categorizedSymbol" else []
    attr = renderer.classAttribute() if cats else "-"
    print(f"polygons {layer.source()}: {layer.featureCount()} features, renderer {renderer.type()} on {attr}, "
          f"{len(cats)} categories: " + ", ".join(f"{v}={label} {color}" for v, label, color in cats))
    if not cats or attr != "class_id" or [label for _, label, _ in cats] != names:
        fail("the polygons are not categorised by class_id with the class names")


def render(layers: list, png: Path, size: int) -> None:  # noqa: ANN001 - QgsMapLayer
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers(layers)  # first on top
    settings.setBackgroundColor(QColor(255, 255, 255))
    settings.setOutputSize(QSize(size, size))
    settings.setDestinationCrs(layers[-1].crs())
    settings.setExtent(layers[-1].extent())
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    draw_legend(image, legend_entries(layers[0]))
    image.save(str(png), "PNG")
    print(f"rendered {png} ({size}x{size}) with a legend from {layers[0].name()}'s style")


def legend_entries(layer) -> list:  # noqa: ANN001 - QgsMapLayer
    """(label, QColor) of each class, as the layer's renderer (its loaded style) defines them."""
    renderer = layer.renderer()
    if renderer.type() == "categorizedSymbol":
        return [(c.label(), c.symbol().color()) for c in renderer.categories()]
    return [(c.label, c.color) for c in renderer.classes()]


def draw_legend(image, entries: list) -> None:  # noqa: ANN001 - QImage
    """A white box in the top-left corner with a colour swatch and the label of each class."""
    from qgis.PyQt.QtCore import QRect
    from qgis.PyQt.QtGui import QColor, QFont, QPainter

    row = max(14, image.height() // 32)
    painter = QPainter(image)
    font = QFont()
    font.setPixelSize(int(row * 0.75))
    painter.setFont(font)
    width = max(painter.fontMetrics().horizontalAdvance(label) for label, _ in entries) + 2 * row
    painter.fillRect(QRect(4, 4, width, row * len(entries) + row // 2), QColor(255, 255, 255, 230))
    for i, (label, color) in enumerate(entries):
        y = 4 + row // 4 + i * row
        painter.fillRect(QRect(4 + row // 4, y + 2, row - 6, row - 6), color)
        painter.setPen(QColor(0, 0, 0))
        painter.drawRect(QRect(4 + row // 4, y + 2, row - 6, row - 6))
        painter.drawText(QRect(4 + row + 2, y, width - row, row), 0x0081, label)  # AlignLeft | AlignVCenter
    painter.end()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mask", type=Path)
    parser.add_argument("--probs", type=Path)
    parser.add_argument("--vector", type=Path, action="append", default=[])
    parser.add_argument("--png", type=Path, help="render the first polygon layer over the mask to this PNG")
    parser.add_argument("--size", type=int, default=800, help="PNG side in pixels")
    parser.add_argument("--require", action="store_true", help="exit 1 when QGIS is not installed")
    args = parser.parse_args()
    try:
        from qgis.core import Qgis, QgsApplication, QgsRasterLayer, QgsVectorLayer
    except ImportError:
        print("QGIS Python bindings not found (apt-get install qgis python3-qgis); skipped")
        sys.exit(1 if args.require else 0)

    app = QgsApplication([], False)
    app.initQgis()
    print(f"QGIS {Qgis.QGIS_VERSION}", flush=True)
    check_outputs(args, QgsRasterLayer, QgsVectorLayer)  # layers are gone before QGIS exits (else it may crash)
    app.exitQgis()


def check_outputs(args: argparse.Namespace, QgsRasterLayer, QgsVectorLayer) -> None:  # noqa: ANN001, N803
    names = class_names(args.mask)
    mask = QgsRasterLayer(str(args.mask), args.mask.stem)
    if not mask.isValid():
        fail(f"{args.mask}: QGIS cannot open it")
    check_mask(mask, names)
    if args.probs:
        check_probs(QgsRasterLayer(str(args.probs), args.probs.stem))
    polygons = []
    for path in args.vector:
        layer = QgsVectorLayer(str(path), path.stem)
        if not layer.isValid():
            fail(f"{path}: QGIS cannot open it")
        check_vector(layer, names)
        polygons.append(layer)
    if args.png:
        render(polygons[:1] + [mask], args.png, args.size)
    print("OK: QGIS shows class names for the mask and polygons", flush=True)


if __name__ == "__main__":
    main()
