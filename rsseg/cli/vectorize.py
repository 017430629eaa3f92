"""``rsseg vectorize``: a class mask to GIS polygons."""

from __future__ import annotations

from pathlib import Path

import click

from rsseg.cli import options as opt
from rsseg.cli.flags import to_flags
from rsseg.vector.write import DRIVERS


@click.command()
@click.argument("mask", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True,
              help="Output file (.gpkg default, .shp, .geojson, .fgb) or PostGIS table "
                   "postgresql://USER@HOST/DB?table=[SCHEMA.]NAME.")
@click.option("--classes", help="Comma-separated class ids or names (any case) to keep (default: all).")
@click.option("--min-area", type=opt.NON_NEGATIVE_FLOAT,
              help="Drop regions smaller than this many m² (pixels without CRS).")
@click.option("--simplify", type=opt.NON_NEGATIVE_FLOAT,
              help="Coverage simplification tolerance in map units (off by default).")
@click.option("--layer-per-class", is_flag=True, help="One GeoPackage layer per class.")
@click.option("--format", "fmt", type=click.Choice(sorted(DRIVERS)), help="Output format (default: by suffix).")
@click.option("--probs", type=opt.FILE, help="K-band uint8 probability raster: adds mean_prob.")
@click.option("--window-rows", type=opt.POSITIVE_INT, help="Rows per processing window (default: ~16 Mpixels).")
@click.option("--append", is_flag=True, help="PostGIS: add to an existing table with the same columns.")
@opt.overwrite
@opt.quiet
def vectorize(mask: Path, output: str, classes: str | None, min_area: float | None, simplify: float | None,
              layer_per_class: bool, fmt: str | None, probs: Path | None, window_rows: int | None,
              append: bool, overwrite: bool, quiet: bool) -> None:
    """Polygonise class mask MASK window by window (seamless, bounded memory) into OUTPUT."""
    from rsseg.vector import vectorize_mask

    summary = vectorize_mask(mask, output, classes=classes.split(",") if classes else None, min_area=min_area,
                             simplify=simplify, layer_per_class=layer_per_class, driver=fmt, probs_path=probs,
                             overwrite=overwrite, window_rows=window_rows, progress=not quiet, append=append)
    click.echo(to_flags(summary.summary_line()))
