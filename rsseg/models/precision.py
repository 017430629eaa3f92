"""Floating-point precision: the names users pick, how ``auto`` resolves, float32 islands, finite checks.

- :func:`resolve_precision`: the autocast dtype of ``auto``/``fp32``/``fp16``/``bf16`` on a
  device for a model, and the one-line reason kept in the run record.
- :func:`in_float32`: runs a function in float32 whatever the autocast state (or a ``.half()``
  module): the sums over all positions of the attention and context modules overflow float16.
- :func:`check_finite`: one error line instead of a silent class-0 mask from NaN probabilities.
- :func:`run_in`, :func:`relative_error`: a module's output in a half precision against float32
  (the tests and ``scripts/bench_attention.py --precision-table``).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import torch
from torch import nn

from rsseg.choices import PRECISIONS
from rsseg.errors import OptionError, RssegError

DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}  # autocast dtype (None: autocast off)
INT8_HOW = ("INT8 runs a quantised ONNX model: `rsseg export MODEL.pt --int8 --calibrate SCENE_OR_FOLDER`, "
            "or a .pt with `calibrate=SCENE_OR_FOLDER`")
RUN_MODES = ("fp32", "fp16", "bf16", "half")  # :func:`run_in`: float32, autocast float16/bfloat16, a .half() copy

Fn = TypeVar("Fn", bound=Callable[..., Any])


@dataclass(frozen=True)
class Precision:
    """A resolved precision: its name, the autocast dtype (``None``: float32) and why it was chosen."""

    name: str
    dtype: torch.dtype | None
    reason: str


def fp16_safe(model: nn.Module) -> bool:
    """Whether ``model`` is known to compute correctly under float16 autocast.

    Every registered architecture is (their position sums run in float32, see :func:`in_float32`);
    a model class that is not sets ``fp16_safe = False``.
    """
    return bool(getattr(model, "fp16_safe", True))


def resolve_precision(requested: str, device: torch.device, model: nn.Module) -> Precision:
    """The precision a run of ``model`` on ``device`` uses when ``requested`` (one of :data:`PRECISIONS`).

    ``auto``: on CUDA float16 for an fp16-safe model, else bfloat16 where the GPU supports it,
    else float32; float32 on the CPU and for models run by ONNX Runtime, int8 for an INT8 ONNX
    file. An explicit ``fp16``/``bf16`` is used as asked (CPU autocast included) on a PyTorch
    model; ONNX Runtime runs the precision of its graph only.
    """
    from rsseg.models.onnx import OnnxModel

    if requested not in PRECISIONS:
        raise OptionError("precision", requested, f"choose from {', '.join(PRECISIONS)}")
    onnx = isinstance(model, OnnxModel)
    graph = model.precision if isinstance(model, OnnxModel) else None
    if requested != "auto":
        if graph == "int8" and requested != "int8":
            raise OptionError("precision", requested, "this ONNX model is quantised to INT8; use int8 or auto")
        if requested == "int8" and graph != "int8":
            raise OptionError("precision", requested, INT8_HOW)
        if requested not in ("fp32", "int8") and onnx:
            raise OptionError("precision", requested, "ONNX Runtime runs the exported float32 graph; "
                                                      "use fp32, or a .pt model with --runtime torch")
        return Precision(requested, DTYPES.get(requested), "as requested")
    if graph == "int8":
        return Precision("int8", None, "auto: the ONNX model is quantised to INT8")
    if onnx or device.type != "cuda":
        return Precision("fp32", None, f"auto: float32 on {'ONNX Runtime' if onnx else device.type.upper()}")
    if fp16_safe(model):
        return Precision("fp16", torch.float16, "auto: float16 autocast on CUDA, the model is fp16-safe")
    if torch.cuda.is_bf16_supported():
        return Precision("bf16", torch.bfloat16, "auto: bfloat16 autocast on CUDA, the model is not fp16-safe")
    return Precision("fp32", None, "auto: float32 on CUDA, the model is not fp16-safe and the GPU lacks bfloat16")


def in_float32(fn: Fn) -> Fn:
    """Decorate ``fn`` to run in float32 whatever the autocast state.

    Floating tensor arguments are cast to float32 and autocast is off on their device inside;
    the tensor result (or tuple of tensors) is cast back to the first tensor argument's dtype,
    the dtype autocast gives downstream. In float32 nothing changes: the casts are no-ops.
    """

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        first = next(a for a in args if isinstance(a, torch.Tensor))
        args = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
        with torch.autocast(first.device.type, enabled=False):
            out = fn(*args)
        if isinstance(out, tuple):
            return tuple(o.to(first.dtype) for o in out)
        return out.to(first.dtype)

    return run  # type: ignore[return-value]


def check_finite(tensor: torch.Tensor, what: str, items: Sequence[str] = ()) -> None:
    """Raise :class:`RssegError` when ``tensor`` holds NaN or inf.

    ``what`` names the source (the model); ``items`` name the entries of the first dimension
    (the windows of a batch), and the message lists those that are not finite.
    """
    if torch.isfinite(tensor.sum()):  # one pass, no mask: NaN and inf reach the sum (a finite overflow is rechecked)
        return
    finite = torch.isfinite(tensor.reshape(len(items) or 1, -1)).all(1)
    if bool(finite.all()):
        return
    bad = [name for name, ok in zip(items, finite.tolist()) if not ok]
    where = f" in {', '.join(bad)}" if bad else ""
    raise RssegError(f"{what}: non-finite values (NaN or inf){where}; try --precision fp32")


def run_in(module: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
    """``module(x)`` without autograd in ``mode`` (one of :data:`RUN_MODES`), as float32.

    ``fp16``/``bf16``: autocast on ``x``'s device; ``half``: a float16 copy of the module on
    float16 input (the module itself is left as it is).
    """
    with torch.inference_mode():
        if mode == "half":
            return copy.deepcopy(module).half()(x.half()).float()
        dtype = DTYPES[mode]
        with torch.autocast(x.device.type, dtype, enabled=dtype is not None):
            return module(x).float()


def relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    """``‖out − reference‖ / ‖reference‖`` (L2, in float64); ``inf`` when ``out`` is not finite."""
    if not bool(torch.isfinite(out).all()):
        return math.inf
    ref = reference.double()
    return float((out.double() - ref).norm() / ref.norm())
