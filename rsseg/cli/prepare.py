"""``rsseg prepare``: turn benchmark tiles or your own scene + labels into a patch folder."""

from __future__ import annotations

from pathlib import Path

import click

from rsseg.cli import options as opt

_src = click.option("--src", type=opt.FOLDER, required=True,
                    help="Folder holding the dataset as downloaded (original names and layout).")
_out = opt.output("Patch folder to write.", required=True, folder=True)


def _patch_options(patch: int, stride: int):
    """``--patch``/``--stride`` with the given defaults."""
    def decorate(func):
        func = click.option("--stride", type=opt.POSITIVE_INT, default=stride, show_default=True,
                            help="Stride of train/val patches (test patches do not overlap).")(func)
        return click.option("--patch", type=click.IntRange(min=16), default=patch, show_default=True,
                            help="Patch size in pixels.")(func)
    return decorate


def _check_sizes(patch: int, stride: int) -> None:
    if stride > patch:
        raise click.BadParameter(f"{stride} is larger than --patch {patch}", param_hint="--stride")


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
@opt.overwrite
@opt.quiet
def vaihingen(src: Path, output: Path, patch: int, stride: int, overwrite: bool, quiet: bool) -> None:
    """ISPRS Vaihingen (top/ + gts_for_participants/ [+ gts_eroded_for_participants/])."""
    from rsseg.data.prepare import prepare_vaihingen

    _check_sizes(patch, stride)
    click.echo(prepare_vaihingen(src, output, patch, stride, overwrite, not quiet).summary)


@prepare.command()
@_src
@_out
@_patch_options(1024, 512)
@click.option("--variant", type=click.Choice(["RGB", "IRRG", "RGBIR"]), default="RGB", show_default=True,
              help="Which orthophotos: 2_Ortho_RGB, 3_Ortho_IRRG or 4_Ortho_RGBIR.")
@opt.overwrite
@opt.quiet
def potsdam(src: Path, output: Path, patch: int, stride: int, variant: str, overwrite: bool, quiet: bool) -> None:
    """ISPRS Potsdam (2_Ortho_RGB/ + 5_Labels_all/ [+ 5_Labels_all_noBoundary/])."""
    from rsseg.data.prepare import prepare_potsdam

    _check_sizes(patch, stride)
    click.echo(prepare_potsdam(src, output, patch, stride, variant, overwrite, not quiet).summary)


@prepare.command()
@_src
@_out
@_patch_options(1024, 512)
@opt.overwrite
@opt.quiet
def uavid(src: Path, output: Path, patch: int, stride: int, overwrite: bool, quiet: bool) -> None:
    """UAVid (uavid_{train,val,test}/seqN/{Images,Labels}/NNNNNN.png)."""
    from rsseg.data.prepare import prepare_uavid

    _check_sizes(patch, stride)
    click.echo(prepare_uavid(src, output, patch, stride, overwrite, not quiet).summary)


@prepare.command()
@click.option("--image", "images", type=opt.FILE, multiple=True,
              required=True, help="Scene GeoTIFF (repeatable, one --labels each).")
@click.option("--labels", "labels", type=opt.FILE, multiple=True,
              required=True, help="Index-mask raster, colour raster (with --palette) or polygons (gpkg/shp).")
@click.option("--classes", required=True,
              help="Comma-separated class names (ids 0..K-1 in order) or a preset: isprs, uavid.")
@_out
@_patch_options(512, 256)
@click.option("--palette", help="Labels are RGB colours: a preset name or 'r,g,b;r,g,b;...' per class.")
@click.option("--class-field", default="class", show_default=True,
              help="Attribute of vector labels holding the class name or id.")
@click.option("--bands", type=opt.IntList(minimum=1), help="1-based scene bands to keep, e.g. 1,2,3.")
@click.option("--val-fraction", type=opt.FRACTION, default=0.2, show_default=True,
              help="Bottom strip of each scene used for validation.")
@click.option("--test-fraction", type=opt.FRACTION, default=0.0, show_default=True,
              help="Strip below validation used for testing.")
@opt.overwrite
def generic(images: tuple[Path, ...], labels: tuple[Path, ...], classes: str, output: Path, patch: int, stride: int,
            palette: str | None, class_field: str, bands: list[int] | None, val_fraction: float,
            test_fraction: float, overwrite: bool) -> None:
    """Your own GeoTIFF(s) with label rasters or vector labels."""
    from rsseg.data.prepare import prepare_generic
    from rsseg.errors import RssegError

    _check_sizes(patch, stride)
    if val_fraction + test_fraction >= 1:
        raise click.BadParameter(f"{val_fraction} + --test-fraction {test_fraction} leave no rows for training",
                                 param_hint="--val-fraction")
    for path in (*images, *labels):
        if not path.exists():
            raise RssegError(f"{path}: file not found")
    click.echo(prepare_generic(images, labels, classes, output, patch, stride, palette, class_field, bands,
                               val_fraction, test_fraction, overwrite).summary)
