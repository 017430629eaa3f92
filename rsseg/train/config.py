"""Training configuration: defaults, YAML files with a ``base`` to inherit, ``key=value`` overrides."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

import yaml

from rsseg.errors import RssegError

DEFAULTS: dict[str, dict[str, Any]] = {
    # samples_per_epoch: random crops per epoch (None: enough to cover the training patches once)
    # photometric: strength of colour/brightness/haze/blur/noise/JPEG randomisation (0: off, 1: full)
    "data": {"root": None, "tile": 512, "scale": [0.5, 1.5], "flips": True, "rot90": True, "workers": 2,
             "val_split": "val", "samples_per_epoch": None, "photometric": 0.0},
    # every key besides ``name`` is a constructor argument of the model (backbone, ...)
    "model": {"name": "unet"},
    # encoder_lr: a pretrained backbone's learning rate (a random backbone trains at lr)
    "optim": {"lr": 6e-4, "encoder_lr": 6e-5, "weight_decay": 0.01, "schedule": "cosine", "warmup_epochs": 1.0,
              "min_lr_ratio": 0.0, "poly_power": 0.9, "clip_grad": 1.0},
    "loss": {"label_smoothing": 0.05, "dice_weight": 1.0},
    # epochs None: 50, or with max_minutes as many as the budget allows (the LR schedule ends with it)
    "train": {"epochs": None, "max_minutes": None, "batch_size": 8, "val_batch_size": None, "seed": 0, "amp": True,
              "device": "auto", "threads": None, "select_metric": "mIoU", "out": None},
}
FREE_SECTIONS = ("model",)
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
        raise RssegError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
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


def _on_cpu(device: str) -> bool:
    """Whether ``train.device`` means the CPU here."""
    if str(device) != "auto":
        return str(device) == "cpu"
    import torch

    return not torch.cuda.is_available()


def build_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = (),
                 updates: dict | None = None) -> dict:
    """Defaults ← config file ← ``updates`` (from CLI options) ← ``--set`` overrides, validated.

    Without a config file, training on the CPU starts from :data:`CPU_DEFAULTS` instead.
    """
    config = copy.deepcopy(DEFAULTS)
    source = str(path) if path else "--set"
    user = merge(updates or {}, {})
    for item in overrides:
        user = merge(user, parse_override(item))
    if path:
        config = merge(config, read_yaml(Path(path)))
    elif _on_cpu(user.get("train", {}).get("device", "auto")):
        config = merge(config, CPU_DEFAULTS)
        chosen = user.get("model", {})
        if chosen.get("name", "unet") == "unet" and "backbone" not in chosen:
            config = merge(config, {"model": CPU_MODEL})
    config = merge(config, user)
    for section, values in config.items():
        if section not in DEFAULTS:
            raise RssegError(f"{source}: unknown section {section!r} (known: {', '.join(DEFAULTS)})")
        if not isinstance(values, dict):
            raise RssegError(f"{source}: section {section!r} must be a mapping")
        unknown = set(values) - set(DEFAULTS[section])
        if unknown and section not in FREE_SECTIONS:
            raise RssegError(f"{source}: unknown key {section}.{sorted(unknown)[0]} "
                             f"(known: {', '.join(DEFAULTS[section])})")
    if not config["data"]["root"]:
        raise RssegError(f"{source}: no dataset given (data.root in the config, or --data DIR)")
    if config["optim"]["schedule"] not in ("cosine", "poly"):
        raise RssegError(f"{source}: optim.schedule must be cosine or poly")
    return config
