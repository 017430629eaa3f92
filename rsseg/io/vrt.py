"""A GDAL VRT mosaic over rasters of one grid (the per-scene masks of a catalogue)."""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio
from affine import Affine

from rsseg.errors import RssegError
from rsseg.io.mask_meta import NODATA

GDAL_TYPES = {"uint8": "Byte"}
GRID_TOLERANCE = 1e-6  # of a pixel: rasters offset by more lie on different grids


def write_mosaic_vrt(paths: list[Path], out: Path) -> None:
    """Write ``out``, a VRT placing every raster of ``paths`` at its georeferenced position.

    The rasters must share CRS, pixel size and rotation, lie on one pixel grid, and share band
    count and dtype (as the masks of one model over one orthophoto grid do); otherwise no mosaic
    is exact and :class:`RssegError` says why. Tags and band 1's colormap come from the first raster, so a
    mosaic of class masks keeps its class table. Uncovered pixels read as nodata 255.
    """
    infos = []
    for path in paths:
        with rasterio.open(path) as ds:
            infos.append((path, ds.transform, ds.width, ds.height, ds.crs, ds.count, ds.dtypes[0]))
    first_path, t0, _, _, crs, count, dtype = infos[0]
    if crs is None:
        raise RssegError(f"{first_path}: no CRS (pixel coordinates or GCPs only); no exact mosaic, none written")
    offsets = []
    for path, t, _, _, c, n, d in infos:
        if c != crs or (t.a, t.b, t.d, t.e) != (t0.a, t0.b, t0.d, t0.e) or n != count or d != dtype:
            raise RssegError(f"{path}: CRS, pixel size, rotation or bands differ from {first_path}; "
                             "no exact mosaic, none written")
        col, row = ~t0 * (t.c, t.f)  # in the first raster's pixels: whole numbers on one grid
        if max(abs(col - round(col)), abs(row - round(row))) > GRID_TOLERANCE:
            raise RssegError(f"{path}: its pixels are offset by ({col - round(col):+.3g}, {row - round(row):+.3g}) "
                             f"of a pixel from those of {first_path}; no exact mosaic, none written")
        offsets.append((round(col), round(row)))
    left, top = min(c for c, _ in offsets), min(r for _, r in offsets)
    origin = t0 * Affine.translation(left, top)  # keeps the grid's rotation
    boxes = [(path, col - left, row - top, w, h) for (path, _, w, h, *_), (col, row) in zip(infos, offsets)]
    width = max(c + w for _, c, _, w, _ in boxes)
    height = max(r + h for _, _, r, _, h in boxes)
    with rasterio.open(first_path) as ds:
        tags = ds.tags()
        try:
            colormap = ds.colormap(1)
        except ValueError:
            colormap = None
        descriptions = ds.descriptions
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if crs is not None:
        lines.append(f"  <SRS>{escape(crs.to_wkt())}</SRS>")
    lines.append("  <GeoTransform>" + ", ".join(repr(v) for v in origin.to_gdal()) + "</GeoTransform>")
    lines.append("  <Metadata>" + "".join(f'<MDI key="{escape(k)}">{escape(v)}</MDI>' for k, v in tags.items())
                 + "</Metadata>")
    for band in range(1, count + 1):
        lines.append(f'  <VRTRasterBand dataType="{GDAL_TYPES.get(dtype, dtype)}" band="{band}">')
        if descriptions[band - 1]:
            lines.append(f"    <Description>{escape(descriptions[band - 1])}</Description>")
        if count == 1:
            lines.append(f"    <NoDataValue>{NODATA}</NoDataValue>")
        if band == 1 and colormap:
            lines.append("    <ColorInterp>Palette</ColorInterp>\n    <ColorTable>")
            lines += [f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>'
                      for _, (r, g, b, a) in sorted(colormap.items())]
            lines.append("    </ColorTable>")
        for path, col, row, w, h in boxes:
            source = escape(os.path.relpath(path, out.parent))
            lines += ["    <ComplexSource>",
                      f'      <SourceFilename relativeToVRT="1">{source}</SourceFilename>',
                      f"      <SourceBand>{band}</SourceBand>",
                      f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>',
                      f'      <DstRect xOff="{col}" yOff="{row}" xSize="{w}" ySize="{h}"/>',
                      *([f"      <NODATA>{NODATA}</NODATA>"] if count == 1 else []),
                      "    </ComplexSource>"]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    out.write_text("\n".join(lines) + "\n")
