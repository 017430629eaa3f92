"""Accumulate weighted probabilities in a rolling band of rows."""

from __future__ import annotations

import torch

from rsseg.io.mask_meta import NODATA


class RowBandBlender:
    """``Σ w·p`` and ``Σ w`` for the rows that windows still touch, never the whole scene.

    Buffers of ``capacity`` rows hold scene rows ``[top, top + capacity - offset)`` starting at
    buffer row ``offset``; ``top`` starts at 0, or further down for a run over part of the scene.
    :meth:`add` accumulates a window; :meth:`pop_until` returns the finished rows above a scene
    row and releases them. Live rows are moved back to the start
    of the buffers only when a window would run past their end, in place, without allocation.
    ``extra`` channels after the classes (e.g. TTA disagreement) are blended alike but take no
    part in choosing the class.
    """

    def __init__(self, num_classes: int, width: int, capacity: int, device: torch.device, top: int = 0,
                 extra: int = 0):
        self.top = top
        self.offset = 0
        self.capacity = capacity
        self.num_classes = num_classes
        self.acc = torch.zeros(num_classes + extra, capacity, width, device=device)
        self.wsum = torch.zeros(capacity, width, device=device)

    def _compact(self) -> None:
        """Move the live rows ``[offset, capacity)`` to the start, chunk by non-overlapping chunk."""
        shift, live = self.offset, self.capacity - self.offset
        for start in range(0, live, shift):
            n = min(shift, live - start)
            self.acc[:, start:start + n] = self.acc[:, start + shift:start + shift + n]
            self.wsum[start:start + n] = self.wsum[start + shift:start + shift + n]
        self.acc[:, live:] = 0
        self.wsum[live:] = 0
        self.offset = 0

    def add(self, y: int, x: int, probs: torch.Tensor, weight: torch.Tensor) -> None:
        """Add ``probs`` (K(+extra)×h×w) with per-pixel ``weight`` (h×w) at scene position (y, x)."""
        h, w = weight.shape
        if y < self.top:
            raise RuntimeError(f"window at row {y} lies above rows already written (from {self.top})")
        if y + h - self.top > self.capacity:
            raise RuntimeError("window reaches below the rolling band; capacity too small")
        if self.offset + (y + h - self.top) > self.capacity:
            self._compact()
        r = self.offset + y - self.top
        self.acc[:, r:r + h, x:x + w].addcmul_(probs, weight)
        self.wsum[r:r + h, x:x + w] += weight

    def pop_until(self, row: int, with_probs: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Release finished rows from ``top`` towards ``row``, at most one band's worth per call.

        Returns their class ids (n×W, nodata 255 where no weight fell) and, if asked,
        probabilities (K(+extra)×n×W). Call again while ``top < row``.
        """
        if self.offset == self.capacity:  # band empty: reuse it from the start
            self.offset = 0
        n = min(row - self.top, self.capacity - self.offset)
        rows = slice(self.offset, self.offset + n)
        wsum = self.wsum[rows]
        # max(0) is ~5x faster than argmax(0)
        classes = self.acc[:self.num_classes, rows].max(0).indices.to(torch.uint8)
        classes[wsum <= 0] = NODATA
        probs = self.acc[:, rows] / wsum.clamp_min(1e-12) if with_probs else None
        classes = classes.cpu()
        probs = probs.cpu() if probs is not None else None
        self.acc[:, rows] = 0
        self.wsum[rows] = 0
        self.offset += n
        self.top += n
        return probs, classes
