"""A small model registry in the style of timm/smp: ``@register_model`` + ``create_model``."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from rsseg.errors import RssegError
from rsseg.models.base import SegmentationModel


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about an architecture."""

    name: str
    builder: Callable[..., SegmentationModel]
    paper: str
    default_backbone: str


_REGISTRY: dict[str, ModelEntry] = {}
ARCHITECTURES = ("smp_models", "manet", "maresunet", "abcnet", "reconet", "flanet", "sanet", "danet")
_imported = False


def _import_architectures() -> None:
    """Import the built-in architecture modules once; they register themselves."""
    global _imported
    if not _imported:
        _imported = True
        for module in ARCHITECTURES:
            importlib.import_module(f"rsseg.models.{module}")


def register_model(name: str, *, paper: str) -> Callable:
    """Decorator registering ``builder(num_classes, in_channels, **kwargs)`` under ``name``.

    The entry's default backbone is the default of the builder's ``backbone`` argument.
    """

    def wrap(builder: Callable[..., SegmentationModel]) -> Callable[..., SegmentationModel]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        backbone = inspect.signature(builder).parameters.get("backbone")
        default = backbone.default if backbone is not None and backbone.default is not inspect.Parameter.empty else "-"
        _REGISTRY[name] = ModelEntry(name, builder, paper, str(default))
        return builder

    return wrap


def list_models() -> list[ModelEntry]:
    """All registered architectures, sorted by name."""
    _import_architectures()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``, or a clear error listing the known names."""
    _import_architectures()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RssegError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def create_model(name: str, num_classes: int, in_channels: int = 3, **kwargs: Any) -> SegmentationModel:
    """Build a registered model; nothing is downloaded.

    The constructor arguments are kept on ``model.arch`` so that a checkpoint can rebuild it;
    ``pretrained_weights`` is left out: a model file carries its weights and must not need the
    pretraining file.
    """
    model = get_entry(name).builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    kept = {k: v for k, v in kwargs.items() if k != "pretrained_weights"}
    model.arch = {"name": name, "num_classes": num_classes, "in_channels": in_channels, "kwargs": kept}
    return model
