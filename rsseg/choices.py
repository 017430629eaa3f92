"""The names users pick from (devices, runtimes, precisions, TTA modes), free of heavy imports.

The command line builds its choices from here, so that ``rsseg --help`` starts without torch;
the modules that act on a choice import their names from here too.
"""

from __future__ import annotations

import re

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
RUNTIMES = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
TTA_MODES = ("none", "flip", "d4", "flip+scales")


def check_device_name(device: str) -> str:
    """``device`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; ``ValueError`` otherwise."""
    if not DEVICE_PATTERN.fullmatch(device):
        raise ValueError(f"{device!r} is not a device (auto, cpu, cuda or cuda:N)")
    return device
