"""rsseg: semantic segmentation of very large remote-sensing scenes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {"predict_scene": "rsseg.tiling", "predict_scenes": "rsseg.tiling.catalogue",
         "PredictOptions": "rsseg.tiling"}  # imported on first use, so ``import rsseg`` stays light


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rsseg' has no attribute {name!r}")


__all__ = ["PredictOptions", "__version__", "predict_scene", "predict_scenes"]
