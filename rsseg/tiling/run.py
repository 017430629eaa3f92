"""The streaming sliding-window inference of one scene: :func:`predict_scene`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import rsseg
from rsseg.device import resolve_device, torch_threads
from rsseg.distributed import DistEnv, barrier, contiguous_share
from rsseg.errors import OptionError, RssegError
from rsseg.io.atomic import atomic_output, output_lock
from rsseg.io.gdal_network import network_bytes_read, start_network_count
from rsseg.io.output_kind import OutputKind
from rsseg.io.outputs import check_geotiff_name, check_outputs, run_record_path, write_failed
from rsseg.io.qgis_style import sidecar_path
from rsseg.io.raster import (
    bounded_gdal_cache,
    check_value_range,
    georeference,
    is_georeferenced,
    open_raster,
    plan_bands,
)
from rsseg.io.remote import RemoteScene, Scene, as_scene, scene_identity
from rsseg.models.base import window_multiple
from rsseg.models.checkpoint import ModelCard
from rsseg.tiling.background import calls_behind
from rsseg.tiling.grid import TileGrid
from rsseg.tiling.gsd import GsdPlan, model_shape, plan_gsd, scene_window
from rsseg.tiling.journal import BandJournal, journal_field, model_digest, renamed_outputs, run_key
from rsseg.tiling.options import PredictOptions, check_tile, result_fields
from rsseg.tiling.outputs import MASK, OUTPUT_KINDS
from rsseg.tiling.pipeline import RowsJob, compute_bands, grid_stride, missing_runs, window_shape
from rsseg.tiling.predictor import Predictor
from rsseg.tiling.report import PredictReport, peak_rss_mb
from rsseg.tiling.writing import write_outputs


def predict_scene(scene: str | Path | RemoteScene, out: str | Path, model: torch.nn.Module, card: ModelCard,
                  options: PredictOptions | None = None, split: DistEnv | None = None,
                  **changes: Any) -> PredictReport:
    """Segment ``scene`` window by window into a georeferenced class mask at ``out``.

    ``options`` (default :class:`PredictOptions`) with any of its fields replaced by ``changes``,
    e.g. ``predict_scene(scene, out, model, card, tile=256, tta="flip")``. Softmax probabilities
    of overlapping windows are blended with a smooth positive weight in a rolling band of rows,
    so memory depends on window height × scene width, never on scene height. Finished bands of
    rows go to a journal beside the output (see :mod:`rsseg.tiling.journal`): a rerun after a
    kill resumes from them, unless ``restart``. With ``split`` (several ranks), each rank
    computes its own range of bands and rank 0 assembles them. Outputs appear under their final
    names only when complete; a finished identical run (same key in its record) is not redone.
    """
    opts = replace(options or PredictOptions(), **changes)
    dev = resolve_device(opts.device)
    threads = opts.threads or (len(os.sched_getaffinity(0)) if dev.type == "cpu" else None)
    with torch_threads(threads):
        return _predict(as_scene(scene), Path(out), model, card, opts, dev, split or DistEnv())


@dataclass
class _ScenePlan:
    """How one scene is run: its rows job and the key of its result."""

    job: RowsJob
    gsd: GsdPlan
    key: str
    identity: dict  # what identifies the scene's content


def _plan(scene: Scene, ds, model: torch.nn.Module, card: ModelCard, opts: PredictOptions, dev: torch.device,
          outputs: dict[OutputKind, Path]) -> _ScenePlan:
    """Check the scene and options against the model, lay out the windows and derive the resume key."""
    multiple = window_multiple(model)
    tile = opts.tile or card.tile_size
    bands = plan_bands(ds, str(scene), card.in_channels, list(opts.bands or card.input.bands or []) or None,
                       opts.input_scale or card.input.scale)
    check_value_range(ds, str(scene), bands.bands, bands.input_scale, scale_given=bool(opts.input_scale))
    if not is_georeferenced(ds) and georeference(ds) is None:
        warnings.warn(f"{scene}: no georeference; outputs carry no CRS (pixel coordinates)", stacklevel=4)
    gsd_plan = plan_gsd(opts.gsd, ds, card)
    if gsd_plan.warning:
        warnings.warn(gsd_plan.warning, stacklevel=4)
    tile = scene_window(tile, gsd_plan.factor, multiple) if gsd_plan.resampled else tile
    tile_h, tile_w = window_shape(tile, ds.height, ds.width, multiple)
    step = opts.stride or max(1, round(tile * (1 - opts.overlap)))
    if step > tile:
        raise OptionError("stride", step, f"larger than the tile ({tile}) would leave gaps")
    grid = TileGrid.build(ds.height, ds.width, tile_h, tile_w, min(step, tile_h), min(step, tile_w))
    model_input = model_shape(tile_h, tile_w, gsd_plan.factor, multiple) if gsd_plan.resampled else None
    predictor = Predictor(model.to(dev).eval(), card, dev, opts, bands.input_scale, tile_h == tile_w, model_input,
                          disagreement=OUTPUT_KINDS["confidence"] in outputs)
    identity = scene_identity(scene)
    key = run_key(**identity,
                  model=model_digest(model), card=asdict(card), tile=(tile_h, tile_w), stride=grid_stride(grid),
                  bands=bands.bands, input_scale=bands.input_scale, outputs=[kind.name for kind in outputs],
                  device=dev.type, precision=predictor.precision.name, gsd_factor=gsd_plan.factor,
                  version=rsseg.__version__, options=result_fields(opts))
    report = PredictReport(str(scene), str(outputs[MASK]), _path_or_none(outputs, "probs"), ds.width, ds.height,
                           (tile_h, tile_w), grid_stride(grid), opts.batch_size, opts.tta, bands.bands, str(dev),
                           windows=len(grid), key=key, gsd=_gsd_record(gsd_plan),
                           scene_bytes=identity.get("size") if isinstance(scene, RemoteScene) else None,
                           model={"source": opts.model_source, **card.arch, "class_names": list(card.classes.names)},
                           confidence=_path_or_none(outputs, "confidence"),
                           precision={"name": predictor.precision.name, "reason": predictor.precision.reason},
                           outputs={kind.name: str(path) for kind, path in outputs.items() if kind is not MASK})
    job = RowsJob(ds, bands.bands, grid, opts.batch_size, predictor, card.num_classes, dev,
                  [kind for kind in outputs if kind is not MASK], report, opts.overlap_io)
    return _ScenePlan(job, gsd_plan, key, identity)


def _path_or_none(outputs: dict[OutputKind, Path], name: str) -> str | None:
    path = outputs.get(OUTPUT_KINDS[name])
    return str(path) if path else None


def _predict(scene: Scene, out: Path, model: torch.nn.Module, card: ModelCard, opts: PredictOptions,
             dev: torch.device, env: DistEnv) -> PredictReport:
    started = time.perf_counter()
    if opts.tile:
        check_tile(opts.tile, window_multiple(model))
    record_path = run_record_path(out)
    outputs = {MASK: out, **{OUTPUT_KINDS[name]: path for name, path in opts.extra_outputs().items()}}
    with contextlib.ExitStack() as stack:
        stack.enter_context(bounded_gdal_cache())
        start_network_count()
        ds = stack.enter_context(open_raster(scene))
        plan = _plan(scene, ds, model, card, opts, dev, outputs)
        files = [*outputs.values(), *([record_path] if opts.record else [])]
        if opts.record and not opts.overwrite and finished_earlier(record_path, plan.key, files):
            earlier = json.loads(record_path.read_text())
            return PredictReport(**{**{k: v for k, v in earlier.items() if k in PredictReport.__dataclass_fields__},
                                    "skipped": True})
        labels = {kind: f"`{'out' if kind is MASK else kind.name}`" for kind in outputs}
        for kind, path in outputs.items():
            check_geotiff_name(labels[kind], path)
        named = {**{labels[kind]: path for kind, path in outputs.items()},
                 **{f"the QGIS style of {labels[kind]}": sidecar_path(path) for kind, path in outputs.items()}}
        # a journal of this very run may have renamed some of its outputs before it was killed
        replace = {os.path.abspath(p) for p in named.values()} if opts.overwrite \
            else renamed_outputs(out, plan.key)
        check_outputs({**named, "the run record": record_path if opts.record else None}, [scene], opts.overwrite,
                      replaceable=replace)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        # one run at a time on these outputs (ranks of one run share them)
        claims = {kind: stack.enter_context(output_lock(path, ".tif")) for kind, path in outputs.items()} \
            if env.is_main else {}
        if env.is_main and isinstance(scene, RemoteScene):
            _warn_if_changed(scene, out, plan.identity)
        journal = BandJournal.open(out, plan.key, ds.height, opts.restart, create=env.is_main,
                                   band_rows=opts.band_rows, scene=plan.identity)
        if env.is_main:
            journal.verify(_band_shapes(plan.job, card), ds.width, card.num_classes)
        if env.enabled:
            barrier()
        try:
            _run_bands(scene, journal, plan.job, env, opts.progress, opts.overlap_io)
            if env.is_main:
                try:
                    write_outputs(ds, scene, journal, card, claims, opts.cog, plan.job.predictor.disagreement, replace)
                except RssegError:
                    raise
                except Exception as err:  # noqa: BLE001 (GDAL's error classes vary with the failing call)
                    raise write_failed(out, err) from None
        except Exception:
            if env.is_main:
                journal.remove()
            raise
        report = _finish(plan.job, started, dev)
        report.network_bytes = network_bytes_read() or None
        if env.is_main:
            if opts.record:
                with atomic_output(record_path, opts.overwrite) as tmp:
                    tmp.write_text(json.dumps(report.to_json(), indent=2))
            journal.remove()
    return report


def _warn_if_changed(scene: RemoteScene, out: Path, identity: dict) -> None:
    """One warning when the journal of an interrupted run was made from another version of this remote file."""
    earlier = journal_field(out, "scene")
    if isinstance(earlier, dict) and earlier.get("scene") == identity["scene"] and earlier != identity:
        changed = ", ".join(name.replace("_", "-") for name in sorted({*earlier, *identity} - {"scene"})
                            if earlier.get(name) != identity.get(name))
        warnings.warn(f"{scene}: the file changed on the server since the interrupted run ({changed}); "
                      "its finished rows are recomputed", stacklevel=4)


def _band_shapes(job: RowsJob, card: ModelCard) -> dict[str, tuple[int, ...]]:
    """The leading dimensions of each array of a journal band: none for the mask, bands for the others."""
    names = list(card.classes.names)
    return {MASK.name: (), **{kind.name: (len(kind.bands(names, job.predictor.disagreement)),) for kind in job.kinds}}


def _run_bands(scene: Scene, journal: BandJournal, job: RowsJob, env: DistEnv, progress: bool,
               overlap_io: bool) -> None:
    """Compute this rank's unfinished bands into the journal, then wait for the other ranks.

    With ``overlap_io``, finished bands are saved by a writer thread while the model computes
    the next ones (two bands wait at most). The final GeoTIFFs are assembled afterwards in one
    thread: GDAL writes blocks in the order its shared cache evicts them, which reads running
    beside it would make vary, and the files must be the same bytes on every run.
    """
    share = journal.bands[contiguous_share(len(journal.bands), env.rank, env.world_size)] \
        if env.enabled else journal.bands
    done = sum(journal.done(b) for b in share)
    if done:
        job.report.resumed_row = journal.first_missing_row() if not env.enabled else share[0].y0
        _say(f"resumed {scene.name} at row {journal.first_missing_row()} of {job.grid.height} "
             f"({done} of {len(share)} bands done{_rank_note(env)})")
    runs = missing_runs(journal, share)
    with tqdm(total=job.windows(runs), unit="win", desc=f"predict {scene.name}", disable=not progress,
              dynamic_ncols=True) as bar, calls_behind(overlap_io) as writer:
        for run in runs:
            for band, arrays in compute_bands(job, run, bar):
                writer.submit(journal.save, band, arrays)
    if env.enabled:
        barrier()  # every band is in the journal


def _finish(job: RowsJob, started: float, dev: torch.device) -> PredictReport:
    """The report with the model's calls and time, the confidence seen, memory and wall time."""
    report, predictor = job.report, job.predictor
    report.model_calls = predictor.calls
    report.model_seconds = predictor.seconds
    stats = predictor.statistics()
    report.mean_top_probability, report.mean_entropy = stats.mean_top_probability, stats.mean_entropy
    report.tta_disagreement = stats.tta_disagreement
    report.seconds = time.perf_counter() - started
    report.peak_rss_mb = peak_rss_mb()
    if dev.type == "cuda":
        report.peak_cuda_mb = torch.cuda.max_memory_allocated(dev) / 2**20
    return report


def _gsd_record(plan: GsdPlan) -> dict:
    return {"scene": plan.scene, "model": list(plan.model) if plan.model else None, "factor": plan.factor,
            "outside": plan.outside(), "text": plan.describe()}


def finished_earlier(record_path: Path, key: str, outputs: list[Path]) -> bool:
    """Whether every output exists and the record says they were made with this very key."""
    if not all(p.exists() for p in outputs):
        return False
    try:
        return json.loads(record_path.read_text()).get("key") == key
    except (OSError, ValueError):
        return False


def _rank_note(env: DistEnv) -> str:
    return f" on rank {env.rank} of {env.world_size}" if env.enabled else ""


def _say(line: str) -> None:
    """One line on stderr that does not break a progress bar."""
    tqdm.write(line, file=sys.stderr)
