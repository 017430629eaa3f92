"""Self-describing model files: architecture, weights and everything ``predict`` needs."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import rsseg
from rsseg.errors import RssegError, first_line
from rsseg.io.atomic import atomic_output
from rsseg.schema import ClassSchema, InputSpec, SchemaError

FORMAT_KEY = "rsseg_model_file"
FORMAT_VERSION = 2  # 2: ``classes`` and ``input`` nested; 1 (rsseg <= 0.1): their fields flat in the card
CARD_FIELDS = ("arch", "classes", "input", "tile_size", "rsseg_version", "extra")
FLAT_CLASS_FIELDS = {"class_names": "names", "class_colors": "colors", "ignore_index": "ignore_index",
                     "excluded_from_mean": "excluded_from_mean"}
MIN_GSD, MAX_GSD = 1e-3, 1e5  # metres per pixel a model's training GSD may record
FLAT_INPUT_FIELDS = {"mean": "mean", "std": "std", "input_scale": "scale", "bands": "bands", "gsd": "gsd"}


@dataclass(frozen=True)
class ModelCard:
    """What a model file says about its model, beside the weights.

    ``classes`` are the model's output classes and ``input`` its input bands (see
    :mod:`rsseg.schema`); ``tile_size`` is the window it was trained on; ``extra`` holds
    free-form provenance (dataset, epoch, metrics, config).
    """

    arch: dict
    classes: ClassSchema
    input: InputSpec
    tile_size: int = 512
    rsseg_version: str = rsseg.__version__
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.arch["num_classes"])

    @property
    def in_channels(self) -> int:
        return int(self.arch["in_channels"])

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "classes": self.classes.to_dict(), "input": self.input.to_dict(),
                "tile_size": self.tile_size, "rsseg_version": self.rsseg_version, "extra": self.extra}


def check_card(card: ModelCard) -> ModelCard:
    """``card`` if its classes and bands fit its architecture; :class:`SchemaError` otherwise."""
    arch = card.arch
    if not isinstance(arch, dict) or not {"name", "num_classes", "in_channels", "kwargs"} <= set(arch):
        raise SchemaError("arch must give name, num_classes, in_channels and kwargs")
    k, c = card.num_classes, card.in_channels
    if card.classes.num_classes != k:
        raise SchemaError(f"model has {k} classes but its card names {card.classes.num_classes}")
    if card.input.channels != c:
        raise SchemaError(f"model has {c} input channels but its card gives {card.input.channels} band means/stds")
    if not isinstance(card.tile_size, int) or card.tile_size < 1:
        raise SchemaError(f"tile_size {card.tile_size!r} must be a positive integer")
    span = card.extra.get("gsd_range") if isinstance(card.extra, dict) else None
    if span is not None and not (isinstance(span, (list, tuple)) and len(span) == 2
                                 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                         and MIN_GSD <= v <= MAX_GSD for v in span) and span[0] <= span[1]):
        raise SchemaError(f"extra.gsd_range {span!r} must be two metres per pixel, low <= high, "
                          f"within {MIN_GSD:g}..{MAX_GSD:g}")
    return card


def make_card(arch: dict, **card: Any) -> ModelCard:
    """A checked :class:`ModelCard` for ``arch`` with defaults for anything not given.

    Accepts ``classes``/``input`` records or their fields by their flat names (``class_names``,
    ``class_colors``, ``ignore_index``, ``excluded_from_mean``, ``mean``, ``std``, ``input_scale``,
    ``bands``, ``gsd``), besides ``tile_size``, ``rsseg_version`` and ``extra``.
    """
    unknown = set(card) - set(CARD_FIELDS) - set(FLAT_CLASS_FIELDS) - set(FLAT_INPUT_FIELDS)
    if unknown:
        raise TypeError(f"unknown model card fields: {sorted(unknown)}")
    k, c = int(arch["num_classes"]), int(arch["in_channels"])
    class_fields = {new: card.pop(old) for old, new in FLAT_CLASS_FIELDS.items() if card.get(old) is not None}
    input_fields = {new: card.pop(old) for old, new in FLAT_INPUT_FIELDS.items() if old in card}
    if "classes" not in card:
        class_fields.setdefault("names", [f"class_{i}" for i in range(k)])
        card["classes"] = ClassSchema.from_dict(class_fields)
    if "input" not in card:
        defaults = InputSpec.imagenet(c)
        input_fields.setdefault("mean", defaults.mean)
        input_fields.setdefault("std", defaults.std)
        card["input"] = InputSpec.from_dict({k: v for k, v in input_fields.items() if v is not None})
    return check_card(ModelCard(arch=arch, **card))


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, half: bool = False,
                    overwrite: bool = True, **card: Any) -> ModelCard:
    """Write ``model`` and its card (see :class:`ModelCard` fields) to ``path`` atomically.

    ``half=True`` stores floating-point weights as float16 (loaded back as float32).
    """
    arch = getattr(model, "arch", None)
    if arch is None:
        raise ValueError("model was not built by rsseg.models.create_model (no .arch)")
    model_card = make_card(arch, **card)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
             for k, v in model.state_dict().items()}
    payload = {FORMAT_KEY: FORMAT_VERSION, "card": model_card.to_dict(), "state_dict": state}
    with atomic_output(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return model_card


def read_card(path: str | os.PathLike) -> tuple[ModelCard, dict[str, torch.Tensor]]:
    """The card and raw state dict of a model file, with clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise RssegError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever torch.load trips on, the file is at fault
        detail = first_line(err, 100) if str(err).strip() else ""
        raise RssegError(f"{path}: not an rsseg model file "
                         f"(torch.load failed: {type(err).__name__} {detail})") from None
    if not isinstance(payload, dict) or payload.get(FORMAT_KEY) is None:
        raise RssegError(f"{path}: not an rsseg model file "
                         "(a plain state dict? save it with rsseg.models.save_checkpoint)")
    if not isinstance(payload[FORMAT_KEY], int) or payload[FORMAT_KEY] > FORMAT_VERSION:
        raise RssegError(f"{path}: model file format {payload[FORMAT_KEY]} is newer than this rsseg understands")
    if not isinstance(payload.get("state_dict"), dict):
        raise RssegError(f"{path}: invalid model file (no state_dict of weights)")
    try:
        card = card_from_dict(payload["card"], payload[FORMAT_KEY])
    except (SchemaError, KeyError, TypeError, ValueError, AttributeError) as err:
        what = f"missing field {err}" if isinstance(err, KeyError) else str(err)
        raise RssegError(f"{path}: invalid model card ({what})") from None
    for name in sorted(set(payload["card"]) - set(CARD_FIELDS) - set(FLAT_CLASS_FIELDS) - set(FLAT_INPUT_FIELDS)):
        warnings.warn(f"{path}: model card field {name!r} is unknown to this rsseg and ignored", stacklevel=2)
    return card, payload["state_dict"]


