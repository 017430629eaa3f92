"""``rsseg predict``: segment scenes of any size into georeferenced class masks."""

from __future__ import annotations

import datetime
import warnings
from pathlib import Path

import click

from rsseg.cli import options as opt
from rsseg.cli.catalogue import FLAG, SceneOutputs, run_catalogue, scene_outputs
from rsseg.errors import RssegError

BARRIER_TIMEOUT = datetime.timedelta(hours=24)  # ranks wait for each other's scenes, however long


def check_predict_outputs(scene: Path, checkpoint: Path, out: Path, probs: Path | None, vector: Path | None,
                          overwrite: bool) -> None:
    """The outputs of a one-scene ``predict`` checked before the model is even loaded (see
    :func:`check_outputs`). Existing masks are left to the engine, which skips a finished
    identical run and resumes a killed one; polygons are written last, so they are checked here."""
    from rsseg.io.outputs import check_outputs, run_record_path
    from rsseg.io.raster import open_raster, require_map_grid
    from rsseg.vector.write import resolve_format

    if vector is not None:
        resolve_format(vector, None)
    check_outputs({"-o": out, "--probs": probs, "the run record": run_record_path(out), "--vector": vector},
                  [scene, checkpoint], overwrite=True)
    if vector is not None and vector.exists() and not overwrite and not out.exists():
        raise RssegError(f"{vector}: output exists (use --overwrite to replace it)")
    if vector is not None:
        with open_raster(scene) as ds:
            require_map_grid(ds, scene, "--vector polygons")


@click.command()
@click.argument("scenes", nargs=-1, required=True)
@opt.output("Class mask GeoTIFF of a single scene (default: SCENE-STEM_mask.tif in the current folder).")
@click.option("--out-dir", type=opt.FOLDER,
              help="Write DIR/<stem>_mask.tif per scene, DIR/mosaic.vrt over them and DIR/catalog.json.")
@opt.checkpoint(help="rsseg model file, .pt or exported .onnx (default: the bundled default model).")
@opt.runtime
@click.option("--tile", type=opt.POSITIVE_INT, help="Window size in pixels (default: the model's training tile).")
@click.option("--overlap", type=opt.FRACTION, default=None, help="Window overlap fraction in [0, 1) [default: 0.5].")
@click.option("--stride", type=opt.POSITIVE_INT, help="Window stride in pixels (instead of --overlap).")
@opt.batch_size
@opt.tta
@opt.bands
@click.option("--gsd", default="auto", show_default=True,
              help="auto: resample windows to the model's ground sample distance where the scene's differs by "
                   "more than 1.25x; native: never; METRES: the scene's metres per pixel (resampled as auto).")
@click.option("--input-scale", type=opt.POSITIVE_FLOAT, help="Divide raw values by this (default: the model's).")
@click.option("--probs", is_flag=False, flag_value=FLAG,
              help="Also write per-class probabilities (uint8): PATH, or as a flag <stem>_probs.tif.")
@click.option("--confidence", is_flag=False, flag_value=FLAG,
              help="Also write confidence bands (uint8): top-class probability, margin, entropy, TTA disagreement; "
                   "PATH, or as a flag <stem>_confidence.tif.")
@click.option("--vector", is_flag=False, flag_value=FLAG,
              help="Also write polygons (gpkg/shp/geojson/fgb): PATH, or as a flag <stem>_polygons.gpkg "
                   "(with --out-dir also DIR/mosaic.gpkg, one layer over all scenes).")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs.")
