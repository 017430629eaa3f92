"""``rsseg prepare``: turn benchmark tiles or your own scene + labels into a patch folder.

The benchmark subcommands are generated from the dataset registry (:mod:`rsseg.data.registry`);
``generic`` is written here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from rsseg.cli import options as opt

if TYPE_CHECKING:  # the registry imports torch: loaded when a dataset command is asked for
    from rsseg.data.registry import DatasetEntry, DatasetParameter

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


def _parameter_option(entry: DatasetEntry, parameter: DatasetParameter) -> Callable:
    """``--NAME`` for a dataset's own parameter: its choices, or the type of its default."""
    default = entry.default(parameter.name)
    kind = click.Choice(parameter.choices) if parameter.choices else type(default)
    return click.option(f"--{parameter.name.replace('_', '-')}", parameter.name, type=kind, default=default,
                        show_default=True, help=parameter.help)


def dataset_command(entry: DatasetEntry) -> click.Command:
    """The ``rsseg prepare NAME`` subcommand of a registered dataset."""

    def run(src: Path, output: Path, patch: int, stride: int, overwrite: bool, quiet: bool, **parameters: Any) -> None:
        _check_sizes(patch, stride)
        result = entry.prepare(src, output, patch=patch, stride=stride, overwrite=overwrite, progress=not quiet,
                               **parameters)
        click.echo(result.summary)

    options = [_src, _out, _patch_options(entry.default("patch"), entry.default("stride")),
               *(_parameter_option(entry, p) for p in entry.parameters), opt.overwrite, opt.quiet]
    for option in reversed(options):
        run = option(run)
    return click.command(entry.name, help=entry.help)(run)


class DatasetGroup(click.Group):
    """Subcommands written here (``generic``) and one generated per registered dataset."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from rsseg.data.registry import list_datasets

        return sorted({*self.commands, *(entry.name for entry in list_datasets())})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        from rsseg.data.registry import get_dataset

        return dataset_command(get_dataset(name)) if name in self.list_commands(ctx) else None


@click.group(cls=DatasetGroup)
def prepare() -> None:
    """Cut benchmark tiles or a labelled scene into patches for `rsseg train`.

    \b
    Output: OUT/{train,val,test}/{images,masks}/NAME.tif and OUT/dataset.yaml
    (class names, colours, ignore index 255, band mean/std of the train split).
    """


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
@click.option("--polygon-class", help="Vector labels: every polygon is this class (no class attribute needed).")
@click.option("--background", help="Vector labels: class of pixels under no polygon (default: ignored).")
@click.option("--bands", type=opt.IntList(minimum=1), help="1-based scene bands to keep, e.g. 1,2,3.")
@click.option("--val-fraction", type=opt.FRACTION, default=0.2, show_default=True,
              help="Bottom strip of each scene used for validation.")
@click.option("--test-fraction", type=opt.FRACTION, default=0.0, show_default=True,
              help="Strip below validation used for testing.")
@click.option("--gsd", type=opt.POSITIVE_FLOAT, help="Metres per pixel, recorded for GSD-aware prediction "
                                                     "(default: from the first scene's georeference).")
@click.option("--label-set", "label_sets", multiple=True, metavar="VALUE=NAME,NAME,...",
              help="Index labels: VALUE means one of these classes, e.g. 254=ImSurf,LowVeg,Tree,Clutter "
                   "(repeatable).")
@opt.overwrite
def generic(images: tuple[Path, ...], labels: tuple[Path, ...], classes: str, output: Path, patch: int, stride: int,
            palette: str | None, class_field: str, polygon_class: str | None, background: str | None,
            bands: list[int] | None, val_fraction: float, test_fraction: float, gsd: float | None,
            label_sets: tuple[str, ...], overwrite: bool) -> None:
    """Your own GeoTIFF(s) with label rasters or vector labels.

    \b
    rsseg prepare generic --image tile.tif --labels buildings.gpkg --classes background,building \\
        --polygon-class building --background background --output patches
    """
    from rsseg.data.generic import GenericOptions, prepare_generic
    from rsseg.errors import RssegError

    _check_sizes(patch, stride)
    if val_fraction + test_fraction >= 1:
        raise click.BadParameter(f"{val_fraction} + --test-fraction {test_fraction} leave no rows for training",
                                 param_hint="--val-fraction")
    for path in (*images, *labels):
        if not path.exists():
            raise RssegError(f"{path}: file not found")
    options = GenericOptions(patch=patch, stride=stride, palette=palette, class_field=class_field,
                             polygon_class=polygon_class, background=background, bands=bands,
                             val_fraction=val_fraction, test_fraction=test_fraction, gsd=gsd, label_sets=label_sets,
                             overwrite=overwrite)
    click.echo(prepare_generic(images, labels, classes, output, options).summary)
