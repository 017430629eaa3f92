"""The registry of raster outputs a prediction can write: one :class:`OutputKind` record each.

The engine, the writer, the catalogue and the CLI iterate over :data:`OUTPUT_KINDS`; a new
output is one :func:`register_output_kind` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from rsseg.errors import OptionError
from rsseg.io.mask_writer import quantize_probs
from rsseg.io.output_kind import BlendedRows, OutputKind
from rsseg.io.qgis_style import class_mask_qml, stretch_qml
from rsseg.tiling.confidence import band_names, confidence_bands

MASK = OutputKind("mask", "_mask.tif", bands=lambda names, tta: ["class"],
                  compute=lambda rows: rows.classes[None], quantize=lambda a: a[0],
                  style=class_mask_qml, resampling="MODE")
PROBS = OutputKind("probs", "_probs.tif", bands=lambda names, tta: list(names),
                   compute=lambda rows: rows.probs, quantize=quantize_probs, style=lambda names, colors: stretch_qml(),
                   tags={"RSSEG_PROBABILITY_SCALE": "255"})
CONFIDENCE = OutputKind("confidence", "_confidence.tif", bands=lambda names, tta: band_names(tta),
                        compute=lambda rows: confidence_bands(rows.probs, rows.disagreement), quantize=quantize_probs,
                        style=lambda names, colors: stretch_qml(), tags={"RSSEG_CONFIDENCE_SCALE": "255"})

OUTPUT_KINDS: dict[str, OutputKind] = {kind.name: kind for kind in (MASK, PROBS, CONFIDENCE)}


def register_output_kind(kind: OutputKind) -> OutputKind:
    """Add ``kind`` to :data:`OUTPUT_KINDS` (after the others: files are written in this order)."""
    if kind.name in OUTPUT_KINDS and OUTPUT_KINDS[kind.name] != kind:
        raise ValueError(f"output kind {kind.name!r} is registered already")
    OUTPUT_KINDS[kind.name] = kind
    return kind


def extra_kinds() -> list[OutputKind]:
    """Every registered output but the mask, in registration order."""
    return [kind for kind in OUTPUT_KINDS.values() if kind is not MASK]


def resolve_outputs(asked: Mapping[str, str | Path | None]) -> dict[str, Path]:
    """The extra outputs asked for (kind name -> path), in registry order; unknown names refused."""
    for name in asked:
        if name not in OUTPUT_KINDS or name == MASK.name:
            choices = ", ".join(kind.name for kind in extra_kinds())
            raise OptionError("outputs", name, f"unknown output; choose from {choices}")
    return {kind.name: Path(asked[kind.name]) for kind in extra_kinds()  # type: ignore[arg-type]
            if asked.get(kind.name)}


__all__ = ["BlendedRows", "CONFIDENCE", "MASK", "OUTPUT_KINDS", "OutputKind", "PROBS", "extra_kinds",
           "register_output_kind", "resolve_outputs"]
