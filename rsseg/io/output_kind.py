"""What defines one raster output of a prediction (mask, probabilities, confidence, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class BlendedRows:
    """Finished scene rows as the blender releases them, from which every output is computed.

    ``classes``: n×W class ids (nodata 255); ``probs``: K×n×W blended class probabilities;
    ``disagreement``: n×W share of TTA views that disagree (``None`` without it). Tensors.
    """

    classes: Any
    probs: Any
    disagreement: Any = None


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one record per kind
class OutputKind:
    """One raster output: how it is named, computed, stored, styled and mosaicked.

    Args:
        name: the parameter giving its path (``probs``) and its key in the resume journal.
        suffix: ``<scene stem>`` + suffix names it in a catalogue folder.
        bands: band descriptions from ``(class_names, tta_disagreement)``.
        compute: C×n×W values in [0, 1] (class ids for the mask) of :class:`BlendedRows`.
        quantize: float C×n×W -> the stored uint8 C×n×W (or n×W for the mask).
        tags: GeoTIFF tags written with it.
        resampling: of its overviews (``MODE`` for classes, ``AVERAGE`` for values).
        style: QGIS ``.qml`` sidecar from ``(class_names, class_colors)``.
        mosaic: whether a catalogue gets ``mosaic_<name>.vrt`` (``mosaic.vrt`` for the mask) over it.
    """

    name: str
    suffix: str
    bands: Callable[[list[str], bool], list[str]]
    compute: Callable[[BlendedRows], Any]
    quantize: Callable[[np.ndarray], np.ndarray]
    style: Callable[[list[str], list[tuple[int, int, int]]], str]
    tags: Mapping[str, str] = field(default_factory=dict)
    resampling: str = "AVERAGE"
    mosaic: bool = True

    def mosaic_name(self) -> str:
        """File name of its catalogue mosaic."""
        return "mosaic.vrt" if self.name == "mask" else f"mosaic_{self.name}.vrt"