def card_from_dict(data: dict, version: int = FORMAT_VERSION) -> ModelCard:
    """A checked card from its stored form (format 2, or the flat format 1)."""
    if not isinstance(data, dict):
        raise TypeError("the card is not a mapping")
    if version < 2:
        data = {**data, "classes": {new: data[old] for old, new in FLAT_CLASS_FIELDS.items() if old in data},
                "input": {new: data[old] for old, new in FLAT_INPUT_FIELDS.items() if old in data}}
        extra = dict(data.get("extra") or {})
        data["classes"].setdefault("excluded_from_mean", extra.pop("excluded_from_mean", ()))
        data["extra"] = extra
    return check_card(ModelCard(arch=data["arch"], classes=ClassSchema.from_dict(data["classes"]),
                                input=InputSpec.from_dict(data["input"]), tile_size=data.get("tile_size", 512),
                                rsseg_version=str(data.get("rsseg_version", "")), extra=dict(data.get("extra") or {})))


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the model of a model file (no other file, no network) in eval mode."""
    from rsseg.models.registry import check_hyperparams, create_model

    card, state = read_card(path)
    arch = card.arch
    try:
        check_hyperparams(arch["name"], arch["kwargs"])
    except TypeError as err:
        raise RssegError(f"{path}: invalid model card ({err})") from None
    model = create_model(arch["name"], arch["num_classes"], arch["in_channels"], **arch["kwargs"])
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise RssegError(f"{path}: weights do not fit architecture {arch['name']!r} ({first})") from None
    return model.to(device).eval(), card
