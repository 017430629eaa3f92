"""The streaming sliding-window inference engine."""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import tempfile
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
from rsseg.errors import OptionError, RssegError
from rsseg.io.atomic import atomic_output, check_output
from rsseg.io.mask_writer import ClassMaskWriter, to_cog
from rsseg.io.qgis_style import class_mask_qml, stretch_qml, write_sidecar
from rsseg.io.raster import bounded_gdal_cache, is_georeferenced, open_raster, plan_bands, read_window
from rsseg.models.checkpoint import ModelCard
from rsseg.tiling.blend import RowBandBlender
from rsseg.tiling.grid import Tile, TileGrid
from rsseg.tiling.tta import TTA_MODES, tta_probs, tta_transforms
from rsseg.tiling.weights import blend_window

MULTIPLE = 32  # window sizes every registered architecture accepts


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
    model: dict = field(default_factory=dict)
    rsseg_version: str = rsseg.__version__

    @property
    def mpix_per_s(self) -> float:
        return self.width * self.height / 1e6 / max(self.seconds, 1e-9)

    def summary_line(self) -> str:
        cuda = f", peak CUDA {self.peak_cuda_mb:.0f} MB" if self.peak_cuda_mb is not None else ""
        return (f"{Path(self.scene).name}: {self.width}x{self.height} px, {self.windows} windows "
                f"({self.windows_skipped} skipped), {self.seconds:.1f} s, {self.mpix_per_s:.2f} MPix/s, "
                f"peak RSS {self.peak_rss_mb:.0f} MB{cuda} -> {self.mask}")

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
    consumed: int  # grid windows read so far (run or skipped)


