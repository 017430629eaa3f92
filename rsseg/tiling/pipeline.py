"""The batch pipeline: windows read in batches (prefetched), blended into finished rows, cut into bands."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from rsseg.io.output_kind import BlendedRows, OutputKind
from rsseg.io.raster import RowStrip
from rsseg.models.precision import check_finite
from rsseg.tiling.blend import RowBandBlender
from rsseg.tiling.grid import Tile, TileGrid
from rsseg.tiling.journal import Band, BandJournal
from rsseg.tiling.outputs import MASK
from rsseg.tiling.predictor import Predictor, Prepared
from rsseg.tiling.report import PredictReport
from rsseg.tiling.weights import blend_window


def window_shape(tile: int, height: int, width: int, multiple: int) -> tuple[int, int]:
    """Window height/width: ``tile``, or the scene side rounded up to ``multiple`` if smaller."""
    def side(n: int) -> int:
        return min(tile, multiple * math.ceil(n / multiple))
    return side(height), side(width)


def grid_stride(grid: TileGrid) -> tuple[int, int]:
    """The grid's window stride (rows, columns)."""
    def step(starts: tuple[int, ...], tile: int) -> int:
        return starts[1] - starts[0] if len(starts) > 1 else tile
    return step(grid.row_starts, grid.tile_h), step(grid.col_starts, grid.tile_w)

T = TypeVar("T")


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

    strip = RowStrip(ds, bands)
    for j, t in enumerate(tiles):
        if batch and t.row // group != batch[0].row // group:
            yield emit(j)
        data, ok = strip.read(t.y, t.x, t.height, t.width)
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


def _ahead(it: Iterator[T], name: str, overlap: bool) -> Iterator[T]:
    """``it``'s items, the next one computed by a thread of its own while the caller works on this one
    (only one waits: memory stays flat); ``it`` itself without ``overlap``."""
    if not overlap:
        yield from it
        return
    with ThreadPoolExecutor(1, thread_name_prefix=f"rsseg-{name}") as pool:
        future = pool.submit(next, it, None)
        while True:
            item = future.result()
            if item is None:
                return
            future = pool.submit(next, it, None)
            yield item


def missing_runs(journal: BandJournal, bands: list[Band]) -> list[list[Band]]:
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



@dataclass
class RowsJob:
    """Everything computing rows of one scene needs, shared by every run of bands."""

    ds: Any  # the open scene
    bands: list[int]
    grid: TileGrid
    batch_size: int
    predictor: Predictor
    num_classes: int
    device: torch.device
    kinds: list[OutputKind]  # the outputs asked for besides the mask
    report: PredictReport
    overlap: bool = True  # read and prepare, run the model, and blend, in three threads at once

    def windows(self, runs: list[list[Band]]) -> int:
        """Windows that computing ``runs`` reads."""
        group = rows_per_group(self.grid, self.batch_size)
        return sum(len(grid_rows_for(self.grid, group, run[0].y0, run[-1].y1)) for run in runs) \
            * len(self.grid.col_starts)


def compute_bands(job: RowsJob, run: list[Band], bar: tqdm) -> Iterator[tuple[Band, dict[str, np.ndarray]]]:
    """The arrays of consecutive bands ``run``, gathered from the finished rows as they come.

    ``mask`` (n×W class ids) and each output asked for (C×n×W), quantised as its kind stores it.
    """
    kinds = {kind.name: kind for kind in (MASK, *job.kinds)}
    pending: list[dict[str, np.ndarray]] = []
    it = iter(run)
    band = next(it)
    filled = 0
    for pieces in predict_rows(job, bar, run[0].y0, run[-1].y1):
        while pieces["mask"].shape[1]:
            n = min(pieces["mask"].shape[1], band.y1 - band.y0 - filled)
            pending.append({name: a[:, :n] for name, a in pieces.items()})
            pieces = {name: a[:, n:] for name, a in pieces.items()}
            filled += n
            if filled == band.y1 - band.y0:
                arrays = {name: np.concatenate([p[name] for p in pending], 1) for name in pieces}
                yield band, {name: kinds[name].quantize(a) for name, a in arrays.items()}
                pending, filled = [], 0
                band = next(it, None)


