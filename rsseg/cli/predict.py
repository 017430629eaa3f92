"""``rsseg predict``: segment scenes of any size into georeferenced class masks."""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from rsseg.cli.catalogue import FLAG, SceneOutputs, run_catalogue, scene_outputs
from rsseg.cli.options import IntList
from rsseg.errors import RssegError

BARRIER_TIMEOUT = datetime.timedelta(hours=24)  # ranks wait for each other's scenes, however long


@click.command()
@click.argument("scenes", nargs=-1, required=True)
@click.option("-o", "--output", "out", type=click.Path(path_type=Path),
              help="Class mask GeoTIFF of a single scene (default: SCENE-STEM_mask.tif in the current folder).")
@click.option("--out-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write DIR/<stem>_mask.tif per scene, DIR/mosaic.vrt over them and DIR/catalog.json.")
@click.option("--checkpoint", type=click.Path(path_type=Path),
              help="rsseg model file (default: the bundled default model).")
@click.option("--tile", type=int, help="Window size in pixels (default: the model's training tile).")
@click.option("--overlap", type=float, default=None, help="Window overlap fraction [default: 0.5].")
@click.option("--stride", type=int, help="Window stride in pixels (instead of --overlap).")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Windows per model call.")
@click.option("--tta", type=click.Choice(["none", "flip", "d4"]), default="none", show_default=True,
              help="Test-time augmentation, averaged in probability space (d4: square tiles only).")
@click.option("--bands", type=IntList(), help="1-based scene bands feeding the model, e.g. 3,2,1.")
@click.option("--input-scale", type=float, help="Divide raw values by this (default: the model's).")
@click.option("--probs", is_flag=False, flag_value=FLAG,
              help="Also write per-class probabilities (uint8): PATH, or as a flag <stem>_probs.tif.")
@click.option("--vector", is_flag=False, flag_value=FLAG,
              help="Also write polygons (gpkg/shp/geojson/fgb): PATH, or as a flag <stem>_polygons.gpkg "
                   "(with --out-dir also DIR/mosaic.gpkg, one layer over all scenes).")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs.")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, cuda:N or auto (under torchrun: the GPU of LOCAL_RANK).")
@click.option("--threads", type=int, help="CPU threads (default: all available cores).")
@click.option("--restart", is_flag=True, help="Ignore the resume journal of unfinished scenes; start afresh.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def predict(scenes: tuple[str, ...], out: Path | None, out_dir: Path | None, checkpoint: Path | None,
            tile: int | None, overlap: float | None, stride: int | None, batch_size: int, tta: str,
            bands: list[int] | None, input_scale: float | None, probs: str | None, vector: str | None, cog: bool,
            device: str, threads: int | None, restart: bool, overwrite: bool, quiet: bool) -> None:
    """Segment SCENES window by window with overlap blending.

    SCENES are files (VRT mosaics included), folders, glob patterns or @LIST.txt files of
    paths. Each scene gets a class mask with its CRS and transform (nodata 255), a JSON record
    beside it, and optionally probabilities and polygons. An interrupted run resumes from the
    last finished band of rows when started again; under torchrun, ranks share the scenes
    (or the rows of fewer scenes than ranks).
    """
    from rsseg.distributed import cleanup, init_distributed
    from rsseg.io.inputs import expand_inputs
    from rsseg.models import load_checkpoint
    from rsseg.models.default import DEFAULT_MODEL
    from rsseg.tiling import predict_scene

    if overlap is not None and stride is not None:
        raise click.UsageError("give --overlap or --stride, not both")
    paths = expand_inputs(list(scenes))
    if len(paths) > 1 and out_dir is None:
        raise click.UsageError(f"{len(paths)} scenes need --out-dir DIR")
    if out_dir is not None and out is not None:
        raise click.UsageError("give -o/--output (one scene) or --out-dir, not both")
    if out_dir is not None and FLAG not in (probs or FLAG, vector or FLAG):
        raise click.UsageError("with --out-dir, give --probs and --vector without a path")
    if len(paths) == 1 and out_dir is None and not paths[0].exists():
        raise RssegError(f"{paths[0]}: file not found")
    if checkpoint is None:
        if not DEFAULT_MODEL.is_file():
            raise RssegError(f"no --checkpoint given and no default model at {DEFAULT_MODEL}")
        checkpoint = DEFAULT_MODEL
        click.echo(f"Using the bundled default model {DEFAULT_MODEL} (trained on synthetic "
                   f"scenes; pass --checkpoint for real maps)", err=True)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    def names(scene: Path) -> SceneOutputs:
        if out_dir is not None:
            return scene_outputs(scene, out_dir, probs is not None, vector is not None)
        default = scene_outputs(scene, out.parent if out else Path.cwd(), probs == FLAG, vector == FLAG)
        return SceneOutputs(out or default.mask, default.probs or (Path(probs) if probs else None),
                            default.vector or (Path(vector) if vector else None))

    env, dev = init_distributed(device, backend="gloo", timeout=BARRIER_TIMEOUT)
    try:
        model, card = load_checkpoint(checkpoint, dev)

        def predict_one(scene: Path, outputs: SceneOutputs, split) -> str | None:
            report = predict_scene(scene, outputs.mask, model, card, tile=tile,
                                   overlap=0.5 if overlap is None else overlap, stride=stride,
                                   batch_size=batch_size, tta=tta, bands=bands, probs=outputs.probs, cog=cog,
                                   device=str(dev), overwrite=overwrite, progress=not quiet and env.is_main,
                                   input_scale=input_scale, threads=threads, model_source=str(checkpoint),
                                   restart=restart, split=split)
            if split is not None and not env.is_main:
                return None
            lines = [report.summary_line()]
            if outputs.vector is not None and not (report.skipped and outputs.vector.exists()):
                from rsseg.vector import vectorize_mask

                lines.append(vectorize_mask(outputs.mask, outputs.vector, probs_path=outputs.probs,
                                            overwrite=overwrite, progress=not quiet).summary_line())
            return "\n".join(lines)

        catalogue_vector = out_dir / "mosaic.gpkg" if out_dir is not None and vector and len(paths) > 1 else None
        run_catalogue(paths, names, predict_one, env, out_dir, catalogue_vector, probs is not None, quiet)
    finally:
        cleanup()
