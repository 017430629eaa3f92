"""The benchmarks' evaluation protocols: which reference, which classes in the means.

All protocols accumulate one confusion matrix over every test scene (not a mean of per-scene
scores), as GeoSeg's ``tools/metric.py`` does. ``isprs`` scores Vaihingen and Potsdam on the
eroded reference (object boundaries ignored within a disc of radius 3 px) and leaves Clutter out
of mIoU and mean F1; OA is over all classes. ``uavid`` and ``loveda`` average over all classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from rsseg.train.metrics import compute_metrics

EROSION_RADIUS = 3  # ISPRS: boundaries eroded by a circular disc of 3 px radius


@dataclass(frozen=True)
class Protocol:
    """How a benchmark scores: the eroded reference or not, the classes left out of the means."""

    name: str
    eroded: bool = False
    excluded_classes: tuple[str, ...] = ()


PROTOCOLS = {p.name: p for p in (Protocol("isprs", eroded=True, excluded_classes=("clutter",)),
                                 Protocol("uavid"), Protocol("loveda"), Protocol("plain"))}


def disc_offsets(radius: int) -> list[tuple[int, int]]:
    """The ``(dy, dx)`` offsets of a disc of ``radius`` pixels (``dy² + dx² ≤ radius²``)."""
    r = range(-radius, radius + 1)
    return [(dy, dx) for dy in r for dx in r if dy * dy + dx * dx <= radius * radius]


def erode_reference(mask: np.ndarray, ignore_index: int, radius: int = EROSION_RADIUS) -> np.ndarray:
    """Set to ``ignore_index`` every pixel within ``radius`` of a pixel of another class.

    The image edge is not a boundary (edge pixels are replicated); ignored pixels are left alone
    and do not erode their neighbours.
    """
    padded = np.pad(mask, radius, mode="edge")
    h, w = mask.shape
    boundary = np.zeros(mask.shape, dtype=bool)
    for dy, dx in disc_offsets(radius):
        other = padded[radius + dy:radius + dy + h, radius + dx:radius + dx + w]
        boundary |= (other != mask) & (other != ignore_index)
    return np.where(boundary, np.asarray(ignore_index, dtype=mask.dtype), mask)


def excluded_indices(protocol: Protocol, class_names: Sequence[str]) -> list[int]:
    """Indices of the classes ``protocol`` leaves out of its means (matched case-insensitively)."""
    excluded = set(protocol.excluded_classes)
    return [i for i, name in enumerate(class_names) if name.lower() in excluded]


def protocol_metrics(matrix: np.ndarray, class_names: Sequence[str], protocol: Protocol) -> dict:
    """:func:`rsseg.train.metrics.compute_metrics` with the protocol's means under ``"protocol"``."""
    metrics = compute_metrics(matrix, class_names, excluded_indices(protocol, class_names))
    metrics["protocol"] = {"name": protocol.name, **metrics["papers"]}
    return metrics


def has_ignored_pixels(masks: Iterable[np.ndarray], ignore_index: int) -> bool:
    """Whether any reference already marks pixels as ignored (the benchmark's eroded labels do)."""
    return any(bool((mask == ignore_index).any()) for mask in masks)
