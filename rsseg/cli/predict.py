"""``rsseg predict``: segment a scene of any size into a georeferenced class mask."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from rsseg.cli import options as opt
from rsseg.errors import RssegError


@click.command()
@click.argument("scene", type=click.Path(path_type=Path))
@opt.output("Class mask GeoTIFF (default: SCENE-STEM_mask.tif in the current folder).")
@opt.checkpoint(help="rsseg model file, .pt or exported .onnx (default: the bundled default model).")
@opt.runtime
@click.option("--tile", type=opt.POSITIVE_INT, help="Window size in pixels (default: the model's training tile).")
@click.option("--overlap", type=opt.FRACTION, default=None, help="Window overlap fraction in [0, 1) [default: 0.5].")
@click.option("--stride", type=opt.POSITIVE_INT, help="Window stride in pixels (instead of --overlap).")
@opt.batch_size
@opt.tta
@opt.bands
@click.option("--input-scale", type=opt.POSITIVE_FLOAT, help="Divide raw values by this (default: the model's).")
@click.option("--probs", type=opt.FILE, help="Also write per-class probabilities (uint8).")
@click.option("--vector", type=opt.FILE, help="Also write polygons (gpkg/shp/geojson/fgb).")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs.")
@opt.device()
@opt.threads_for("PyTorch's or ONNX Runtime's")
@opt.overwrite
@opt.quiet
def predict(scene: Path, output: Path | None, checkpoint: Path | None, runtime: str, tile: int | None,
            overlap: float | None, stride: int | None, batch_size: int, tta: str, bands: list[int] | None,
            input_scale: float | None, probs: Path | None, vector: Path | None, cog: bool, device: str,
            threads: int | None, overwrite: bool, quiet: bool) -> None:
    """Segment SCENE window by window with overlap blending.

    Writes a class mask with the scene's CRS and transform (nodata 255), a JSON record of
    the run beside it, and optionally probabilities and polygons.
    """
    from rsseg.device import resolve_device
    from rsseg.models.default import DEFAULT_MODEL
    from rsseg.models.runtime import load_model
    from rsseg.tiling import PredictOptions, predict_scene

    if overlap is not None and stride is not None:
        raise click.UsageError("give --overlap or --stride, not both")
    if not scene.exists():
        raise RssegError(f"{scene}: file not found")
    options = PredictOptions(tile=tile, overlap=0.5 if overlap is None else overlap, stride=stride,
                             batch_size=batch_size, tta=tta, bands=tuple(bands) if bands else None, probs=probs,
                             cog=cog, device=device, overwrite=overwrite, progress=not quiet,
                             input_scale=input_scale, threads=threads)
    dev = resolve_device(device)
    if checkpoint is None:
        if not DEFAULT_MODEL.is_file():
            raise RssegError(f"no --checkpoint given and no default model at {DEFAULT_MODEL}")
        checkpoint = DEFAULT_MODEL
        click.echo(f"Using the bundled default model {DEFAULT_MODEL} (trained on synthetic "
                   f"scenes; pass --checkpoint for real maps)", err=True)
    output = output or Path.cwd() / f"{scene.stem}_mask.tif"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        model, card, _ = load_model(checkpoint, dev, runtime, threads)
        report = predict_scene(scene, output, model, card, options, model_source=str(checkpoint))
    for w in caught:
        click.echo(f"Warning: {w.message}", err=True)
    click.echo(report.summary_line())
    if vector is not None:
        from rsseg.vector import vectorize_mask

        summary = vectorize_mask(output, vector, probs_path=probs, overwrite=overwrite, progress=not quiet)
        click.echo(summary.summary_line())
