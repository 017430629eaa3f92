"""Evaluate a model on patch folders or whole scenes (through the tiling engine)."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from rsseg.data.patch_dataset import PatchDataset, Transform, pad_collate, worker_errors_as_one_line
from rsseg.data.patches import list_pairs, read_dataset_info, read_raster
from rsseg.device import resolve_device
from rsseg.errors import OptionError, RssegError
from rsseg.io.raster import open_raster
from rsseg.models.base import Criterion, resize_logits
from rsseg.models.checkpoint import ModelCard
from rsseg.schema import colors_to_index
from rsseg.tiling.tta import tta_probs, tta_transforms
from rsseg.train.metrics import ConfusionMatrix
from rsseg.train.protocols import erode_reference, has_ignored_pixels


def predict_probs(model: torch.nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Softmax probabilities B×K×H×W averaged over the views of :func:`rsseg.tiling.tta.tta_transforms`."""
    try:
        views = tta_transforms(tta, square=x.shape[-1] == x.shape[-2])
    except ValueError as err:
        raise OptionError("tta", tta, str(err)) from None
    return tta_probs(lambda view: resize_logits(model(view), view), x, views)


def confusion_over_loader(model: torch.nn.Module, loader: DataLoader, num_classes: int, ignore_index: int,
                          device: torch.device, tta: str = "none", amp: bool = False,
                          criterion: Criterion | None = None, progress: bool = True, desc: str = "eval"
                          ) -> tuple[ConfusionMatrix, float, int]:
    """Confusion matrix, summed criterion and the count of patches it sums over (this rank's share).

    Batches without a labelled pixel add nothing to the criterion (its mean over no pixel is NaN).
    """
    model.eval()
    matrix = ConfusionMatrix(num_classes, ignore_index, device)
    loss_sum, count = 0.0, 0
    use_amp = amp and device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
    batches = tqdm(worker_errors_as_one_line(loader), total=len(loader), desc=desc, unit="batch", leave=False,
                   disable=not progress)
    with torch.no_grad(), autocast:
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if criterion is not None and tta == "none":
                logits = resize_logits(model(x), y)
                if (y != ignore_index).any():
                    loss_sum += float(criterion(logits, y)) * len(x)
                    count += len(x)
                pred = logits.argmax(1)
            else:
                pred = predict_probs(model, x, tta).argmax(1)
            matrix.update(pred, y)
    return matrix, loss_sum, count


def evaluate_patches(model: torch.nn.Module, card: ModelCard, root: str | os.PathLike, split: str = "test",
                     tta: str = "none", batch_size: int = 4, device: torch.device | str = "cpu",
                     workers: int = 0, progress: bool = True, sampler: Sampler | None = None,
                     transform: Transform | None = None) -> ConfusionMatrix:
    """Confusion matrix of a model on one split of a patch folder, normalised with the model's statistics.

    ``transform`` (e.g. the reference's erosion) is applied to every patch before prediction.
    """
    info = read_dataset_info(root)
    if info.num_classes != card.num_classes or info.in_channels != card.in_channels:
        raise RssegError(f"{root}: dataset has {info.num_classes} classes / {info.in_channels} bands, the model "
                         f"{card.num_classes} / {card.in_channels}")
    info = replace(info, input=replace(info.input, mean=card.input.mean, std=card.input.std, scale=card.input.scale))
    dataset = PatchDataset(root, split, transform, info=info)
    ignore = info.classes.ignore_index
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                        collate_fn=functools.partial(pad_collate, ignore_index=ignore))
    matrix, _, _ = confusion_over_loader(model, loader, card.num_classes, ignore, resolve_device(str(device)),
                                         tta, progress=progress, desc=f"evaluate {split}")
    return matrix


def read_label_window(ds: rasterio.io.DatasetReader, window: Window, card: ModelCard) -> np.ndarray:
    """Class ids of a window of a label raster: an index mask, or RGB colours of the model's classes."""
    data = ds.read(window=window)
    if data.shape[0] >= 3:
        return colors_to_index(data[:3], card.classes.colors, card.classes.ignore_index)[0]
    return data[0]


