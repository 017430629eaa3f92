"""Start training from a model file (``train.init``): the bundled default model or any rsseg model.

The model file's card gives the architecture. With the dataset's classes the model keeps every
tensor; with other classes it keeps the encoder and decoder and re-initialises the classifier
layers (every tensor whose shape depends on the number of classes, auxiliary heads' included).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rsseg.data.patches import DatasetInfo
from rsseg.errors import OptionError, RssegError
from rsseg.models import create_model
from rsseg.models.checkpoint import ModelCard, read_card
from rsseg.models.default import DEFAULT_MODEL
from rsseg.train.config import ModelConfig, TrainConfig

DEFAULT = "default"  # train.init naming the bundled default model


@dataclass(frozen=True)
class WarmStart:
    """A model file read for ``train.init``: its path, card and weights."""

    path: Path
    card: ModelCard
    state: dict[str, torch.Tensor]

    def model_config(self) -> ModelConfig:
        """The card's architecture as a config ``model`` section."""
        return ModelConfig(self.card.arch["name"], dict(self.card.arch["kwargs"]))

    def describe(self) -> str:
        """One line: which architecture the card gives."""
        kwargs = ", ".join(f"{k}={v}" for k, v in self.card.arch["kwargs"].items())
        arch = f"{self.card.arch['name']}({kwargs})"
        return f"init: the model of {self.path.name}, {arch}, replaces the config's model section"


def read_warm_start(init: str, info: DatasetInfo, root: str | Path) -> WarmStart:
    """The model file ``init`` names (``default`` or a path), checked against the patch folder's bands."""
    path = DEFAULT_MODEL if init == DEFAULT else Path(init)
    try:
        card, state = read_card(path)
    except RssegError as err:
        raise OptionError("init", init, str(err).removeprefix(f"{path}: ")) from None
    model_bands = card.input.bands or tuple(range(1, card.in_channels + 1))
    data_bands = info.input.bands or tuple(range(1, info.in_channels + 1))
    if model_bands != data_bands:
        raise OptionError("init", init, f"the model reads bands {list(model_bands)} of its scenes, the patches in "
                                        f"{root} hold bands {list(data_bands)}")
    return WarmStart(path, card, state)


def with_model_of(config: TrainConfig, start: WarmStart) -> TrainConfig:
    """``config`` with the model section of the card of ``start``."""
    return dataclasses.replace(config, model=start.model_config())


def class_dependent(model: nn.Module) -> set[str]:
    """Names of the tensors of ``model`` whose shape depends on its number of classes."""
    arch = model.arch
    with torch.device("meta"):
        other = create_model(arch["name"], arch["num_classes"] + 1, arch["in_channels"], **arch["kwargs"])
    probe = other.state_dict()
    return {name for name, value in model.state_dict().items() if probe[name].shape != value.shape}


def load_warm_start(model: nn.Module, start: WarmStart, info: DatasetInfo) -> str:
    """Load the weights of ``start`` into ``model`` (built for ``info``'s classes); what was kept, in one line."""
    own = model.state_dict()
    same_classes = start.card.classes.names == info.classes.names
    fresh = set() if same_classes else class_dependent(model)
    kept = {name: value.to(own[name].dtype) for name, value in start.state.items() if name not in fresh}
    try:
        missing, unexpected = model.load_state_dict(kept, strict=False)
    except RuntimeError as err:
        raise OptionError("init", start.path, f"weights do not fit {start.card.arch['name']!r} "
                                              f"({(str(err).splitlines()[1:] or [str(err)])[0].strip()})") from None
    if set(missing) - fresh or unexpected:
        raise OptionError("init", start.path, f"weights do not fit {start.card.arch['name']!r} (missing "
                                              f"{sorted(set(missing) - fresh)[:3]}, unexpected {unexpected[:3]})")
    if same_classes:
        return f"init: kept all {len(kept)} tensors of {start.path.name}"
    names = ", ".join(info.classes.names)
    return (f"init: kept {len(kept)} tensors of {start.path.name}, re-initialised the classifier for "
            f"{info.num_classes} classes: {names}")
