"""``rsseg predict``: segment scenes of any size into georeferenced class masks."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rsseg.cli import options as opt
from rsseg.cli.flags import cli_message, flag, to_flags
from rsseg.errors import RssegError, captured_warnings

if TYPE_CHECKING:
    from rsseg.io.remote import Scene
    from rsseg.tiling.catalogue import SceneOutputs

FLAG = "\0flag"  # the value of --probs/--confidence/--vector given without a path

BARRIER_TIMEOUT = datetime.timedelta(hours=24)  # ranks wait for each other's scenes, however long


def check_predict_outputs(scene: Scene, checkpoint: Path, outputs: SceneOutputs, overwrite: bool) -> None:
    """The outputs of a one-scene ``predict`` checked before the model is even loaded (see
    :func:`check_outputs`). Existing rasters are left to the engine, which skips a finished
    identical run and resumes a killed one; polygons are written last, so they are checked here."""
    from rsseg.io.outputs import check_outputs, run_record_path
    from rsseg.io.qgis_style import sidecar_path
    from rsseg.io.raster import open_raster, require_map_grid
    from rsseg.vector.postgis import check_target, parse_target
    from rsseg.vector.write import resolve_format, sidecars

    vector = outputs.vector
    local = vector if isinstance(vector, Path) else None
    parts = {f"{what} (--vector)": path for what, path in sidecars(local, resolve_format(local, None)).items()} \
        if local is not None else {}
    rasters = {"-o": outputs.mask, **{flag(name): path for name, path in outputs.rasters.items()}}
    check_outputs({**rasters, **{f"the QGIS style of {label}": sidecar_path(path) for label, path in rasters.items()},
                   "the run record": run_record_path(outputs.mask), "--vector": local, **parts},
                  [scene, checkpoint], overwrite=True)
    if vector is not None and not overwrite and not outputs.mask.exists():
        if local is not None and local.exists():
            raise RssegError(f"{local}: output exists (use --overwrite to replace it)")
        if isinstance(vector, str):
            check_target(parse_target(vector), overwrite=False, append=False)
    if vector is not None:
        with open_raster(scene) as ds:
            require_map_grid(ds, str(scene), "--vector polygons")


@click.command()
@click.argument("scenes", nargs=-1, required=True)
@opt.output("Class mask GeoTIFF of a single scene (default: SCENE-STEM_mask.tif in the current folder).")
@click.option("--out-dir", type=opt.FOLDER,
              help="Write DIR/<stem>_mask.tif per scene, DIR/mosaic.vrt over them, DIR/catalog.json and a STAC "
                   "catalogue (DIR/collection.json).")
@click.option("--asset", help="With a STAC Item as SCENE: the asset to segment (default: the first with role "
                                "visual, then data).")
@click.option("--download-whole", is_flag=True,
              help="Allow downloading a remote scene whole from a server without range requests.")
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
              help="Also write polygons (gpkg/shp/geojson/fgb, or a PostGIS table postgresql://...?table=NAME): "
                   "PATH, or as a flag <stem>_polygons.gpkg "
                   "(with --out-dir also DIR/mosaic.gpkg, one layer over all scenes).")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimized GeoTIFFs.")
@opt.device()
@opt.precision
@opt.calibrate
@opt.threads_for("PyTorch's or ONNX Runtime's")
@click.option("--restart", is_flag=True, help="Ignore the resume journal of unfinished scenes; start afresh.")
@opt.overwrite
@opt.quiet
def predict(scenes: tuple[str, ...], output: Path | None, out_dir: Path | None, asset: str | None,
            download_whole: bool, checkpoint: Path | None,
            runtime: str, tile: int | None, overlap: float | None, stride: int | None, batch_size: int, tta: str,
            bands: list[int] | None, gsd: str, input_scale: float | None, probs: str | None,
            confidence: str | None, vector: str | None, cog: bool, device: str, precision: str,
            calibrate: tuple[Path, ...], threads: int | None, restart: bool, overwrite: bool, quiet: bool) -> None:
    """Segment SCENES window by window with overlap blending.

    SCENES are files (VRT mosaics included), folders, glob patterns, @LIST.txt files of
    paths, URLs (https://, s3://, /vsicurl/: read with range requests) or STAC Items (.json,
    local or a URL; see --asset). Each scene gets a class mask with its CRS and transform (nodata 255), a JSON record
    beside it, and optionally probabilities, confidence bands and polygons. An interrupted run resumes from the
    last finished band of rows when started again; under torchrun, ranks share the scenes
    (or the rows of fewer scenes than ranks).
    """
    from rsseg.io.inputs import expand_inputs
    from rsseg.io.outputs import check_output_folder
    from rsseg.tiling import PredictOptions
    from rsseg.tiling.catalogue import scene_outputs

    if overlap is not None and stride is not None:
        raise click.UsageError("give --overlap or --stride, not both")
    if calibrate and precision != "int8":
        raise click.UsageError("--calibrate applies to --precision int8 only")
    paths = expand_inputs(list(scenes), asset, download_whole)
    if len(paths) > 1 and out_dir is None:
        raise click.UsageError(f"{len(paths)} scenes need --out-dir DIR")
    if out_dir is not None and output is not None:
        raise click.UsageError("give -o/--output (one scene) or --out-dir, not both")
    asked = {"probs": probs, "confidence": confidence}
    if out_dir is not None and any(v not in (None, FLAG) for v in (*asked.values(), vector)):
        raise click.UsageError("with --out-dir, give --probs, --confidence and --vector without a path")
    if len(paths) == 1 and out_dir is None and isinstance(paths[0], Path) and not paths[0].exists():
        raise RssegError(f"{paths[0]}: file not found")
    options = PredictOptions(tile=tile, overlap=0.5 if overlap is None else overlap, stride=stride,
                             batch_size=batch_size, tta=tta, bands=tuple(bands) if bands else None, cog=cog,
                             overwrite=overwrite, progress=not quiet, input_scale=input_scale, threads=threads,
                             restart=restart, gsd=gsd, precision=precision)
    checkpoint, note = (checkpoint, None) if checkpoint is not None else _default_model()
    if out_dir is None:
        jobs = [(paths[0], _named_outputs(paths[0], output, asked, vector))]
        check_predict_outputs(paths[0], checkpoint, jobs[0][1], overwrite)
    else:
        check_output_folder(out_dir)
        kinds = [name for name, value in asked.items() if value is not None]
        jobs = [(scene, scene_outputs(scene, out_dir, kinds, vector is not None)) for scene in paths]
    _run(jobs, checkpoint, note, runtime, device, threads, options, out_dir, bool(vector) and len(paths) > 1, calibrate)


def _warn(messages: list[str]) -> None:
    for text in messages:
        click.echo(f"Warning: {to_flags(text)}", err=True)


def _default_model() -> tuple[Path, str]:
    """The bundled default model and the note saying it is used."""
    from rsseg.models.default import DEFAULT_MODEL

    if not DEFAULT_MODEL.is_file():
        raise RssegError(f"no --checkpoint given and no default model at {DEFAULT_MODEL}")
    return DEFAULT_MODEL, (f"Using the bundled default model {DEFAULT_MODEL} (trained on synthetic "
                           f"scenes; pass --checkpoint for real maps)")


def _named_outputs(scene: Scene, output: Path | None, asked: dict[str, str | None], vector: str | None
                   ) -> SceneOutputs:
    """A single scene's outputs: the paths given, or for flags given alone ``<stem>_<kind>`` beside the mask."""
    from rsseg.tiling.catalogue import SceneOutputs, scene_outputs
    from rsseg.vector.postgis import is_postgis

    default = scene_outputs(scene, output.parent if output else Path.cwd(),
                            [name for name, value in asked.items() if value == FLAG], vector == FLAG)
    rasters = {name: Path(value) for name, value in asked.items() if value not in (None, FLAG)}
    return SceneOutputs(output or default.mask, {**default.rasters, **rasters},
                        default.vector or ((vector if is_postgis(vector) else Path(vector)) if vector else None))