def evaluate_scene(model: torch.nn.Module, card: ModelCard, scene: str | os.PathLike,
                   labels: str | os.PathLike, tta: str = "none", batch_size: int = 4, device: str = "auto",
                   overlap: float = 0.5, progress: bool = True, block_rows: int = 1024
                   ) -> tuple[ConfusionMatrix, int]:
    """Predict ``scene`` with the tiling engine, then compare with ``labels`` block by block.

    Returns the confusion matrix and the number of labelled pixels the prediction left as nodata.
    """
    from rsseg.tiling import PredictOptions, predict_scene

    scene, labels = Path(scene), Path(labels)
    if not labels.is_file():
        raise RssegError(f"{labels}: label raster not found")
    with tempfile.TemporaryDirectory(prefix="rsseg-eval-") as tmp:
        out = Path(tmp) / f"{scene.stem}_pred.tif"
        predict_scene(scene, out, model, card, PredictOptions(overlap=overlap, batch_size=batch_size, tta=tta,
                                                              device=device, progress=progress, record=False))
        return confusion_from_rasters(out, labels, card, block_rows)


def confusion_from_rasters(prediction: str | os.PathLike, labels: str | os.PathLike, card: ModelCard,
                           block_rows: int = 1024) -> tuple[ConfusionMatrix, int]:
    """Compare a class-mask raster with a label raster of the same grid, block by block.

    Labels are class ids or the card's class colours. Returns the confusion matrix and the
    number of labelled pixels the prediction left as nodata.
    """
    labels = Path(labels)
    ignore = card.classes.ignore_index
    matrix = ConfusionMatrix(card.num_classes, ignore)
    unpredicted = 0
    with open_raster(prediction) as pred_ds, open_raster(labels) as label_ds:
        if (label_ds.height, label_ds.width) != (pred_ds.height, pred_ds.width):
            raise RssegError(f"{labels}: labels are {label_ds.height}×{label_ds.width}, the scene "
                             f"{pred_ds.height}×{pred_ds.width}")
        for top in range(0, pred_ds.height, block_rows):
            window = Window(0, top, pred_ds.width, min(block_rows, pred_ds.height - top))
            pred = pred_ds.read(1, window=window)
            ref = read_label_window(label_ds, window, card)
            bad = (ref >= card.num_classes) & (ref != ignore)
            if bad.any():
                raise RssegError(f"{labels}: value {int(ref[bad][0])} is not a class id of the model "
                                 f"(0..{card.num_classes - 1}) nor the ignore index {ignore}")
            missing = pred >= card.num_classes
            unpredicted += int((missing & (ref != ignore)).sum())
            ref = np.where(missing, ignore, ref)
            matrix.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(ref.astype(np.int64)))
    return matrix, unpredicted


def patch_references_eroded(root: str | os.PathLike, split: str, ignore_index: int) -> bool:
    """Whether the split's masks already ignore pixels (eroded references), read once each."""
    return has_ignored_pixels((read_raster(mask)[0] for _, mask in list_pairs(Path(root), split)), ignore_index)


def erode_target(ignore_index: int) -> Transform:
    """A patch transform eroding the reference (:func:`rsseg.train.protocols.erode_reference`)."""

    def transform(x: torch.Tensor, y: torch.Tensor, _: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return x, torch.from_numpy(erode_reference(y.numpy(), ignore_index))

    return transform


def eroded_label_file(labels: str | os.PathLike, card: ModelCard, folder: str | os.PathLike) -> Path | None:
    """Write the eroded class ids of a full label raster to ``folder``; ``None`` when already eroded."""
    labels = Path(labels)
    with open_raster(labels) as ds:
        ref = read_label_window(ds, Window(0, 0, ds.width, ds.height), card)
        profile = {"driver": "GTiff", "height": ds.height, "width": ds.width, "count": 1, "dtype": "uint8",
                   "transform": ds.transform, "crs": ds.crs}
    ignore = card.classes.ignore_index
    if has_ignored_pixels([ref], ignore):
        return None
    out = Path(folder) / f"{labels.stem}_eroded.tif"
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(erode_reference(ref.astype(np.uint8), ignore), 1)
    return out
