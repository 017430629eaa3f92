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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

import rsseg
from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output, check_output
from rsseg.io.qgis_style import class_mask_qml, stretch_qml, write_sidecar
from rsseg.io.mask_writer import ClassMaskWriter, to_cog
from rsseg.io.raster import bounded_gdal_cache, is_georeferenced, open_raster, plan_bands, read_window
from rsseg.models.checkpoint import ModelCard
from rsseg.tiling.blend import RowBandBlender
from rsseg.tiling.grid import Tile, TileGrid
from rsseg.tiling.tta import tta_transforms
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


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RssegError(f"device {device}: CUDA is not available on this machine")
    return dev


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
        mean = torch.tensor(card.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(card.std, device=device).view(1, -1, 1, 1)
        self.gain, self.bias = 1 / (scale * std), -mean / std  # (raw / scale - mean) / std
        self.transforms = tta_transforms(tta, square)
        self.amp = amp and device.type == "cuda"
        self.calls = 0
        self.seconds = 0.0  # the model's own forward time

    def __call__(self, pixels: np.ndarray, valid: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(pixels).to(self.device, non_blocking=True).float()
        x = torch.addcmul(self.bias, x, self.gain)
        if not valid.all():
            x = x * torch.from_numpy(valid).to(self.device)[:, None]  # invalid pixels -> band mean
        probs = None
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.amp):
            for forward, inverse in self.transforms:
                start = time.perf_counter()
                logits = self.model(forward(x))
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                self.seconds += time.perf_counter() - start
                self.calls += 1
                if not isinstance(logits, torch.Tensor) or logits.shape[-2:] != x.shape[-2:]:
                    raise RssegError("model did not return B×K×H×W logits at window size (is it in eval mode?)")
                p = inverse(torch.softmax(logits.float(), 1))
                probs = p if probs is None else probs.add_(p)
        return probs / len(self.transforms) if len(self.transforms) > 1 else probs


def predict_scene(scene: str | Path, out: str | Path, model: torch.nn.Module, card: ModelCard, *,
                  tile: int | None = None, overlap: float = 0.5, stride: int | None = None,
                  batch_size: int = 4, tta: str = "none", bands: list[int] | None = None,
                  probs: str | Path | None = None, cog: bool = False, device: str = "auto",
                  overwrite: bool = False, progress: bool = True, input_scale: float | None = None,
                  threads: int | None = None, amp: bool = True, record: bool = True,
                  model_source: str | None = None) -> PredictReport:
    """Segment ``scene`` window by window into a georeferenced class mask at ``out``.

    Softmax probabilities of overlapping windows are blended with a smooth positive weight
    in a rolling band of rows, so memory depends on window height × scene width, never on
    scene height. Outputs appear under their final names only when complete.
    """
    started = time.perf_counter()
    scene, out = Path(scene), Path(out)
    probs_path = Path(probs) if probs else None
    record_path = out.with_suffix(".json")
    tile = tile or card.tile_size
    if tile % MULTIPLE:
        raise RssegError(f"--tile {tile}: must be a multiple of {MULTIPLE}")
    if not 0 <= overlap < 1:
        raise RssegError(f"--overlap {overlap}: must be in [0, 1)")
    if batch_size < 1:
        raise RssegError(f"--batch-size {batch_size}: must be at least 1")
    for path in (out, probs_path, record_path if record else None):
        if path is not None:
            check_output(path, overwrite)
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    elif dev.type == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))

    with contextlib.ExitStack() as stack:
        stack.enter_context(bounded_gdal_cache())
        ds = stack.enter_context(open_raster(scene))
        plan = plan_bands(ds, scene, card.in_channels, bands if bands else card.bands,
                          input_scale if input_scale else card.input_scale)
        if not is_georeferenced(ds):
            warnings.warn(f"{scene}: no georeference; outputs carry no CRS (pixel coordinates)", stacklevel=2)
        tile_h, tile_w = window_shape(tile, ds.height, ds.width)
        step = stride or max(1, round(tile * (1 - overlap)))
        if step > tile:
            raise RssegError(f"--stride {step}: larger than the tile ({tile}) would leave gaps")
        grid = TileGrid.build(ds.height, ds.width, tile_h, tile_w, min(step, tile_h), min(step, tile_w))
        report = PredictReport(str(scene), str(out), str(probs_path) if probs_path else None, ds.width, ds.height,
                               (tile_h, tile_w), (min(step, tile_h), min(step, tile_w)), batch_size, tta,
                               plan.bands, str(dev), windows=len(grid),
                               model={"source": model_source, **card.arch, "class_names": card.class_names})
        try:
            predictor = _Predictor(model.to(dev).eval(), card, plan.input_scale, dev,
                                   tta, tile_h == tile_w, amp)
        except ValueError as err:
            raise RssegError(f"--tta {tta}: {err}") from None
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)

        mask_tmp = stack.enter_context(atomic_output(out, overwrite))
        probs_tmp = stack.enter_context(atomic_output(probs_path, overwrite)) if probs_path else None
        staging = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=out.parent, prefix=".rsseg-"))) if cog else None
        writer = ClassMaskWriter(staging / "mask.tif" if cog else mask_tmp, ds.width, ds.height,
                                 ds.crs, ds.transform, card.class_names, card.class_colors,
                                 (staging / "probs.tif" if cog else probs_tmp) if probs_path else None,
                                 tags={"RSSEG_SOURCE": scene.name, "RSSEG_VERSION": rsseg.__version__})
        try:
            _run(ds, plan.bands, grid, batch_size, predictor, writer, card.num_classes, dev, probs_path is not None, report, progress)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        if cog:
            to_cog(staging / "mask.tif", mask_tmp, "MODE")
            if probs_path:
                to_cog(staging / "probs.tif", probs_tmp, "AVERAGE")
        write_sidecar(mask_tmp, class_mask_qml(card.class_names, card.class_colors))
        if probs_path:
            write_sidecar(probs_tmp, stretch_qml())

        report.model_calls = predictor.calls
        report.model_seconds = predictor.seconds
        report.seconds = time.perf_counter() - started
        report.peak_rss_mb = peak_rss_mb()
        if dev.type == "cuda":
            report.peak_cuda_mb = torch.cuda.max_memory_allocated(dev) / 2**20
        if record:
            with atomic_output(record_path, overwrite) as tmp:
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