@opt.device()
@opt.precision
@opt.threads_for("PyTorch's or ONNX Runtime's")
@click.option("--restart", is_flag=True, help="Ignore the resume journal of unfinished scenes; start afresh.")
@opt.overwrite
@opt.quiet
def predict(scenes: tuple[str, ...], output: Path | None, out_dir: Path | None, checkpoint: Path | None,
            runtime: str, tile: int | None, overlap: float | None, stride: int | None, batch_size: int, tta: str,
            bands: list[int] | None, gsd: str, input_scale: float | None, probs: str | None,
            confidence: str | None, vector: str | None, cog: bool, device: str, precision: str, threads: int | None,
            restart: bool, overwrite: bool, quiet: bool) -> None:
    """Segment SCENES window by window with overlap blending.

    SCENES are files (VRT mosaics included), folders, glob patterns or @LIST.txt files of
    paths. Each scene gets a class mask with its CRS and transform (nodata 255), a JSON record
    beside it, and optionally probabilities, confidence bands and polygons. An interrupted run resumes from the
    last finished band of rows when started again; under torchrun, ranks share the scenes
    (or the rows of fewer scenes than ranks).
    """
    from rsseg.distributed import cleanup, init_distributed
    from rsseg.io.inputs import expand_inputs
    from rsseg.models.runtime import load_model
    from rsseg.tiling import PredictOptions, predict_scene

    if overlap is not None and stride is not None:
        raise click.UsageError("give --overlap or --stride, not both")
    paths = expand_inputs(list(scenes))
    if len(paths) > 1 and out_dir is None:
        raise click.UsageError(f"{len(paths)} scenes need --out-dir DIR")
    if out_dir is not None and output is not None:
        raise click.UsageError("give -o/--output (one scene) or --out-dir, not both")
    if out_dir is not None and any(v not in (None, FLAG) for v in (probs, confidence, vector)):
        raise click.UsageError("with --out-dir, give --probs, --confidence and --vector without a path")
    if len(paths) == 1 and out_dir is None and not paths[0].exists():
        raise RssegError(f"{paths[0]}: file not found")
    options = PredictOptions(tile=tile, overlap=0.5 if overlap is None else overlap, stride=stride,
                             batch_size=batch_size, tta=tta, bands=tuple(bands) if bands else None, cog=cog,
                             overwrite=overwrite, progress=not quiet, input_scale=input_scale, threads=threads,
                             restart=restart, gsd=gsd, precision=precision)
    if checkpoint is None:
        from rsseg.models.default import DEFAULT_MODEL

        if not DEFAULT_MODEL.is_file():
            raise RssegError(f"no --checkpoint given and no default model at {DEFAULT_MODEL}")
        checkpoint = DEFAULT_MODEL
        click.echo(f"Using the bundled default model {DEFAULT_MODEL} (trained on synthetic "
                   f"scenes; pass --checkpoint for real maps)", err=True)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    def names(scene: Path) -> SceneOutputs:
        if out_dir is not None:
            return scene_outputs(scene, out_dir, probs=probs is not None, vector=vector is not None,
                                 confidence=confidence is not None)
        default = scene_outputs(scene, output.parent if output else Path.cwd(), probs=probs == FLAG,
                                vector=vector == FLAG, confidence=confidence == FLAG)
        return SceneOutputs(output or default.mask, default.probs or (Path(probs) if probs else None),
                            default.vector or (Path(vector) if vector else None),
                            default.confidence or (Path(confidence) if confidence else None))

    if out_dir is None:
        first = names(paths[0])
        check_predict_outputs(paths[0], checkpoint, first.mask, first.probs, first.vector, overwrite)
    env, dev = init_distributed(device, backend="gloo", timeout=BARRIER_TIMEOUT)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            model, card, _ = load_model(checkpoint, dev, runtime, threads, precision)
        for w in caught:
            click.echo(f"Warning: {w.message}", err=True)

        def predict_one(scene: Path, outputs: SceneOutputs, split) -> str | None:
            report = predict_scene(scene, outputs.mask, model, card, options, split=split, probs=outputs.probs,
                                   confidence=outputs.confidence,
                                   device=str(dev), progress=options.progress and env.is_main,
                                   model_source=str(checkpoint))
            if split is not None and not env.is_main:
                return None
            lines = [report.summary_line()]
            if report.unfamiliar_line():
                lines.append(report.unfamiliar_line())
            if outputs.vector is not None and not (report.skipped and outputs.vector.exists()):
                from rsseg.vector import vectorize_mask

                lines.append(vectorize_mask(outputs.mask, outputs.vector, probs_path=outputs.probs,
                                            overwrite=overwrite, progress=not quiet).summary_line())
            return "\n".join(lines)

        catalogue_vector = out_dir / "mosaic.gpkg" if out_dir is not None and vector and len(paths) > 1 else None
        run_catalogue(paths, names, predict_one, env, out_dir, catalogue_vector, probs is not None, quiet)
    finally:
        cleanup()
