"""How a scene is predicted: :class:`PredictOptions`, and the fields of it that change the result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from rsseg.choices import PRECISIONS, TTA_MODES
from rsseg.errors import OptionError
from rsseg.tiling.gsd import parse_gsd
from rsseg.tiling.journal import BAND_ROWS
from rsseg.tiling.outputs import resolve_outputs

RESULT = {"result": True}  # field metadata: the field changes the result, so it enters the resume key


@dataclass(frozen=True)
class PredictOptions:
    """How :func:`rsseg.tiling.predict_scene` runs; every field has a default.

    Fields marked ``metadata=RESULT`` change the result and so enter the resume key
    (:func:`result_fields`); a subclass adding such a field needs nothing else.

    Args:
        tile: window side in pixels, a multiple of the model's window multiple (``None``: the model's ``tile_size``).
        overlap: fraction of a window shared with its neighbour, in [0, 1).
        stride: window step in pixels; replaces ``overlap`` when given.
        batch_size: windows per model call.
        tta: test-time augmentation, one of :data:`rsseg.choices.TTA_MODES`.
        bands: 1-based scene bands feeding the model (``None``: the card's, else the first ones).
        probs: also write per-class probabilities (uint8, p·255) to this GeoTIFF.
        confidence: also write confidence bands (uint8, value·255) to this GeoTIFF, in the
            same pass: top-class probability, margin, entropy and, with TTA, the views'
            disagreement (:mod:`rsseg.tiling.confidence`).
        outputs: further outputs by kind name (:data:`rsseg.tiling.outputs.OUTPUT_KINDS`) -> path.
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
        overlap_io: read and prepare the next windows, and save finished bands to the journal, in
            threads of their own while the model runs in another and the caller's thread blends
            (``False``: all in turn, in the caller's thread; the files are the same bytes).
    """

    tile: int | None = field(default=None, metadata=RESULT)
    overlap: float = field(default=0.5, metadata=RESULT)
    stride: int | None = field(default=None, metadata=RESULT)
    batch_size: int = field(default=4, metadata=RESULT)
    tta: str = field(default="none", metadata=RESULT)
    bands: tuple[int, ...] | None = field(default=None, metadata=RESULT)
    probs: str | Path | None = None
    confidence: str | Path | None = None
    outputs: Mapping[str, str | Path] = field(default_factory=dict)
    cog: bool = False
    device: str = "auto"
    overwrite: bool = False
    progress: bool = True
    input_scale: float | None = field(default=None, metadata=RESULT)
    threads: int | None = None
    precision: str = field(default="auto", metadata=RESULT)
    record: bool = True
    model_source: str | None = None
    gsd: str | float = field(default="auto", metadata=RESULT)
    restart: bool = False
    band_rows: int = field(default=BAND_ROWS, metadata=RESULT)
    overlap_io: bool = True

    def __post_init__(self) -> None:
        if self.bands is not None:
            object.__setattr__(self, "bands", tuple(self.bands) or None)
        object.__setattr__(self, "gsd", parse_gsd(self.gsd))
        checks = [("tile", self.tile is None or self.tile > 0, "must be positive"),
                  ("overlap", 0 <= self.overlap < 1, "must be in [0, 1)"),
                  ("stride", self.stride is None or self.stride >= 1, "must be at least 1"),
                  ("batch_size", self.batch_size >= 1, "must be at least 1"),
                  ("tta", self.tta in TTA_MODES, f"choose from {', '.join(TTA_MODES)}"),
                  ("bands", self.bands is None or min(self.bands) >= 1, "band numbers start at 1"),
                  ("input_scale", self.input_scale is None or (math.isfinite(self.input_scale)
                                                               and self.input_scale > 0), "must be finite and > 0"),
                  ("threads", self.threads is None or self.threads >= 1, "must be at least 1"),
                  ("band_rows", self.band_rows >= 1, "must be at least 1"),
                  ("precision", self.precision in PRECISIONS, f"choose from {', '.join(PRECISIONS)}")]
        for name, ok, problem in checks:
            if not ok:
                raise OptionError(name, getattr(self, name), problem)
        self.extra_outputs()

    def extra_outputs(self) -> dict[str, Path]:
        """The outputs asked for besides the mask (kind name -> path), in registry order."""
        shorthands = {"probs": self.probs, "confidence": self.confidence}
        return resolve_outputs({**self.outputs, **{name: path for name, path in shorthands.items() if path}})


def result_fields(options: PredictOptions) -> dict[str, Any]:
    """The values of the fields marked as changing the result (``metadata=RESULT``), by name."""
    return {f.name: getattr(options, f.name) for f in fields(options) if f.metadata.get("result")}


def check_tile(tile: int, multiple: int) -> None:
    """Refuse a window side the model cannot take."""
    if tile % multiple:
        raise OptionError("tile", tile, f"must be a positive multiple of {multiple}")
