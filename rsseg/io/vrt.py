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


def write_mosaic_vrt(paths: list[Path], out: Path) -> None:
    """Write ``out``, a VRT placing every raster of ``paths`` at its georeferenced position.

    The rasters must share CRS, pixel size, band count and dtype (as the masks of one model
    over one orthophoto grid do); tags and band 1's colormap come from the first raster, so a
    mosaic of class masks keeps its class table. Uncovered pixels read as nodata 255.
    """
    infos = []
    for path in paths:
        with rasterio.open(path) as ds:
            infos.append((path, ds.transform, ds.width, ds.height, ds.crs, ds.count, ds.dtypes[0]))
    first_path, t0, _, _, crs, count, dtype = infos[0]
    for path, t, _, _, c, n, d in infos:
        if c != crs or (t.a, t.e, t.b, t.d) != (t0.a, t0.e, t0.b, t0.d) or n != count or d != dtype:
            raise RssegError(f"{path}: CRS, pixel size or bands differ from {first_path}; no mosaic")
    left = min(t.c for _, t, *_ in infos)
    top = max(t.f for _, t, *_ in infos) if t0.e < 0 else min(t.f for _, t, *_ in infos)
    origin = Affine(t0.a, 0, left, 0, t0.e, top)
    boxes = []
    for path, t, w, h, *_ in infos:
        col, row = ~origin * (t.c, t.f)
        boxes.append((path, round(col), round(row), w, h))
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
