"""What a dataset and a model file promise each other: the classes and the input bands.

This is the bottom layer of rsseg (no rsseg imports): ``io``, ``models``, ``data`` and
``train`` all speak in these two records. A patch folder's ``dataset.yaml``
(:class:`rsseg.data.patches.DatasetInfo`) and a model file's card
(:class:`rsseg.models.checkpoint.ModelCard`) each embed one :class:`ClassSchema` and one
:class:`InputSpec`, so a dataset hands them to the model it trains unchanged.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

NODATA = 255
"""Class id of "no class": the ignore index of labels and the nodata value of class masks."""

Color = tuple[int, int, int]


class SchemaError(ValueError):
    """A class schema or input spec that contradicts itself or its model."""


def default_colors(n: int) -> tuple[Color, ...]:
    """A distinct colour per class when none is given (matplotlib's tab20, cycled)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return tuple(tuple(int(255 * c) for c in cmap(i % 20)[:3]) for i in range(n))  # type: ignore[misc]


def colors_to_index(rgb: np.ndarray, colors: Sequence[Color], ignore_index: int = NODATA,
                    boundary: Color | None = None) -> tuple[np.ndarray, Counter]:
    """Class ids of an RGB label (3×H×W) by exact colour match.

    Pixels of no class colour get ``ignore_index``; they are counted per colour in the returned
    counter, except the ``boundary`` colour of eroded labels, which is expected.
    """
    if rgb.shape[0] < 3:
        raise ValueError("an RGB label needs 3 bands")
    code = (rgb[0].astype(np.int32) << 16) | (rgb[1].astype(np.int32) << 8) | rgb[2].astype(np.int32)
    out = np.full(code.shape, ignore_index, dtype=np.uint8)
    for i, (r, g, b) in enumerate(colors):
        out[code == (r << 16 | g << 8 | b)] = i
    unknown = out == ignore_index
    if boundary is not None:
        unknown &= code != (boundary[0] << 16 | boundary[1] << 8 | boundary[2])
    values, counts = np.unique(code[unknown], return_counts=True)
    found = Counter({(int(v) >> 16, int(v) >> 8 & 255, int(v) & 255): int(n) for v, n in zip(values, counts)})
    return out, found


@dataclass(frozen=True)
class ClassSchema:
    """The classes of a dataset or model: id ``i`` is ``names[i]`` drawn in ``colors[i]``.

    ``ignore_index`` marks unlabelled pixels; ``excluded_from_mean`` are the class ids the
    papers leave out of their mean metrics (e.g. ISPRS clutter). Names are looked up without
    regard to case (:meth:`index`). ``colors`` default to :func:`default_colors`.
    ``label_sets`` are partial labels of training data: ``(value, class ids)`` pairs, a pixel of
    label ``value`` being one of those classes, not known which (e.g. "not a building").
    """

    names: tuple[str, ...]
    colors: tuple[Color, ...] = ()
    ignore_index: int = NODATA
    excluded_from_mean: tuple[int, ...] = ()
    label_sets: tuple[tuple[int, tuple[int, ...]], ...] = ()

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        colors = tuple(tuple(int(v) for v in c) for c in self.colors) or default_colors(len(names))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "colors", colors)
        object.__setattr__(self, "excluded_from_mean", tuple(int(i) for i in self.excluded_from_mean))
        object.__setattr__(self, "ignore_index", int(self.ignore_index))
        object.__setattr__(self, "label_sets", tuple((int(v), tuple(int(c) for c in members))
                                                     for v, members in self.label_sets))
        if not names:
            raise SchemaError("no class names")
        if len({n.lower() for n in names}) != len(names):
            raise SchemaError(f"class names repeat (ignoring case): {', '.join(names)}")
        if len(colors) != len(names) or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colors):
            raise SchemaError(f"{len(names)} classes need {len(names)} colours r,g,b in 0..255, got {len(colors)}")
        if len(names) > NODATA or not 0 <= self.ignore_index <= 255 or self.ignore_index < len(names):
            raise SchemaError(f"ignore index {self.ignore_index} must be in {len(names)}..255 "
                              f"(at most {NODATA} classes)")
        if any(not 0 <= i < len(names) for i in self.excluded_from_mean):
            raise SchemaError(f"excluded_from_mean {list(self.excluded_from_mean)} are not class ids")
        for value, members in self.label_sets:
            if not len(names) <= value <= 255 or value == self.ignore_index:
                raise SchemaError(f"label set {value}: its value must be in {len(names)}..255 and not the ignore "
                                  f"index {self.ignore_index}")
            if len(set(members)) < 2 or any(not 0 <= c < len(names) for c in members):
                raise SchemaError(f"label set {value}: {list(members)} must be two or more distinct class ids")
        if len({v for v, _ in self.label_sets}) != len(self.label_sets):
            raise SchemaError("label set values repeat")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Class id of ``name`` (any case); ``KeyError`` if there is none."""
        lowered = [n.lower() for n in self.names]
        try:
            return lowered.index(str(name).strip().lower())
        except ValueError:
            raise KeyError(name) from None

    def lookup(self, token: str | int) -> int | None:
        """Class id of a name (any case) or of an id given as text; ``None`` when unknown."""
        text = str(token).strip()
        if text.isdigit():
            return int(text) if int(text) < self.num_classes else None
        try:
            return self.index(text)
        except KeyError:
            return None

    def label_value(self, token: str | int) -> int | None:
        """The label value of a class (name or id, as :meth:`lookup`) or of a label set (its value)."""
        cls = self.lookup(token)
        sets = {str(v): v for v, _ in self.label_sets}
        return cls if cls is not None else sets.get(str(token).strip())

    def is_label(self, value: int) -> bool:
        """Whether ``value`` may appear in labels: a class id, a label set's value or the ignore index."""
        return 0 <= value < self.num_classes or value == self.ignore_index or value in dict(self.label_sets)

    def to_dict(self) -> dict[str, Any]:
        out = {"names": list(self.names), "colors": [list(c) for c in self.colors],
               "ignore_index": self.ignore_index, "excluded_from_mean": list(self.excluded_from_mean)}
        if self.label_sets:
            out["label_sets"] = {str(v): [self.names[c] for c in members] for v, members in self.label_sets}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassSchema:
        names = tuple(data["names"])
        lowered = [str(n).lower() for n in names]
        try:
            sets = tuple((int(v), tuple(lowered.index(str(m).lower()) for m in members))
                         for v, members in (data.get("label_sets") or {}).items())
        except ValueError as err:
            raise SchemaError(f"label_sets name a class that is not one of {', '.join(names)}") from err
        return cls(names, tuple(tuple(c) for c in data.get("colors") or ()),
                   int(data.get("ignore_index", NODATA)), tuple(data.get("excluded_from_mean") or ()), sets)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """The input bands: model input is ``(raw / scale - mean) / std`` per band.

    ``bands`` are the 1-based bands of the source scenes (``None``: the first ``len(mean)``);
    ``gsd`` is the ground sampling distance in metres per pixel, when known.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 255.0
    bands: tuple[int, ...] | None = None
    gsd: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "scale", float(self.scale))
        if self.bands is not None:
            object.__setattr__(self, "bands", tuple(int(b) for b in self.bands))
        if self.gsd is not None:
            object.__setattr__(self, "gsd", float(self.gsd))
        c = len(self.mean)
        if c < 1 or len(self.std) != c:
            raise SchemaError(f"{c} band means but {len(self.std)} band stds (at least one band)")
        if not all(math.isfinite(v) for v in self.mean) or not all(math.isfinite(v) and v > 0 for v in self.std):
            raise SchemaError("band means must be finite and stds finite and > 0")
        if not math.isfinite(self.scale) or self.scale <= 0:
            raise SchemaError(f"input scale {self.scale} must be finite and > 0")
        if self.bands is not None and (len(self.bands) != c or any(b < 1 for b in self.bands)):
            raise SchemaError(f"bands {list(self.bands)} must be {c} 1-based band numbers")
        if self.gsd is not None and not (math.isfinite(self.gsd) and self.gsd > 0):
            raise SchemaError(f"gsd {self.gsd} must be finite and > 0")

    @classmethod
    def imagenet(cls, channels: int, **kwargs: Any) -> InputSpec:
        """ImageNet statistics for the first three bands, 0.5 ± 0.25 for the others."""
        mean = [IMAGENET_MEAN[i] if i < 3 else 0.5 for i in range(channels)]
        std = [IMAGENET_STD[i] if i < 3 else 0.25 for i in range(channels)]
        return cls(tuple(mean), tuple(std), **kwargs)

    @property
    def channels(self) -> int:
        return len(self.mean)

    def to_dict(self) -> dict[str, Any]:
        return {"bands": None if self.bands is None else list(self.bands), "scale": self.scale,
                "mean": list(self.mean), "std": list(self.std), "gsd": self.gsd}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSpec:
        return cls(tuple(data["mean"]), tuple(data["std"]), float(data.get("scale", 255.0)),
                   data.get("bands"), data.get("gsd"))


SCHEMA_FIELDS = ("names", "colors", "ignore_index", "excluded_from_mean")
INPUT_FIELDS = ("bands", "scale", "mean", "std", "gsd")