def predict_rows(job: RowsJob, bar: tqdm, start: int, stop: int) -> Iterator[dict[str, np.ndarray]]:
    """Scene rows ``[start, stop)`` in order, as pieces: ``mask`` (class ids 1×n×W) and each output
    asked for (C×n×W, computed by its kind from the blended probabilities).

    Only the windows touching those rows are run (the halo above ``start`` included); rows
    of the halo, which lack the windows further up, are blended but never returned.
    """
    grid, report, k = job.grid, job.report, job.num_classes
    group = rows_per_group(grid, job.batch_size)
    rows = grid_rows_for(grid, group, start, stop)
    tiles = list(grid.tiles(rows))
    capacity = min(grid.height, grid.tile_h + (group - 1) * grid_stride(grid)[0])
    blender = RowBandBlender(k, grid.width, capacity, job.device, top=grid.row_starts[rows.start],
                             extra=int(job.predictor.disagreement))
    weight = blend_window(grid.tile_h, grid.tile_w).to(job.device)
    run_before = report.windows_run
    done = 0
    reads = _read_batches(job.ds, job.bands, grid, tiles, job.batch_size, group)
    if job.predictor.own_threads:  # preparing, the model's calls and blending at once
        stages = _ahead(_inferred(job, _ahead(_prepared(job, reads), "read", job.overlap)), "model", job.overlap)
    else:  # a model run by PyTorch on the CPU shares its thread pool with preparing and blending: only reads beside it
        stages = _inferred(job, _prepared(job, _ahead(reads, "read", job.overlap)))
    for batch, prepared, probs in stages:
        if prepared is not None and probs is not None:
            _blend_batch(job, blender, batch, prepared, probs, weight)
        report.windows_skipped += (batch.consumed - done) - (report.windows_run - run_before)
        run_before = report.windows_run
        finished_row = tiles[batch.consumed - 1].row if batch.consumed == len(tiles) else \
            tiles[batch.consumed].row - 1
        end = min(grid.final_rows_after(finished_row), stop) if finished_row >= rows.start else blender.top
        while blender.top < end:
            y0 = blender.top
            p, classes = blender.pop_until(end, bool(job.kinds))
            cut = max(0, start - y0)
            if cut < classes.shape[0]:
                blended = BlendedRows(classes[cut:], p[:k, cut:] if p is not None else None,
                                      p[k, cut:] if job.predictor.disagreement else None)
                yield {kind.name: kind.compute(blended).numpy() for kind in (MASK, *job.kinds)}
        bar.update(batch.consumed - done)
        done = batch.consumed


def _prepared(job: RowsJob, batches: Iterator[_Batch]) -> Iterator[tuple[_Batch, Prepared | None]]:
    """Each batch with its model input (None for an empty batch)."""
    for batch in batches:
        yield batch, job.predictor.prepare(batch.pixels, batch.valid) if batch.tiles else None


def _inferred(job: RowsJob, batches: Iterator[tuple[_Batch, Prepared | None]]
              ) -> Iterator[tuple[_Batch, Prepared | None, torch.Tensor | None]]:
    """Each batch, its model input and the model's probabilities at the model's input size."""
    for batch, prepared in batches:
        yield batch, prepared, job.predictor.infer(prepared) if prepared is not None else None


def _blend_batch(job: RowsJob, blender: RowBandBlender, batch: _Batch, prepared: Prepared, probs: torch.Tensor,
                 weight: torch.Tensor) -> None:
    """Add each window's probabilities, weighted (zero on invalid pixels), to the blender."""
    check_finite(probs, f"{job.ds.name}: {job.predictor.name}", [f"window row {t.y}, col {t.x}" for t in batch.tiles])
    probs = job.predictor.finish(probs, prepared)
    for i, t in enumerate(batch.tiles):
        w = weight[:t.height, :t.width]
        if not batch.valid[i].all():
            w = w * prepared.valid[i, :t.height, :t.width]
        blender.add(t.y, t.x, probs[i, :, :t.height, :t.width], w)
    job.report.windows_run += len(batch.tiles)