def _run(jobs: list, checkpoint: Path, note: str | None, runtime: str, device: str, threads: int | None,
         options, out_dir: Path | None, vector_mosaic: bool, calibrate: tuple[Path, ...] = ()) -> None:
    """Load the model, run the scenes through the library and print what happened."""
    from rsseg.distributed import cleanup, init_distributed
    from rsseg.models.base import window_multiple
    from rsseg.models.runtime import load_model
    from rsseg.tiling.catalogue import run_catalogue
    from rsseg.tiling.options import check_tile

    env, dev = init_distributed(device, backend="gloo", timeout=BARRIER_TIMEOUT)
    try:
        with captured_warnings() as caught:
            model, card, _ = load_model(checkpoint, dev, runtime, threads, options.precision, calibrate,
                                        progress=options.progress)
        if options.tile:
            check_tile(options.tile, window_multiple(model))
        if note:
            click.echo(note, err=True)
        _warn(caught)

        def show(result) -> None:
            _warn(result.warnings)
            if result.exception is not None:
                click.echo(f"Error: {cli_message(result.exception)}", err=True)
            for line in result.lines():
                click.echo(to_flags(line))

        report = run_catalogue(jobs, model, card, options, env, out_dir, on_scene=show, vector_mosaic=vector_mosaic,
                               device=str(dev), model_source=str(checkpoint))
        if report.vector is not None:
            click.echo(f"catalogue: {to_flags(report.vector.summary_line())}")
        if env.is_main and out_dir is not None:
            click.echo(report.summary_line())
        report.raise_for_failures()
    finally:
        cleanup()
