"""A small model registry in the style of timm/smp: ``@register_model`` + ``create_model``.

Every public module of :mod:`rsseg.models` is imported on first use of the registry, and so is
every module named under the ``rsseg.models`` entry-point group (see :mod:`rsseg.plugins`): an
architecture is one file whose builder carries :func:`register_model`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from rsseg.models.base import SegmentationModel
from rsseg.models.pretrained import load_pretrained_backbone
from rsseg.plugins import Registry


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about an architecture."""

    name: str
    builder: Callable[..., SegmentationModel]
    paper: str
    default_backbone: str


MODELS: Registry[ModelEntry] = Registry("model", "rsseg.models", "rsseg.models")


def register_model(name: str, *, paper: str) -> Callable:
    """Decorator registering ``builder(num_classes, in_channels, **kwargs)`` under ``name``.

    The entry's default backbone is the default of the builder's ``backbone`` argument.
    """

    def wrap(builder: Callable[..., SegmentationModel]) -> Callable[..., SegmentationModel]:
        backbone = inspect.signature(builder).parameters.get("backbone")
        default = backbone.default if backbone is not None and backbone.default is not inspect.Parameter.empty else "-"
        MODELS.add(name, ModelEntry(name, builder, paper, str(default)))
        return builder

    return wrap


def list_models() -> list[ModelEntry]:
    """All registered architectures, sorted by name."""
    return MODELS.entries()


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``, or a clear error listing the known names."""
    return MODELS.get(name)


def create_model(name: str, num_classes: int, in_channels: int = 3, pretrained: bool = False,
                 pretrained_weights: str | None = None, **kwargs: Any) -> SegmentationModel:
    """Build a registered model, its backbone initialised from ImageNet or a local file.

    ``pretrained=True`` loads the backbone's ImageNet weights (offline for EfficientNet-Lite,
    else timm's hub; see :mod:`rsseg.models.pretrained`); ``pretrained_weights`` names a local
    state dict instead. The other constructor arguments are kept on ``model.arch`` so that a
    checkpoint can rebuild the model; the pretraining source is not: a model file carries its
    weights and never needs it.
    """
    entry = get_entry(name)
    model = entry.builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    if pretrained or pretrained_weights:
        load_pretrained_backbone(model.backbone(), kwargs.get("backbone", entry.default_backbone), in_channels,
                                 pretrained, pretrained_weights)
    model.arch = {"name": name, "num_classes": num_classes, "in_channels": in_channels, "kwargs": kwargs}
    return model
