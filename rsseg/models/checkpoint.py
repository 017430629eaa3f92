"""Self-describing model files: architecture, weights and everything ``predict`` needs."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import rsseg
from rsseg.errors import RssegError
from rsseg.io.atomic import atomic_output

FORMAT_KEY = "rsseg_model_file"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_colors(n: int) -> list[tuple[int, int, int]]:
    """A distinct colour per class when none is given."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [tuple(int(255 * c) for c in cmap(i % 20)[:3]) for i in range(n)]


@dataclass
class ModelCard:
    """What a model file says about its model, beside the weights.

    ``bands`` are the 1-based scene bands the model was trained on (``None``: the first
    ``in_channels``). Inputs are ``(raw / input_scale - mean) / std`` per band.
    """

    arch: dict
    class_names: list[str]
    class_colors: list[tuple[int, int, int]]
    mean: list[float]
    std: list[float]
    input_scale: float = 255.0
    bands: list[int] | None = None
    tile_size: int = 512
    gsd: float | None = None
    ignore_index: int = 255
    rsseg_version: str = rsseg.__version__
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.arch["num_classes"])

    @property
    def in_channels(self) -> int:
        return int(self.arch["in_channels"])


def make_card(arch: dict, **card: Any) -> ModelCard:
    """A :class:`ModelCard` for ``arch`` with defaults for anything not given."""
    k, c = int(arch["num_classes"]), int(arch["in_channels"])
    names = [f.name for f in dataclasses.fields(ModelCard)]
    unknown = set(card) - set(names)
    if unknown:
        raise TypeError(f"unknown model card fields: {sorted(unknown)}")
    card.setdefault("class_names", [f"class_{i}" for i in range(k)])
    card.setdefault("class_colors", default_colors(k))
    card.setdefault("mean", [IMAGENET_MEAN[i] if i < 3 else 0.5 for i in range(c)])
    card.setdefault("std", [IMAGENET_STD[i] if i < 3 else 0.25 for i in range(c)])
    card["class_colors"] = [tuple(int(v) for v in col) for col in card["class_colors"]]
    result = ModelCard(arch=arch, **card)
    if len(result.class_names) != k or len(result.class_colors) != k:
        raise ValueError(f"model has {k} classes but card names {len(result.class_names)} / colours {len(result.class_colors)}")
    if len(result.mean) != c or len(result.std) != c:
        raise ValueError(f"model has {c} input channels but card gives {len(result.mean)} means / {len(result.std)} stds")
    return result


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
    payload = {FORMAT_KEY: FORMAT_VERSION, "card": dataclasses.asdict(model_card), "state_dict": state}
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
        detail = str(err).strip().splitlines()[0][:100] if str(err).strip() else ""
        raise RssegError(f"{path}: not an rsseg model file (torch.load failed: {type(err).__name__} {detail})") from None
    if not isinstance(payload, dict) or payload.get(FORMAT_KEY) is None:
        raise RssegError(f"{path}: not an rsseg model file (a plain state dict? save it with rsseg.models.save_checkpoint)")
    if payload[FORMAT_KEY] > FORMAT_VERSION:
        raise RssegError(f"{path}: model file format {payload[FORMAT_KEY]} is newer than this rsseg understands")
    card = dict(payload["card"])
    card["class_colors"] = [tuple(c) for c in card["class_colors"]]
    return ModelCard(**card), payload["state_dict"]


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the model of a model file (no other file, no network) in eval mode."""
    from rsseg.models.registry import create_model

    card, state = read_card(path)
    arch = card.arch
    model = create_model(arch["name"], arch["num_classes"], arch["in_channels"], **arch["kwargs"])
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise RssegError(f"{path}: weights do not fit architecture {arch['name']!r} ({first})") from None
    return model.to(device).eval(), card