def _read_batches(ds, bands: list[int], grid: TileGrid, batch_size: int, capacity: int) -> Iterator[_Batch]:
    """Batches of windows holding valid pixels, padded (symmetric) to the window shape.

    A batch is closed early when its next window would reach below the blender's band
    (``capacity`` rows from the first unfinished grid row); runs of fully invalid windows
    are reported as empty batches so that finished rows keep flowing out.
    """
    tiles = list(grid)
    batch: list[Tile] = []
    pixels: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    consumed = 0

    def emit(upto: int) -> _Batch:
        nonlocal consumed, batch, pixels, valid
        out = _Batch(batch, np.stack(pixels) if batch else np.empty(0), np.stack(valid) if batch else np.empty(0), upto)
        consumed, batch, pixels, valid = upto, [], [], []
        return out

    for j, t in enumerate(tiles):
        data, ok = read_window(ds, bands, t.y, t.x, t.height, t.width)
        if not ok.any():
            if not batch:
                yield emit(j + 1)
            continue
        if batch and t.y + t.height - grid.row_starts[tiles[consumed].row] > capacity:
            yield emit(j)
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
    """Normalises raw windows, runs the model (with TTA) and returns softmax probabilities."""

    def __init__(self, model: torch.nn.Module, card: ModelCard, scale: float, device: torch.device,
                 tta: str, square: bool, amp: bool):
        self.model, self.device = model, device
        mean = torch.tensor(card.input.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(card.input.std, device=device).view(1, -1, 1, 1)
        self.gain, self.bias = 1 / (scale * std), -mean / std  # (raw / scale - mean) / std
        try:
            self.views = tta_transforms(tta, square)
        except ValueError as err:
            raise OptionError("tta", tta, str(err)) from None
        self.amp = amp and device.type == "cuda"
        self.calls = 0
        self.seconds = 0.0  # the model's own forward time

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
        if not valid.all():
            x = x * torch.from_numpy(valid).to(self.device)[:, None]  # invalid pixels -> band mean
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.amp):
            return tta_probs(self._forward, x, self.views)


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
        cog: write Cloud-Optimized GeoTIFFs.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        overwrite: replace existing outputs.
        progress: show a progress bar.
        input_scale: divide raw values by this (``None``: the card's ``input.scale``).
        threads: torch CPU threads during the call (``None``: every available core on CPU);
            the previous count is restored afterwards.
        amp: float16 autocast on CUDA.
        record: write the run record ``OUT.json`` beside the mask.
        model_source: where the model came from, for the run record.
    """

    tile: int | None = None
    overlap: float = 0.5
    stride: int | None = None
    batch_size: int = 4
    tta: str = "none"
    bands: tuple[int, ...] | None = None
    probs: str | Path | None = None
    cog: bool = False
    device: str = "auto"
    overwrite: bool = False
    progress: bool = True
    input_scale: float | None = None
    threads: int | None = None
    amp: bool = True
    record: bool = True
    model_source: str | None = None

    def __post_init__(self) -> None:
        if self.bands is not None:
            object.__setattr__(self, "bands", tuple(self.bands) or None)
        checks = [("tile", self.tile is None or (self.tile > 0 and self.tile % MULTIPLE == 0),
                   f"must be a positive multiple of {MULTIPLE}"),
                  ("overlap", 0 <= self.overlap < 1, "must be in [0, 1)"),
                  ("stride", self.stride is None or self.stride >= 1, "must be at least 1"),
                  ("batch_size", self.batch_size >= 1, "must be at least 1"),
                  ("tta", self.tta in TTA_MODES, f"choose from {', '.join(TTA_MODES)}"),
                  ("bands", self.bands is None or min(self.bands) >= 1, "band numbers start at 1"),
                  ("input_scale", self.input_scale is None or (math.isfinite(self.input_scale)
                                                               and self.input_scale > 0), "must be finite and > 0"),
                  ("threads", self.threads is None or self.threads >= 1, "must be at least 1")]
        for name, ok, problem in checks:
            if not ok:
                raise OptionError(name, getattr(self, name), problem)


def predict_scene(scene: str | Path, out: str | Path, model: torch.nn.Module, card: ModelCard,
                  options: PredictOptions | None = None, **changes: Any) -> PredictReport:
    """Segment ``scene`` window by window into a georeferenced class mask at ``out``.

    ``options`` (default :class:`PredictOptions`) with any of its fields replaced by ``changes``,
    e.g. ``predict_scene(scene, out, model, card, tile=256, tta="flip")``. Softmax probabilities
    of overlapping windows are blended with a smooth positive weight in a rolling band of rows,
    so memory depends on window height × scene width, never on scene height. Outputs appear
    under their final names only when complete.
    """
    opts = replace(options or PredictOptions(), **changes)
    dev = resolve_device(opts.device)
    threads = opts.threads or (len(os.sched_getaffinity(0)) if dev.type == "cpu" else None)
    with torch_threads(threads):
        return _predict(Path(scene), Path(out), model, card, opts, dev)


def _predict(scene: Path, out: Path, model: torch.nn.Module, card: ModelCard, opts: PredictOptions,
             dev: torch.device) -> PredictReport:
    started = time.perf_counter()
    probs_path = Path(opts.probs) if opts.probs else None
    record_path = out.with_suffix(".json")
    tile = opts.tile or card.tile_size
    for path in (out, probs_path, record_path if opts.record else None):
        if path is not None:
            check_output(path, opts.overwrite)

    with contextlib.ExitStack() as stack:
        stack.enter_context(bounded_gdal_cache())
        ds = stack.enter_context(open_raster(scene))
        plan = plan_bands(ds, scene, card.in_channels, list(opts.bands or card.input.bands or []) or None,
                          opts.input_scale or card.input.scale)
        if not is_georeferenced(ds):
            warnings.warn(f"{scene}: no georeference; outputs carry no CRS (pixel coordinates)", stacklevel=3)
        tile_h, tile_w = window_shape(tile, ds.height, ds.width)
        step = opts.stride or max(1, round(tile * (1 - opts.overlap)))
        if step > tile:
            raise OptionError("stride", step, f"larger than the tile ({tile}) would leave gaps")
        grid = TileGrid.build(ds.height, ds.width, tile_h, tile_w, min(step, tile_h), min(step, tile_w))
        report = PredictReport(str(scene), str(out), str(probs_path) if probs_path else None, ds.width, ds.height,
                               (tile_h, tile_w), (min(step, tile_h), min(step, tile_w)), opts.batch_size, opts.tta,
                               plan.bands, str(dev), windows=len(grid),
                               model={"source": opts.model_source, **card.arch,
                                      "class_names": list(card.classes.names)})
        predictor = _Predictor(model.to(dev).eval(), card, plan.input_scale, dev, opts.tta, tile_h == tile_w,
                               opts.amp)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)

        mask_tmp = stack.enter_context(atomic_output(out, opts.overwrite))
        probs_tmp = stack.enter_context(atomic_output(probs_path, opts.overwrite)) if probs_path else None
        staging = (Path(stack.enter_context(tempfile.TemporaryDirectory(dir=out.parent, prefix=".rsseg-")))
                   if opts.cog else None)
        writer = ClassMaskWriter(staging / "mask.tif" if staging else mask_tmp, ds.width, ds.height,
                                 ds.crs, ds.transform, list(card.classes.names), list(card.classes.colors),
                                 (staging / "probs.tif" if staging else probs_tmp) if probs_path else None,
                                 tags={"RSSEG_SOURCE": scene.name, "RSSEG_VERSION": rsseg.__version__})
        try:
            _run(ds, plan.bands, grid, opts.batch_size, predictor, writer, card.num_classes, dev,
                 probs_path is not None, report, opts.progress)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        if staging:
            to_cog(staging / "mask.tif", mask_tmp, "MODE")
            if probs_path:
                to_cog(staging / "probs.tif", probs_tmp, "AVERAGE")
        write_sidecar(mask_tmp, class_mask_qml(card.classes.names, card.classes.colors))
        if probs_path:
            write_sidecar(probs_tmp, stretch_qml())

        report.model_calls = predictor.calls
        report.model_seconds = predictor.seconds
        report.seconds = time.perf_counter() - started
        report.peak_rss_mb = peak_rss_mb()
        if dev.type == "cuda":
            report.peak_cuda_mb = torch.cuda.max_memory_allocated(dev) / 2**20
        if opts.record:
            with atomic_output(record_path, opts.overwrite) as tmp:
                tmp.write_text(json.dumps(report.to_json(), indent=2))
    return report


def _run(ds, bands: list[int], grid: TileGrid, batch_size: int, predictor: _Predictor,
         writer: ClassMaskWriter, num_classes: int, dev: torch.device, with_probs: bool, report: PredictReport,
         progress: bool) -> None:
    """Read, predict, blend and write, batch by batch."""
    stride_y = grid.row_starts[1] - grid.row_starts[0] if len(grid.row_starts) > 1 else 0
    capacity = min(grid.height, grid.tile_h + (math.ceil(batch_size / len(grid.col_starts)) - 1) * stride_y)
    blender = RowBandBlender(num_classes, grid.width, capacity, dev)
    weight = blend_window(grid.tile_h, grid.tile_w).to(dev)
    tiles = list(grid)
    done = 0
    with tqdm(total=len(grid), unit="win", desc="predict", disable=not progress, dynamic_ncols=True) as bar:
        for batch in _prefetch(_read_batches(ds, bands, grid, batch_size, capacity)):
            if batch.tiles:
                probs = predictor(batch.pixels, batch.valid)
                valid = torch.from_numpy(batch.valid).to(dev)
                for i, t in enumerate(batch.tiles):
                    w = weight[:t.height, :t.width]
                    if not batch.valid[i].all():
                        w = w * valid[i, :t.height, :t.width]
                    blender.add(t.y, t.x, probs[i, :, :t.height, :t.width], w)
                report.windows_run += len(batch.tiles)
            report.windows_skipped = batch.consumed - report.windows_run
            finished_row = tiles[batch.consumed - 1].row if batch.consumed == len(tiles) else \
                tiles[batch.consumed].row - 1
            if finished_row >= 0:
                end = grid.final_rows_after(finished_row)
                while blender.top < end:
                    p, classes = blender.pop_until(end, with_probs)
                    writer.write(classes.numpy(), p.numpy() if p is not None else None)
            bar.update(batch.consumed - done)
            done = batch.consumed
