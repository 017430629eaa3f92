"""Every option name of the ``rsseg`` commands, and the click types that check values at the edge.

Commands build their options from these objects so that each option is spelled (and checked)
the same way everywhere: ``-o/--output`` for any output file or folder, ``--quiet``,
``--overwrite``, ``--device``, ``--threads``, ``--tta``, ``--batch-size``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from rsseg.choices import PRECISIONS, RUNTIMES, TTA_MODES, check_device_name


class IntList(click.ParamType):
    """A comma-separated list of integers, e.g. ``3,2,1``; ``minimum`` bounds every item."""

    name = "LIST"

    def __init__(self, minimum: int | None = None):
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            items = [int(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers", param, ctx)
        if self.minimum is not None and any(v < self.minimum for v in items):
            self.fail(f"{value!r}: every item must be >= {self.minimum}", param, ctx)
        return items


class FiniteFloat(click.ParamType):
    """A finite number (no nan/inf), optionally within ``[minimum, maximum]`` or above ``above``."""

    name = "FLOAT"

    def __init__(self, minimum: float | None = None, maximum: float | None = None, above: float | None = None,
                 below: float | None = None):
        self.minimum, self.maximum, self.above, self.below = minimum, maximum, above, below

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        rules = [(self.minimum, number >= (self.minimum or 0), ">="),
                 (self.maximum, number <= (self.maximum or 0), "<="),
                 (self.above, number > (self.above or 0), ">"),
                 (self.below, number < (self.below or 0), "<")]
        for bound, ok, sign in rules:
            if bound is not None and not ok:
                self.fail(f"{value} is not {sign} {bound}", param, ctx)
        return number


class DeviceName(click.ParamType):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

    name = "DEVICE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return check_device_name(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


POSITIVE_INT = click.IntRange(min=1)
NON_NEGATIVE_INT = click.IntRange(min=0)
POSITIVE_FLOAT = FiniteFloat(above=0)
NON_NEGATIVE_FLOAT = FiniteFloat(minimum=0)
FRACTION = FiniteFloat(minimum=0, below=1)  # [0, 1)
FILE = click.Path(dir_okay=False, path_type=Path)
FOLDER = click.Path(file_okay=False, path_type=Path)
EXISTING_FILE = click.Path(dir_okay=False, path_type=Path)  # existence checked by the library: one-line error


def output(help: str, required: bool = False, folder: bool = False) -> Any:  # noqa: A002 - click's word
    """``-o/--output``: the command's output file (or folder)."""
    return click.option("-o", "--output", required=required, type=FOLDER if folder else FILE, help=help)


quiet = click.option("--quiet", is_flag=True, help="No progress bar.")
overwrite = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
def threads_for(whose: str = "") -> Any:
    """``--threads``: CPU threads (of ``whose`` runtime, when given)."""
    return click.option("--threads", type=POSITIVE_INT,
                        help=f"CPU threads{', ' + whose if whose else ''} (default: all available cores).")


threads = threads_for()
runtime = click.option("--runtime", type=click.Choice(RUNTIMES), default="auto", show_default=True,
                       help="auto: ONNX Runtime on the CPU (a .pt is exported once to a cache), PyTorch on a GPU.")
batch_size = click.option("--batch-size", type=POSITIVE_INT, default=4, show_default=True,
                          help="Windows or patches per model call.")
tta = click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True,
                   help="Test-time augmentation, averaged in probability space (d4: square windows only).")
precision = click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                         help="auto: fp16 autocast on CUDA (bf16 or fp32 for a model unsafe in fp16), fp32 on the CPU "
                              "(int8 for an INT8 .onnx); int8: ONNX Runtime, quantised on --calibrate windows.")
calibrate = click.option("--calibrate", type=click.Path(path_type=Path), multiple=True,
                         help="Scene or folder of rasters (patch folders: their images) whose windows calibrate "
                              "an INT8 model (repeatable).")
bands = click.option("--bands", type=IntList(minimum=1), help="1-based scene bands feeding the model, e.g. 3,2,1.")


def device(default: str | None = "auto") -> Any:
    """``--device``: auto, cpu, cuda or cuda:N."""
    return click.option("--device", type=DeviceName(), default=default, show_default=default is not None,
                        help="auto (CUDA when present), cpu, cuda or cuda:N.")


def checkpoint(required: bool = False, help: str = "rsseg model file (default: the bundled default model).") -> Any:  # noqa: A002
    """``--checkpoint``: a model file."""
    return click.option("--checkpoint", required=required, type=EXISTING_FILE, help=help)
