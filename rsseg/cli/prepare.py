"""``rsseg prepare``: turn benchmark tiles or your own scene + labels into a patch folder."""

from __future__ import annotations

from pathlib import Path

import click

from rsseg.cli.options import IntList

_src = click.option("--src", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
                    help="Folder holding the dataset as downloaded (original names and layout).")
_out = click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
                    help="Patch folder to write.")
_overwrite = click.option("--overwrite", is_flag=True, help="Replace an existing patch folder.")


def _patch_options(patch: int, stride: int):
    """``--patch``/``--stride`` with the given defaults."""
    def decorate(func):
        func = click.option("--stride", type=int, default=stride, show_default=True,
                            help="Stride of train/val patches (test patches do not overlap).")(func)
        return click.option("--patch", type=int, default=patch, show_default=True, help="Patch size in pixels.")(func)
    return decorate


def _check_sizes(patch: int, stride: int) -> None:
    if patch < 16 or not 0 < stride <= patch:
        raise click.UsageError(f"--patch {patch} --stride {stride}: need patch >= 16 and 0 < stride <= patch")


@click.group()
def prepare() -> None:
    """Cut benchmark tiles or a labelled scene into patches for `rsseg train`.

    \b
    Output: OUT/{train,val,test}/{images,masks}/NAME.tif and OUT/dataset.yaml
    (class names, colours, ignore index 255, band mean/std of the train split).
    """


@prepare.command()
@_src
@_out
@_patch_options(1024, 512)
@_overwrite
def vaihingen(src: Path, out: Path, patch: int, stride: int, overwrite: bool) -> None:
    """ISPRS Vaihingen (top/ + gts_for_participants/ [+ gts_eroded_for_participants/])."""
    from rsseg.data.prepare import prepare_vaihingen

    _check_sizes(patch, stride)
    click.echo(prepare_vaihingen(src, out, patch, stride, overwrite)[1])


@prepare.command()
@_src
@_out
@_patch_options(1024, 512)
@click.option("--variant", type=click.Choice(["RGB", "IRRG", "RGBIR"]), default="RGB", show_default=True,
              help="Which orthophotos: 2_Ortho_RGB, 3_Ortho_IRRG or 4_Ortho_RGBIR.")
@_overwrite
def potsdam(src: Path, out: Path, patch: int, stride: int, variant: str, overwrite: bool) -> None:
    """ISPRS Potsdam (2_Ortho_RGB/ + 5_Labels_all/ [+ 5_Labels_all_noBoundary/])."""
    from rsseg.data.prepare import prepare_potsdam

    _check_sizes(patch, stride)
    click.echo(prepare_potsdam(src, out, patch, stride, variant, overwrite)[1])


@prepare.command()
@_src
@_out
@_patch_options(1024, 512)
@_overwrite
def uavid(src: Path, out: Path, patch: int, stride: int, overwrite: bool) -> None:
    """UAVid (uavid_{train,val,test}/seqN/{Images,Labels}/NNNNNN.png)."""
    from rsseg.data.prepare import prepare_uavid

    _check_sizes(patch, stride)
    click.echo(prepare_uavid(src, out, patch, stride, overwrite)[1])


@prepare.command()
@click.option("--image", "images", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              required=True, help="Scene GeoTIFF (repeatable, one --labels each).")
@click.option("--labels", "labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              required=True, help="Index-mask raster, colour raster (with --palette) or polygons (gpkg/shp).")
@click.option("--classes", required=True,
              help="Comma-separated class names (ids 0..K-1 in order) or a preset: isprs, uavid.")
@_out
@_patch_options(512, 256)
@click.option("--palette", help="Labels are RGB colours: a preset name or 'r,g,b;r,g,b;...' per class.")
@click.option("--class-field", default="class", show_default=True,
              help="Attribute of vector labels holding the class name or id.")
@click.option("--polygon-class", help="Vector labels: every polygon is this class (no class attribute needed).")
@click.option("--background", help="Vector labels: class of pixels under no polygon (default: ignored).")
@click.option("--bands", type=IntList(), help="1-based scene bands to keep, e.g. 1,2,3.")
@click.option("--val-fraction", type=float, default=0.2, show_default=True,
              help="Bottom strip of each scene used for validation.")
@click.option("--test-fraction", type=float, default=0.0, show_default=True,
              help="Strip below validation used for testing.")
@click.option("--gsd", type=float, help="Metres per pixel, recorded for GSD-aware prediction "
                                        "(default: from the first scene's georeference).")
@_overwrite
def generic(images: tuple[Path, ...], labels: tuple[Path, ...], classes: str, out: Path, patch: int, stride: int,
            palette: str | None, class_field: str, polygon_class: str | None, background: str | None,
            bands: list[int] | None, val_fraction: float, test_fraction: float, gsd: float | None,
            overwrite: bool) -> None:
    """Your own GeoTIFF(s) with label rasters or vector labels.

    \b
    rsseg prepare generic --image tile.tif --labels buildings.gpkg --classes background,building \\
        --polygon-class building --background background --out patches
    """
    from rsseg.data.prepare import prepare_generic

    _check_sizes(patch, stride)
    click.echo(prepare_generic(images, labels, classes, out, patch, stride, palette, class_field, bands,
                               val_fraction, test_fraction, overwrite, background, polygon_class, gsd)[1])
