"""Training configuration: defaults, YAML files with a ``base`` to inherit, ``key=value`` overrides."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence, get_args, get_origin, get_type_hints

import yaml

from rsseg.errors import RssegError, reason

METRICS = tuple(f"{group}{name}" for group in ("", "papers.", "all.") for name in ("mIoU", "mF1", "OA"))


def _opt(default: Any = None, *, minimum: float | None = None, above: float | None = None,
         maximum: float | None = None, choices: Sequence[str] = ()) -> Any:
    """A config field with its default and its allowed range or choices."""
    bounds = {"minimum": minimum, "above": above, "maximum": maximum, "choices": tuple(choices)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=bounds)
    return field(default=default, metadata=bounds)


@dataclass(frozen=True)
class DataConfig:
    """``data``: the patch folder and the training crops."""

    root: str | None = None
    tile: int = _opt(512, minimum=32)
    scale: tuple[float, float] = _opt((0.5, 1.5), above=0)
    flips: bool = True
    rot90: bool = True
    workers: int = _opt(2, minimum=0)
    val_split: str = _opt("val", choices=("train", "val", "test"))
    #: random crops per epoch (None: as many as cover the training patches once)
    samples_per_epoch: int | None = _opt(None, minimum=1)
    #: strength of colour/brightness/haze/blur/noise/JPEG randomisation (0: off, 1: full)
    photometric: float = _opt(0.0, minimum=0, maximum=1)
    #: draw a crop again (up to 10 times) while one class fills more than this share of its labelled pixels
    max_class_share: float | None = _opt(None, above=0, maximum=1)
    #: probability that a training item is a 4-image mosaic
    mosaic: float = _opt(0.0, minimum=0, maximum=1)


@dataclass(frozen=True)
class ModelConfig:
    """``model``: a registered name; every other key is a constructor argument (backbone, ...).

    ``pretrained: true`` starts the backbone from ImageNet, ``pretrained_weights: PATH`` from a file.
    """

    name: str = "unet"
    kwargs: dict[str, Any] = _opt({})


@dataclass(frozen=True)
class OptimConfig:
    """``optim``: AdamW with warm-up then cosine or poly decay, or cosine with warm restarts."""

    lr: float = _opt(6e-4, above=0)
    #: a pretrained backbone's learning rate (a random backbone trains at ``lr``)
    encoder_lr: float = _opt(6e-5, minimum=0)
    weight_decay: float = _opt(0.01, minimum=0)
    schedule: str = _opt("cosine", choices=("cosine", "poly", "cosine_restarts"))
    warmup_epochs: float = _opt(1.0, minimum=0)
    min_lr_ratio: float = _opt(0.0, minimum=0, maximum=1)
    poly_power: float = _opt(0.9, above=0)
    #: ``cosine_restarts``: the first cycle's length in epochs, and each next cycle's length factor
    t0_epochs: float = _opt(15.0, above=0)
    t_mult: float = _opt(2.0, minimum=1)
    clip_grad: float = _opt(1.0, minimum=0)


@dataclass(frozen=True)
class LossConfig:
    """``loss``: label-smoothed cross-entropy plus weighted Dice."""

    label_smoothing: float = _opt(0.05, minimum=0, maximum=1)
    dice_weight: float = _opt(1.0, minimum=0)


@dataclass(frozen=True)
class TrainSection:
    """``train``: epochs or a time budget, batches, seed, device and what selects the best epoch."""

    #: None: 50 epochs, or with ``max_minutes`` as many as the budget allows
    epochs: int | None = _opt(None, minimum=1)
    #: stop when this many minutes are spent; the learning-rate schedule ends with the budget
    max_minutes: float | None = _opt(None, above=0)
    batch_size: int = _opt(8, minimum=1)
    val_batch_size: int | None = _opt(None, minimum=1)
    seed: int = 0
    amp: bool = True
    device: str = "auto"
    threads: int | None = _opt(None, minimum=1)
    select_metric: str = _opt("mIoU", choices=METRICS)
    out: str | None = None
    #: start from a model file: ``default`` (the bundled model) or a path (see :mod:`rsseg.train.warm_start`)
    init: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    """A whole training configuration, typed and checked (see :func:`build_config`)."""

    data: DataConfig
    model: ModelConfig
    optim: OptimConfig
    loss: LossConfig
    train: TrainSection

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The YAML form (``model`` flat: ``name`` beside the constructor arguments)."""
        out = {f.name: asdict(getattr(self, f.name)) for f in fields(self)}
        out["model"] = {"name": self.model.name, **self.model.kwargs}
        out["data"]["scale"] = list(self.data.scale)
        return out


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "loss": LossConfig,
                             "train": TrainSection}
DEFAULTS: dict[str, dict[str, Any]] = TrainConfig(*(cls() for cls in SECTIONS.values())).to_dict()
# ``rsseg train`` without a config file on a machine without a GPU: small crops and batches, and
# a U-Net without a chosen backbone gets the offline pretrained EfficientNet-Lite0.
CPU_DEFAULTS: dict[str, dict[str, Any]] = {"data": {"tile": 256}, "train": {"batch_size": 4}}
CPU_MODEL = {"backbone": "efficientnet_lite0", "pretrained": True}


