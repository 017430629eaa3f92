"""Pick the runtime for a model file: PyTorch, or ONNX Runtime (an exported file, or a cached export)."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from rsseg.choices import RUNTIMES
from rsseg.errors import OptionError, RssegError
from rsseg.models.checkpoint import FORMAT_VERSION, ModelCard, load_checkpoint


def onnx_cache_dir() -> Path:
    """Where exports of ``.pt`` files are cached: ``$XDG_CACHE_HOME/rsseg/onnx`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rsseg" / "onnx"


def cached_export(checkpoint: str | os.PathLike, model: nn.Module | None = None, card: ModelCard | None = None
                  ) -> Path:
    """The ONNX export of ``checkpoint`` (already loaded as ``model``, ``card``), exported and checked on first use.

    Keyed by a hash of the model file, the exporter's opset and the card format, so a changed file
    (or a newer rsseg) exports anew.
    """
    from rsseg.models.onnx_export import OPSET, export_onnx

    digest = hashlib.sha256(Path(checkpoint).read_bytes())
    digest.update(f"opset{OPSET} card{FORMAT_VERSION}".encode())
    target = onnx_cache_dir() / f"{digest.hexdigest()[:32]}.onnx"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        if model is None or card is None:
            model, card = load_checkpoint(checkpoint, "cpu")
        export_onnx(model, card, target, overwrite=True)
    return target


def load_model(path: str | os.PathLike, device: torch.device, runtime: str = "auto", threads: int | None = None,
               precision: str = "auto") -> tuple[nn.Module, ModelCard, str]:
    """The model, its card and the runtime used (``torch`` or ``onnx``) for a ``.pt`` or ``.onnx`` file.

    ``auto`` runs ``.onnx`` files with ONNX Runtime, and ``.pt`` files with ONNX Runtime on the
    CPU (through a cached, checked export; PyTorch if the model does not export) and with
    PyTorch on a GPU or in a half ``precision`` (``fp16``, ``bf16``: autocast, which the float32
    ONNX graph lacks).
    """
    from rsseg.models.onnx import load_onnx

    if runtime not in RUNTIMES:
        raise OptionError("runtime", runtime, f"choose from {', '.join(RUNTIMES)}")
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if runtime == "torch":
            raise RssegError(f"{path}: an ONNX file runs with `runtime=onnx` or `runtime=auto`, not torch")
        return (*load_onnx(path, device, threads), "onnx")
    model, card = load_checkpoint(path, device)
    if runtime == "torch" or (runtime == "auto" and (device.type != "cpu" or precision in ("fp16", "bf16"))):
        return model, card, "torch"
    try:
        exported = cached_export(path, model, card)
    except RssegError as err:
        if runtime == "onnx":
            raise
        warnings.warn(f"running with PyTorch: {err}", stacklevel=2)
        return model.to(device).eval(), card, "torch"
    return (*load_onnx(exported, device, threads), "onnx")
