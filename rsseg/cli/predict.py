"""``rsseg predict``: segment a scene of any size into a georeferenced class mask."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from rsseg.cli.options import IntList
from rsseg.errors import RssegError


@click.command()
@click.argument("scene", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(path_type=Path),
              help="Class mask GeoTIFF (default: SCENE-STEM_mask.tif in the current folder).")
@click.option("--checkpoint", type=click.Path(path_type=Path),
              help="rsseg model file, .pt or exported .onnx (default: the bundled default model).")
@click.option("--runtime", type=click.Choice(["auto", "torch", "onnx"]), default="auto", show_default=True,
              help="auto: ONNX Runtime on the CPU (a .pt is exported once to a cache), PyTorch on a GPU.")
@click.option("--tile", type=int, help="Window size in pixels (default: the model's training tile).")
@click.option("--overlap", type=float, default=None, help="Window overlap fraction [default: 0.5].")
@click.option("--stride", type=int, help="Window stride in pixels (instead of --overlap).")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Windows per model call.")
@click.option("--tta", type=click.Choice(["none", "flip", "d4"]), default="none", show_default=True,
              help="Test-time augmentation, averaged in probability space (d4: square tiles only).")
@click.option("--bands", type=IntList(), help="1-based scene bands feeding the model, e.g. 3,2,1.")
@click.option("--input-scale", type=float, help="Divide raw values by this (default: the model's).")
@click.option("--probs", type=click.Path(path_type=Path), help="Also write per-class probabilities (uint8).")
@click.option("--vector", type=click.Path(path_type=Path), help="Also write polygons (gpkg/shp/geojson/fgb).")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--threads", type=int, help="CPU threads, PyTorch's or ONNX Runtime's (default: all cores).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def predict(scene: Path, out: Path | None, checkpoint: Path | None, runtime: str, tile: int | None, overlap: float | None,
            stride: int | None, batch_size: int, tta: str, bands: list[int] | None, input_scale: float | None,
            probs: Path | None, vector: Path | None, cog: bool, device: str, threads: int | None,
            overwrite: bool, quiet: bool) -> None:
    """Segment SCENE window by window with overlap blending.

    Writes a class mask with the scene's CRS and transform (nodata 255), a JSON record of
    the run beside it, and optionally probabilities and polygons.
    """
    from rsseg.models.default import DEFAULT_MODEL
    from rsseg.tiling import predict_scene
    from rsseg.models.runtime import load_model
    from rsseg.tiling.engine import resolve_device

    if overlap is not None and stride is not None:
        raise click.UsageError("give --overlap or --stride, not both")
    if not scene.exists():
        raise RssegError(f"{scene}: file not found")
    if checkpoint is None:
        if not DEFAULT_MODEL.is_file():
            raise RssegError(f"no --checkpoint given and no default model at {DEFAULT_MODEL}")
        checkpoint = DEFAULT_MODEL
        click.echo(f"Using the bundled default model {DEFAULT_MODEL} (trained on synthetic "
                   f"scenes; pass --checkpoint for real maps)", err=True)
    out = out or Path.cwd() / f"{scene.stem}_mask.tif"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        model, card, _ = load_model(checkpoint, resolve_device(device), runtime, threads)
        report = predict_scene(scene, out, model, card, tile=tile, overlap=0.5 if overlap is None else overlap,
                               stride=stride, batch_size=batch_size, tta=tta, bands=bands, probs=probs, cog=cog,
                               device=device, overwrite=overwrite, progress=not quiet, input_scale=input_scale,
                               threads=threads, model_source=str(checkpoint))
    for w in caught:
        click.echo(f"Warning: {w.message}", err=True)
    click.echo(report.summary_line())
    if vector is not None:
        from rsseg.vector import vectorize_mask

        summary = vectorize_mask(out, vector, probs_path=probs, overwrite=overwrite, progress=not quiet)
        click.echo(summary.summary_line())
