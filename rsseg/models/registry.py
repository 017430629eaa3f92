"""A small model registry in the style of timm/smp: ``@register_model`` + ``create_model``.

Every public module of :mod:`rsseg.models` is imported on first use of the registry, and so is
every module named under the ``rsseg.models`` entry-point group (see :mod:`rsseg.plugins`): an
architecture is one file whose builder carries :func:`register_model`.
"""

from __future__ import annotations

import inspect
import math
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


def _fits(value: Any, default: Any) -> bool:
    """Whether ``value`` has the type of the hyperparameter's ``default`` (numbers for a sequence of them)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and math.isfinite(value)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list)) and all(_fits(v, d) for v in value for d in default[:1])
    return isinstance(value, type(default))


def check_hyperparams(name: str, kwargs: Any) -> None:
    """Refuse ``kwargs`` that are not the declared hyperparameters of architecture ``name``, of their types.

    What a model file may ask of its builder: never pretraining (``pretrained``, a weights file)
    nor a backbone fetched from a hub, so that loading a model file reads no other file and no network.
    """
    if not isinstance(kwargs, dict):
        raise TypeError("arch.kwargs is not a mapping")
    params = inspect.signature(get_entry(name).builder).parameters
    declared = {k: p.default for k, p in params.items()
                if k not in ("num_classes", "in_channels") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for key, value in kwargs.items():
        if key not in declared:
            raise TypeError(f"arch.kwargs {key!r} is not a hyperparameter of {name} "
                            f"(it takes {', '.join(sorted(declared)) or 'none'})")
        default = declared[key]
        if default is not inspect.Parameter.empty and default is not None and not _fits(value, default):
            raise TypeError(f"arch.kwargs {key}={value!r} is not of the type of its default {default!r}")
    backbone = kwargs.get("backbone")
    if isinstance(backbone, str) and (":" in backbone or "/" in backbone):
        raise TypeError(f"arch.kwargs backbone={backbone!r} names a hub or a path; a model file names a "
                        "built-in backbone")


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
