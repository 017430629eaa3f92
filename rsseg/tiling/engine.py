"""The streaming sliding-window inference engine."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import resource
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm import tqdm

import rsseg
from rsseg.device import resolve_device, torch_threads
from rsseg.distributed import DistEnv, barrier
from rsseg.errors import OptionError, RssegError
from rsseg.io.atomic import atomic_output, output_lock
from rsseg.io.mask_writer import ClassMaskWriter, quantize_probs, to_cog
from rsseg.io.outputs import check_outputs, run_record_path
from rsseg.io.qgis_style import class_mask_qml, stretch_qml, write_sidecar
from rsseg.io.raster import (
    bounded_gdal_cache,
    check_value_range,
    georeference,
    is_georeferenced,
    open_raster,
    plan_bands,
    read_window,
)
from rsseg.models.checkpoint import ModelCard
from rsseg.models.precision import PRECISIONS, Precision, check_finite, resolve_precision
from rsseg.tiling.blend import RowBandBlender
from rsseg.tiling.confidence import band_names, confidence_bands, view_disagreement
from rsseg.tiling.distributed import contiguous_share
from rsseg.tiling.grid import Tile, TileGrid
from rsseg.tiling.gsd import GsdPlan, model_shape, parse_gsd, plan_gsd, resize, scene_window
from rsseg.tiling.journal import BAND_ROWS, Band, BandJournal, journal_key, model_digest, run_key
from rsseg.tiling.tta import TTA_MODES, tta_probs, tta_transforms
from rsseg.tiling.weights import blend_window

MULTIPLE = 32  # window sizes every registered architecture accepts
FAMILIAR_CONFIDENCE = 0.6  # mean top-class probability below this: the scene is unlike the training data


@dataclass
class PredictReport:
    """What a prediction run did: inputs, parameters, outputs and timing."""

    scene: str
    mask: str
    probs: str | None
    width: int
    height: int
    tile: tuple[int, int]
    stride: tuple[int, int]
    batch_size: int
    tta: str
    bands: list[int]
    device: str
    windows: int = 0
    windows_run: int = 0
    windows_skipped: int = 0
    model_calls: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float | None = None
    gsd: dict = field(default_factory=dict)  # scene / model GSD (metres) and the window resampling factor
    mean_top_probability: float | None = None  # over valid pixels of all windows run
    model: dict = field(default_factory=dict)
    key: str = ""  # hash of the model and every option that changes the result
    resumed_row: int | None = None  # first row computed when a journal was resumed
    skipped: bool = False  # finished earlier with the same key: nothing redone
    confidence: str | None = None
    precision: dict = field(default_factory=dict)  # name and why it was chosen
    rsseg_version: str = rsseg.__version__

    @property
    def mpix_per_s(self) -> float:
        return self.width * self.height / 1e6 / max(self.seconds, 1e-9)

    def summary_line(self) -> str:
        if self.skipped:
            return f"{Path(self.scene).name}: finished earlier with the same model and options -> {self.mask}"
        resumed = f", resumed at row {self.resumed_row}" if self.resumed_row is not None else ""
        cuda = f", peak CUDA {self.peak_cuda_mb:.0f} MB" if self.peak_cuda_mb is not None else ""
        gsd = f", {self.gsd['text']}" if self.gsd.get("text") else ""
        return (f"{Path(self.scene).name}: {self.width}x{self.height} px{gsd}, {self.windows} windows "
                f"({self.windows_skipped} skipped), {self.seconds:.1f} s, {self.mpix_per_s:.2f} MPix/s, "
                f"peak RSS {self.peak_rss_mb:.0f} MB{cuda}{resumed} -> {self.mask}")

    def unfamiliar_line(self) -> str | None:
        """One line when the scene looks unlike what the model was trained on, else ``None``."""
        reasons = []
        if self.mean_top_probability is not None and self.mean_top_probability < FAMILIAR_CONFIDENCE:
            reasons.append(f"mean top-class probability {self.mean_top_probability:.2f} < {FAMILIAR_CONFIDENCE}")
        if self.gsd.get("outside"):
            lo, hi = self.gsd["model"]
            span = f"{lo:g}-{hi:g} m" if lo != hi else f"{lo:g} m"
            reasons.append(f"scene GSD {self.gsd['scene']:.3g} m far from the trained {span}")
        if not reasons:
            return None
        return (f"Note: {Path(self.scene).name} looks unlike this model's training data ({'; '.join(reasons)}); "
                "check the map, or fine-tune on a few labelled tiles")

    def to_json(self) -> dict:
        return {**asdict(self), "mpix_per_s": self.mpix_per_s}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def window_shape(tile: int, height: int, width: int) -> tuple[int, int]:
    """Window height/width: ``tile``, or the scene side rounded up to a multiple of 32 if smaller."""
    def side(n: int) -> int:
        return min(tile, MULTIPLE * math.ceil(n / MULTIPLE))
    return side(height), side(width)


@dataclass
class _Batch:
    tiles: list[Tile]
    pixels: np.ndarray  # B×C×th×tw, raw dtype, padded
    valid: np.ndarray  # B×th×tw bool
    consumed: int  # windows of the run read so far (run or skipped)


def rows_per_group(grid: TileGrid, batch_size: int) -> int:
    """Grid rows a batch may span: enough windows for one batch (1 when a grid row holds a batch)."""
    return max(1, math.ceil(batch_size / len(grid.col_starts)))


def grid_rows_for(grid: TileGrid, group: int, start: int, stop: int) -> range:
    """Grid rows whose windows touch scene rows ``[start, stop)``, widened to whole groups.

    Batches never cross a group boundary, so a window meets the same batch neighbours whichever
    rows a run covers, and a band recomputed on resume or on another rank is byte-identical.
    """
    rows = grid.row_starts
    first = next(r for r, y in enumerate(rows) if y + grid.tile_h > start)
    last = max(r for r, y in enumerate(rows) if y < stop)
    return range(first - first % group, min(len(rows), (last // group + 1) * group))


def _read_batches(ds, bands: list[int], grid: TileGrid, tiles: list[Tile], batch_size: int, group: int
                  ) -> Iterator[_Batch]:
    """Batches of windows holding valid pixels, padded (symmetric) to the window shape.

    A batch is closed at the end of each group of ``group`` grid rows; runs of fully invalid
    windows are reported as empty batches so that finished rows keep flowing out.
    """
    batch: list[Tile] = []
    pixels: list[np.ndarray] = []
    valid: list[np.ndarray] = []

    def emit(upto: int) -> _Batch:
        nonlocal batch, pixels, valid
        out = _Batch(batch, np.stack(pixels) if batch else np.empty(0), np.stack(valid) if batch else np.empty(0), upto)
        batch, pixels, valid = [], [], []
        return out

    for j, t in enumerate(tiles):
        if batch and t.row // group != batch[0].row // group:
            yield emit(j)
        data, ok = read_window(ds, bands, t.y, t.x, t.height, t.width)
        if not ok.any():
            if not batch:
                yield emit(j + 1)
            continue
        pad = ((0, grid.tile_h - t.height), (0, grid.tile_w - t.width))
        if pad[0][1] or pad[1][1]:
            data = np.pad(data, ((0, 0), *pad), mode="symmetric")
            ok = np.pad(ok, pad, mode="constant")
        batch.append(t)
        pixels.append(data)
        valid.append(ok)
        if len(batch) == batch_size:
            yield emit(j + 1)
    if batch:
        yield emit(len(tiles))


def _prefetch(it: Iterator[_Batch]) -> Iterator[_Batch]:
    """Read the next batch in a background thread while the current one is computed."""
    with ThreadPoolExecutor(1, thread_name_prefix="rsseg-read") as pool:
        future = pool.submit(next, it, None)
        while True:
            item = future.result()
            if item is None:
                return
            future = pool.submit(next, it, None)
            yield item


class _Predictor:
    """Normalises raw windows, runs the model (with TTA) and returns softmax probabilities.

    With ``disagreement`` (and TTA) one channel follows the K probabilities: the share of
    augmented views whose top class differs from that of their average.
    """

    def __init__(self, model: torch.nn.Module, card: ModelCard, scale: float, device: torch.device,
                 tta: str, square: bool, precision: Precision, model_input: tuple[int, int] | None = None,
                 disagreement: bool = False):
        self.model, self.device = model, device
        self.model_input = model_input  # windows resampled to this shape for the model (GSD), else None
        mean = torch.tensor(card.input.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(card.input.std, device=device).view(1, -1, 1, 1)
        self.gain, self.bias = 1 / (scale * std), -mean / std  # (raw / scale - mean) / std
        try:
            self.views = tta_transforms(tta, square)
        except ValueError as err:
            raise OptionError("tta", tta, str(err)) from None
        self.disagreement = disagreement and len(self.views) > 1
        self.precision, self.name = precision, f"model {card.arch['name']} ({precision.name})"
        self.calls = 0
        self.seconds = 0.0  # the model's own forward time
        self.top_sum = 0.0  # top-class probability summed over valid pixels, and their count
        self.top_count = 0

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        logits = self.model(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        if not isinstance(logits, torch.Tensor) or logits.shape[-2:] != x.shape[-2:]:
            raise RssegError("model did not return B×K×H×W logits at window size (is it in eval mode?)")
        return logits

    def __call__(self, pixels: np.ndarray, valid: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(pixels).to(self.device, non_blocking=True).float()
        x = torch.addcmul(self.bias, x, self.gain)
        valid_t = torch.from_numpy(valid).to(self.device)
        if not valid.all():
            x = x * valid_t[:, None]  # invalid pixels -> band mean
        window = (x.shape[-2], x.shape[-1])
        dtype = self.precision.dtype
        with torch.inference_mode(), torch.autocast(self.device.type, dtype, enabled=dtype is not None):
            view_classes: list[torch.Tensor] | None = [] if self.disagreement else None
            model_x = resize(x, self.model_input) if self.model_input else x
            probs = tta_probs(self._forward, model_x, self.views, view_classes)
            if view_classes:
                probs = torch.cat([probs, view_disagreement(view_classes, probs)[:, None]], 1)
            probs = resize(probs.float(), window)
        classes = probs[:, :-1] if view_classes else probs
        self.top_sum += float((classes.amax(1) * valid_t).sum())
        self.top_count += int(valid_t.sum())
        return probs


@dataclass(frozen=True)
class PredictOptions:
    """How :func:`predict_scene` runs; every field has a default.

    Args:
        tile: window side in pixels, a multiple of 32 (``None``: the model's ``tile_size``).
        overlap: fraction of a window shared with its neighbour, in [0, 1).
        stride: window step in pixels; replaces ``overlap`` when given.
        batch_size: windows per model call.
        tta: test-time augmentation, one of :data:`rsseg.tiling.tta.TTA_MODES`.
        bands: 1-based scene bands feeding the model (``None``: the card's, else the first ones).
        probs: also write per-class probabilities (uint8, p·255) to this GeoTIFF.
        confidence: also write confidence bands (uint8, value·255) to this GeoTIFF, in the
            same pass: top-class probability, margin, entropy and, with TTA, the views'
            disagreement (:mod:`rsseg.tiling.confidence`).
        cog: write Cloud-Optimized GeoTIFFs.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        overwrite: replace existing outputs.
        progress: show a progress bar.
        input_scale: divide raw values by this (``None``: the card's ``input.scale``).
        threads: torch CPU threads during the call (``None``: every available core on CPU);
            the previous count is restored afterwards.
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16``; see :func:`rsseg.models.precision.resolve_precision`.
        record: write the run record ``OUT.json`` beside the mask.
        model_source: where the model came from, for the run record.
        gsd: ``auto`` (resample windows to the model's ground sample distance where the scene's
            differs by more than 1.25×; ``tile`` is then the model's input size), ``native``
            (never), or the scene's metres per pixel; see :func:`rsseg.tiling.gsd.plan_gsd`.
        restart: ignore the resume journal of an unfinished run of this output; start afresh.
        band_rows: rows per band of the resume journal (and per unit of work between ranks).
    """

    tile: int | None = None
    overlap: float = 0.5
    stride: int | None = None
    batch_size: int = 4
    tta: str = "none"
    bands: tuple[int, ...] | None = None
    probs: str | Path | None = None
    confidence: str | Path | None = None
    cog: bool = False
    device: str = "auto"
    overwrite: bool = False
    progress: bool = True
    input_scale: float | None = None
    threads: int | None = None
    precision: str = "auto"
    record: bool = True
    model_source: str | None = None
    gsd: str | float = "auto"
    restart: bool = False
    band_rows: int = BAND_ROWS

    def __post_init__(self) -> None:
        if self.bands is not None:
            object.__setattr__(self, "bands", tuple(self.bands) or None)
        object.__setattr__(self, "gsd", parse_gsd(self.gsd))
        checks = [("tile", self.tile is None or (self.tile > 0 and self.tile % MULTIPLE == 0),
                   f"must be a positive multiple of {MULTIPLE}"),
                  ("overlap", 0 <= self.overlap < 1, "must be in [0, 1)"),
                  ("stride", self.stride is None or self.stride >= 1, "must be at least 1"),
                  ("batch_size", self.batch_size >= 1, "must be at least 1"),
                  ("tta", self.tta in TTA_MODES, f"choose from {', '.join(TTA_MODES)}"),
                  ("precision", self.precision in PRECISIONS, f"choose from {', '.join(PRECISIONS)}"),
                  ("bands", self.bands is None or min(self.bands) >= 1, "band numbers start at 1"),
                  ("input_scale", self.input_scale is None or (math.isfinite(self.input_scale)
                                                               and self.input_scale > 0), "must be finite and > 0"),
                  ("threads", self.threads is None or self.threads >= 1, "must be at least 1"),
                  ("band_rows", self.band_rows >= 1, "must be at least 1")]
        for name, ok, problem in checks:
            if not ok:
                raise OptionError(name, getattr(self, name), problem)


def predict_scene(scene: str | Path, out: str | Path, model: torch.nn.Module, card: ModelCard,
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
        return _predict(Path(scene), Path(out), model, card, opts, dev, split or DistEnv())


def _predict(scene: Path, out: Path, model: torch.nn.Module, card: ModelCard, opts: PredictOptions,
             dev: torch.device, env: DistEnv) -> PredictReport:
    started = time.perf_counter()
    probs_path = Path(opts.probs) if opts.probs else None
    confidence_path = Path(opts.confidence) if opts.confidence else None
    record_path = run_record_path(out)
    tile = opts.tile or card.tile_size
    outputs = [p for p in (out, probs_path, confidence_path, record_path if opts.record else None) if p is not None]
    extra = {name: path for name, path in (("probs", probs_path), ("confidence", confidence_path)) if path}

    with contextlib.ExitStack() as stack:
        stack.enter_context(bounded_gdal_cache())
        ds = stack.enter_context(open_raster(scene))
        plan = plan_bands(ds, scene, card.in_channels, list(opts.bands or card.input.bands or []) or None,
                          opts.input_scale or card.input.scale)
        check_value_range(ds, scene, plan.bands, plan.input_scale, scale_given=bool(opts.input_scale))
        if not is_georeferenced(ds) and georeference(ds) is None:
            warnings.warn(f"{scene}: no georeference; outputs carry no CRS (pixel coordinates)", stacklevel=3)
        gsd_plan = plan_gsd(opts.gsd, ds, card)
        if gsd_plan.warning:
            warnings.warn(gsd_plan.warning, stacklevel=3)
        tile = scene_window(tile, gsd_plan.factor) if gsd_plan.resampled else tile
        tile_h, tile_w = window_shape(tile, ds.height, ds.width)
        step = opts.stride or max(1, round(tile * (1 - opts.overlap)))
        if step > tile:
            raise OptionError("stride", step, f"larger than the tile ({tile}) would leave gaps")
        grid = TileGrid.build(ds.height, ds.width, tile_h, tile_w, min(step, tile_h), min(step, tile_w))
        model_input = model_shape(tile_h, tile_w, gsd_plan.factor) if gsd_plan.resampled else None
        predictor = _Predictor(model.to(dev).eval(), card, plan.input_scale, dev, opts.tta, tile_h == tile_w,
                               resolve_precision(opts.precision, dev, model), model_input,
                               disagreement=confidence_path is not None)
        key = run_key(scene=str(scene.resolve()), size=scene.stat().st_size, mtime=scene.stat().st_mtime_ns,
                      model=model_digest(model), card=asdict(card), tile=(tile_h, tile_w), stride=grid_stride(grid),
                      batch_size=opts.batch_size, tta=opts.tta, bands=plan.bands, input_scale=plan.input_scale,
                      outputs=["mask", *extra], device=dev.type, precision=predictor.precision.name,
                      band_rows=opts.band_rows, gsd_factor=gsd_plan.factor, version=rsseg.__version__)
        if opts.record and not opts.overwrite and finished_earlier(record_path, key, outputs):
            earlier = json.loads(record_path.read_text())
            return PredictReport(**{**{k: v for k, v in earlier.items() if k in PredictReport.__dataclass_fields__},
                                    "skipped": True})
        # a journal of this very run may have renamed some outputs before it was killed
        overwrite = opts.overwrite or journal_key(out) == key
        check_outputs({"-o": out, "--probs": probs_path, "--confidence": confidence_path,
                       "the run record": record_path if opts.record else None}, [scene], overwrite)
        report = PredictReport(str(scene), str(out), str(probs_path) if probs_path else None, ds.width, ds.height,
                               (tile_h, tile_w), grid_stride(grid), opts.batch_size, opts.tta, plan.bands,
                               str(dev), windows=len(grid), key=key, gsd=_gsd_record(gsd_plan),
                               model={"source": opts.model_source, **card.arch,
                                      "class_names": list(card.classes.names)},
                               confidence=str(confidence_path) if confidence_path else None,
                               precision={"name": predictor.precision.name, "reason": predictor.precision.reason})
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)

        if env.is_main:  # one run at a time on these outputs (ranks of one run share them)
            stack.enter_context(output_lock(out))
        journal = BandJournal.open(out, key, ds.height, opts.restart, create=env.is_main, band_rows=opts.band_rows)
        if env.enabled:
            barrier()
        try:
            compute = functools.partial(_compute_bands, ds, plan.bands, grid, opts.batch_size, predictor,
                                        card.num_classes, dev, set(extra), report)
            share = journal.bands[contiguous_share(len(journal.bands), env.rank, env.world_size)] \
                if env.enabled else journal.bands
            done = sum(journal.done(b) for b in share)
            if done:
                report.resumed_row = journal.first_missing_row() if not env.enabled else share[0].y0
                _say(f"resumed {scene.name} at row {journal.first_missing_row()} of {ds.height} "
                     f"({done} of {len(share)} bands done{_rank_note(env)})")
            runs = _missing_runs(journal, share)
            windows = sum(len(grid_rows_for(grid, rows_per_group(grid, opts.batch_size), run[0].y0, run[-1].y1))
                          for run in runs) * len(grid.col_starts)
            with tqdm(total=windows, unit="win", desc=f"predict {scene.name}", disable=not opts.progress,
                      dynamic_ncols=True) as bar:
                for run in runs:
                    for band, arrays in compute(run, bar=bar):
                        journal.save(band, arrays)
            if env.enabled:
                barrier()  # every band is in the journal
            if env.is_main:
                _write_outputs(ds, scene, journal, card, opts.cog, out, extra, band_names(predictor.disagreement))
        except Exception:
            if env.is_main:
                journal.remove()
            raise
        report.model_calls = predictor.calls
        report.model_seconds = predictor.seconds
        report.mean_top_probability = predictor.top_sum / predictor.top_count if predictor.top_count else None
        report.seconds = time.perf_counter() - started
        report.peak_rss_mb = peak_rss_mb()
        if dev.type == "cuda":
            report.peak_cuda_mb = torch.cuda.max_memory_allocated(dev) / 2**20
        if env.is_main:
            if opts.record:
                with atomic_output(record_path, overwrite) as tmp:
                    tmp.write_text(json.dumps(report.to_json(), indent=2))
            journal.remove()
    return report


def _gsd_record(plan: GsdPlan) -> dict:
    return {"scene": plan.scene, "model": list(plan.model) if plan.model else None, "factor": plan.factor,
            "outside": plan.outside(), "text": plan.describe()}


def grid_stride(grid: TileGrid) -> tuple[int, int]:
    """The grid's window stride (rows, columns)."""
    def step(starts: tuple[int, ...], tile: int) -> int:
        return starts[1] - starts[0] if len(starts) > 1 else tile
    return step(grid.row_starts, grid.tile_h), step(grid.col_starts, grid.tile_w)


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


def _missing_runs(journal: BandJournal, bands: list[Band]) -> list[list[Band]]:
    """Maximal runs of consecutive unfinished bands."""
    runs: list[list[Band]] = []
    for band in bands:
        if journal.done(band):
            continue
        if runs and runs[-1][-1].index + 1 == band.index:
            runs[-1].append(band)
        else:
            runs.append([band])
    return runs


def _compute_bands(ds, bands: list[int], grid: TileGrid, batch_size: int, predictor: _Predictor, num_classes: int,
                   dev: torch.device, extra: set[str], report: PredictReport, run: list[Band], bar: tqdm
                   ) -> Iterator[tuple[Band, dict[str, np.ndarray]]]:
    """The arrays of consecutive bands ``run``, gathered from the finished rows as they come.

    ``mask`` (n×W class ids) and the ``extra`` outputs asked for (``probs``, ``confidence``:
    C×n×W, quantised to uint8).
    """
    pending: list[dict[str, np.ndarray]] = []
    it = iter(run)
    band = next(it)
    filled = 0
    for pieces in _predict_rows(ds, bands, grid, batch_size, predictor, num_classes, dev, extra, report, bar,
                                run[0].y0, run[-1].y1):
        while pieces["mask"].shape[1]:
            n = min(pieces["mask"].shape[1], band.y1 - band.y0 - filled)
            pending.append({name: a[:, :n] for name, a in pieces.items()})
            pieces = {name: a[:, n:] for name, a in pieces.items()}
            filled += n
            if filled == band.y1 - band.y0:
                arrays = {name: np.concatenate([p[name] for p in pending], 1) for name in pieces}
                arrays = {name: a[0] if name == "mask" else quantize_probs(a) for name, a in arrays.items()}
                yield band, arrays
                pending, filled = [], 0
                band = next(it, None)


def _predict_rows(ds, bands: list[int], grid: TileGrid, batch_size: int, predictor: _Predictor, num_classes: int,
                  dev: torch.device, extra: set[str], report: PredictReport, bar: tqdm, start: int, stop: int
                  ) -> Iterator[dict[str, np.ndarray]]:
    """Scene rows ``[start, stop)`` in order, as pieces: ``mask`` (class ids 1×n×W) and the ``extra``
    outputs asked for, ``probs`` (K×n×W) and ``confidence`` (C×n×W, :mod:`rsseg.tiling.confidence`).

    Only the windows touching those rows are run (the halo above ``start`` included); rows
    of the halo, which lack the windows further up, are blended but never returned.
    """
    group = rows_per_group(grid, batch_size)
    rows = grid_rows_for(grid, group, start, stop)
    tiles = list(grid.tiles(rows))
    stride_y = grid_stride(grid)[0]
    capacity = min(grid.height, grid.tile_h + (group - 1) * stride_y)
    blender = RowBandBlender(num_classes, grid.width, capacity, dev, top=grid.row_starts[rows.start],
                             extra=int(predictor.disagreement))
    weight = blend_window(grid.tile_h, grid.tile_w).to(dev)
    run_before = report.windows_run
    done = 0
    for batch in _prefetch(_read_batches(ds, bands, grid, tiles, batch_size, group)):
        if batch.tiles:
            probs = predictor(batch.pixels, batch.valid)
            check_finite(probs, f"{ds.name}: {predictor.name}", [f"window row {t.y}, col {t.x}" for t in batch.tiles])
            valid = torch.from_numpy(batch.valid).to(dev)
            for i, t in enumerate(batch.tiles):
                w = weight[:t.height, :t.width]
                if not batch.valid[i].all():
                    w = w * valid[i, :t.height, :t.width]
                blender.add(t.y, t.x, probs[i, :, :t.height, :t.width], w)
            report.windows_run += len(batch.tiles)
        report.windows_skipped += (batch.consumed - done) - (report.windows_run - run_before)
        run_before = report.windows_run
        finished_row = tiles[batch.consumed - 1].row if batch.consumed == len(tiles) else \
            tiles[batch.consumed].row - 1
        end = min(grid.final_rows_after(finished_row), stop) if finished_row >= rows.start else blender.top
        while blender.top < end:
            y0 = blender.top
            p, classes = blender.pop_until(end, bool(extra))
            cut = max(0, start - y0)
            if cut < classes.shape[0]:
                pieces = {"mask": classes[None, cut:]}
                if "probs" in extra:
                    pieces["probs"] = p[:num_classes, cut:]
                if "confidence" in extra:
                    pieces["confidence"] = confidence_bands(p[:num_classes, cut:], p[num_classes, cut:]
                                                            if predictor.disagreement else None)
                yield {name: a.numpy() for name, a in pieces.items()}
        bar.update(batch.consumed - done)
        done = batch.consumed


def _write_outputs(ds, scene: Path, journal: BandJournal, card: ModelCard, cog: bool, out: Path,
                   extra: dict[str, Path], confidence_bands: list[str]) -> None:
    """Write the journal's bands, in order, into the mask (and ``extra``: probabilities, confidence) GeoTIFFs.

    Always the same single pass from the stored bands, so the files are byte-identical
    whether the bands came from one run, a resumed one or several ranks. The other outputs
    are renamed before the mask, so a mask under its final name means done.
    """
    folder = journal.folder
    for stale in folder.glob("*.tif"):  # left by a killed assembly
        stale.unlink()
    files = {"mask": (folder / "mask.tif", out, "MODE")}
    files.update({name: (folder / f"{name}.tif", path, "AVERAGE") for name, path in extra.items()})
    staged = {name: files[name][0] if name in files else None for name in ("probs", "confidence")}
    writer = ClassMaskWriter(files["mask"][0], ds.width, ds.height, ds.crs, ds.transform,
                             list(card.classes.names), list(card.classes.colors), staged["probs"],
                             tags={"RSSEG_SOURCE": scene.name, "RSSEG_VERSION": rsseg.__version__},
                             confidence_path=staged["confidence"], confidence_bands=confidence_bands,
                             georef=georeference(ds))
    try:
        for band in journal.bands:
            arrays = journal.load(band)
            writer.write(arrays["mask"], arrays.get("probs"), arrays.get("confidence"))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    write_sidecar(out, class_mask_qml(card.classes.names, card.classes.colors))  # QGIS styles, before the mask
    for path in extra.values():  # probabilities and confidence: uint8, value·255
        write_sidecar(path, stretch_qml())
    for name in ("probs", "confidence", "mask"):
        if name not in files:
            continue
        staged, final, resampling = files[name]
        if cog:
            cog_path = staged.with_suffix(".cog.tif")
            to_cog(staged, cog_path, resampling)
            staged = cog_path
        os.replace(staged, final)
