"""Ground sample distance: the scene's in metres, the model's, and resampling windows between them.

A model sees objects at the size (in pixels) it was trained on. When a scene's pixels are much
larger or smaller than the model's, each window is resampled to the model's GSD before the model
and its probabilities are resampled back to the scene's pixels before blending, so the output
keeps the scene's grid and georeference and memory stays that of one model-sized window.
"""

from __future__ import annotations

from dataclasses import dataclass

import rasterio
import torch
import torch.nn.functional as F

from rsseg.errors import OptionError, RssegError
from rsseg.io.geometry import gsd_metres
from rsseg.models.checkpoint import MAX_GSD, MIN_GSD, ModelCard

TOLERANCE = 1.25  # scene and model GSD closer than this ratio: no resampling
MAX_FACTOR = 16.0  # scene and model GSD further apart than this ratio: refused (windows would grow without bound)


def scene_gsd(ds: rasterio.DatasetReader) -> float | None:
    """Metres per pixel of an open raster; see :func:`rsseg.io.geometry.gsd_metres`."""
    try:
        return gsd_metres(ds.transform, ds.crs, ds.height, ds.width)
    except ValueError as err:
        raise RssegError(f"{ds.name}: {err}") from None


def model_gsd_range(card: ModelCard) -> tuple[float, float] | None:
    """The GSDs a model was trained at: ``extra['gsd_range']`` when training jittered the scale,
    else the recorded ``gsd`` alone; ``None`` when the model file records none."""
    span = card.extra.get("gsd_range")
    if span:
        return float(span[0]), float(span[1])
    return (card.input.gsd, card.input.gsd) if card.input.gsd else None


def parse_gsd(value: str | float) -> str | float:
    """``auto``, ``native`` or a positive number of metres (``--gsd``); :class:`OptionError` otherwise."""
    if isinstance(value, str) and value in ("auto", "native"):
        return value
    try:
        metres = float(value)
    except ValueError:
        raise OptionError("gsd", value, "expected auto, native or metres per pixel") from None
    if not MIN_GSD <= metres <= MAX_GSD:
        raise OptionError("gsd", value, f"metres per pixel must be within {MIN_GSD:g}..{MAX_GSD:g}")
    return metres


@dataclass(frozen=True)
class GsdPlan:
    """What prediction does about GSD: the scene's and the model's metres per pixel, and the
    ``factor`` (scene GSD / model GSD) each window is enlarged by before the model (1: none)."""

    scene: float | None
    model: tuple[float, float] | None
    factor: float = 1.0
    warning: str | None = None

    @property
    def resampled(self) -> bool:
        return self.factor != 1.0

    def outside(self, ratio: float = 2.0) -> bool:
        """Whether the scene's GSD lies more than ``ratio`` times outside the model's range."""
        if self.scene is None or self.model is None:
            return False
        return self.scene > self.model[1] * ratio or self.scene < self.model[0] / ratio

    def describe(self) -> str:
        """E.g. ``GSD 0.23 m -> 0.09 m`` or ``GSD 0.10 m`` (empty when unknown)."""
        if self.scene is None:
            return ""
        return f"GSD {self.scene:.3g} m" + (f" -> {self.scene / self.factor:.3g} m" if self.resampled else "")


def plan_gsd(mode: str | float, ds: rasterio.DatasetReader, card: ModelCard) -> GsdPlan:
    """Decide resampling for ``--gsd`` ``mode``: ``auto`` (scene GSD from the file), ``native``
    (never resample) or metres (the scene's GSD, given; e.g. for a scene without CRS). The model's GSD is the nearest
    point of its trained range; ratios within :data:`TOLERANCE` are left alone."""
    span = model_gsd_range(card)
    if mode == "native":
        return GsdPlan(scene_gsd(ds), span)
    scene = scene_gsd(ds) if mode == "auto" else float(mode)
    if span is None:
        return GsdPlan(scene, None, warning="the model file records no training GSD; windows are not resampled "
                                            "(retrain with `rsseg prepare --gsd` or pass `gsd=native`)")
    if scene is None:  # no CRS: predict warns about the georeference already
        return GsdPlan(None, span)
    target = min(max(scene, span[0]), span[1])
    factor = scene / target
    if max(factor, 1 / factor) > MAX_FACTOR:
        raise RssegError(f"{ds.name}: scene GSD {scene:.3g} m is {max(factor, 1 / factor):.3g}× the model's "
                         f"{target:.3g} m; windows are resampled by at most {MAX_FACTOR:g}× "
                         "(give `gsd=native` to predict at the scene's GSD)")
    return GsdPlan(scene, span, factor if max(factor, 1 / factor) > TOLERANCE else 1.0)


def scene_window(tile: int, factor: float, multiple: int) -> int:
    """The scene window (a multiple of ``multiple`` pixels) covering the ground of a ``tile``-pixel model input."""
    return max(multiple, multiple * round(tile / factor / multiple))


def model_shape(height: int, width: int, factor: float, multiple: int) -> tuple[int, int]:
    """The model input (multiples of ``multiple``) for a ``height`` × ``width`` scene window enlarged by ``factor``."""
    return tuple(max(multiple, multiple * round(n * factor / multiple)) for n in (height, width))


def resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a B×C×H×W batch (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    shrink = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrink)