def merge(base: dict, update: dict, where: str = "") -> dict:
    """Recursively merge ``update`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict:
    """A config file with its ``base`` chain resolved (``base`` is relative to the file)."""
    if not path.is_file():
        raise RssegError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RssegError(f"{path}: invalid YAML ({reason(err)})") from None
    if not isinstance(data, dict):
        raise RssegError(f"{path}: a config is a mapping of sections (data, model, optim, loss, train)")
    base = data.pop("base", None)
    return merge(read_yaml((path.parent / base).resolve()), data) if base else data


def parse_override(item: str) -> dict:
    """``section.key=value`` (value parsed as YAML) as a nested dict."""
    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise RssegError(f"--set {item!r}: expected section.key=value, e.g. model.backbone=resnet18")
    return {parts[0]: {parts[1]: yaml.safe_load(raw)}}


def build_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = (),
                 updates: dict | None = None) -> TrainConfig:
    """Defaults ← config file ← ``updates`` (from CLI options) ← ``--set`` overrides, checked once.

    Without a config file, training on the CPU starts from :data:`CPU_DEFAULTS` instead of the
    defaults alone. Every value is checked for its type, range and choices here, before any data is read.
    """
    config: dict = {}
    source = str(path) if path else "--set"
    user = merge(updates or {}, {})
    for item in overrides:
        user = merge(user, parse_override(item))
    if path:
        config = read_yaml(Path(path))
    else:
        config = _cpu_defaults(user)
    config = merge(config, user)
    for section, values in config.items():
        if section not in SECTIONS:
            raise RssegError(f"{source}: unknown section {section!r} (known: {', '.join(SECTIONS)})")
        if not isinstance(values, dict):
            raise RssegError(f"{source}: section {section!r} must be a mapping")
    model = dict(config.get("model", {}))
    name = _check(source, "model.name", model.pop("name", "unet"), str, {})
    sections = {key: _section(source, key, cls, config.get(key, {})) for key, cls in SECTIONS.items()
                if key != "model"}
    result = TrainConfig(model=ModelConfig(name, model), **sections)
    if not result.data.root:
        raise RssegError(f"{source}: no dataset given (data.root in the config, or --data DIR)")
    if result.data.scale[0] > result.data.scale[1]:
        raise RssegError(f"{source}: data.scale {list(result.data.scale)} must be [low, high] with low <= high")
    return result


def _cpu_defaults(user: dict) -> dict:
    """:data:`CPU_DEFAULTS` when ``user``'s ``train.device`` means the CPU here, else nothing."""
    train, model = user.get("train"), user.get("model")
    device = str(train.get("device", "auto")) if isinstance(train, dict) else "auto"
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu":
        return {}
    chosen = model if isinstance(model, dict) else {}
    if chosen.get("name", "unet") == "unet" and "backbone" not in chosen:
        return merge(CPU_DEFAULTS, {"model": CPU_MODEL})
    return copy.deepcopy(CPU_DEFAULTS)


def _section(source: str, key: str, cls: type, values: dict) -> Any:
    """One section's dataclass from its mapping, each value checked."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise RssegError(f"{source}: unknown key {key}.{sorted(unknown)[0]} (known: {', '.join(known)})")
    hints = get_type_hints(cls)
    return cls(**{name: _check(source, f"{key}.{name}", value, hints[name], known[name].metadata)
                  for name, value in values.items()})


def _number(text: str) -> float | str:
    """``text`` as a float when it spells one (``1e-3``), else unchanged."""
    try:
        return float(text)
    except ValueError:
        return text


def _check(source: str, where: str, value: Any, hint: Any, bounds: Any) -> Any:
    """``value`` converted to ``hint`` (int, float, bool, str, optional, pair of floats) within ``bounds``."""
    args = get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    what = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(get_args(hint)):
            raise RssegError(f"{source}: {where}={value!r} must be a list of {len(get_args(hint))} numbers")
        return tuple(_check(source, where, v, float, bounds) for v in value)
    if get_origin(hint) is dict:
        return value
    if hint is float and isinstance(value, str):
        value = _number(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    ok = (isinstance(value, bool) if hint is bool else
          isinstance(value, int) and not isinstance(value, bool) if hint is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          if hint is float else isinstance(value, str))
    if not ok:
        raise RssegError(f"{source}: {where}={value!r} must be {what[hint]}")
    value = hint(value)
    choices = bounds.get("choices") or ()
    if choices and value not in choices:
        raise RssegError(f"{source}: {where}={value!r} must be one of {', '.join(choices)}")
    low, above, high = bounds.get("minimum"), bounds.get("above"), bounds.get("maximum")
    if (low is not None and value < low) or (above is not None and value <= above) or \
            (high is not None and value > high):
        rule = " and ".join(r for r in (f">= {low}" if low is not None else "", f"> {above}" if above is not None
                                        else "", f"<= {high}" if high is not None else "") if r)
        raise RssegError(f"{source}: {where}={value!r} must be {rule}")
    return value
