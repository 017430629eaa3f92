"""Export rsseg models to ONNX with their model card, checked against PyTorch.

The exported graph takes the normalised input ``(raw / input_scale - mean) / std`` (B×C×H×W
float32) and returns softmax probabilities (B×K×H×W), the form the QGIS Deepness plugin
expects. Height and width are dynamic where the architecture allows; otherwise the graph is
fixed to the card's tile size, which is recorded in the metadata.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rsseg.errors import OptionError, RssegError, first_line
from rsseg.io.atomic import atomic_output, check_output
from rsseg.models.base import WINDOW_MULTIPLE, window_multiple
from rsseg.models.checkpoint import FORMAT_VERSION, ModelCard
from rsseg.models.export_rewrites import for_export

OPSET = 17
REVISION = 3  # of the exported graphs (2: fixed "same" padding, basic optimisations; 3: INT8 phase convolutions)
TOLERANCE = 1e-4  # max abs difference of the logits, ONNX Runtime vs PyTorch, per unit of max(1, |logit|)
INPUT, OUTPUT = "image", "probabilities"
CARD_KEY, CARD_FORMAT_KEY = "rsseg_card", "rsseg_card_format"
PRECISION_KEY = "rsseg_precision"  # "int8" in statically quantised files (rsseg.models.quantize); absent: float32
SOURCE_KEY = "rsseg_source_sha256"  # in cached exports: the SHA-256 of the model file they were made from
MULTIPLE_KEY = "rsseg_window_multiple"  # the exported model's window multiple (see rsseg.models.base.window_multiple)
DEFAULT_OVERLAP = 0.5
MAX_TILE = 4096  # the largest window side an export is made and checked at (memory grows with its square)


@dataclass
class ExportReport:
    """What an export wrote and how closely ONNX Runtime matched PyTorch."""

    path: Path
    arch: str
    dynamic: bool
    tile: int
    logit_error: float
    seconds: float

    def summary_line(self) -> str:
        size = "dynamic batch, height and width" if self.dynamic else f"dynamic batch, fixed {self.tile}×{self.tile}"
        return (f"{self.arch} -> {self.path} (opset {OPSET}, {size}); ONNX Runtime vs PyTorch: max |Δlogit| "
                f"{self.logit_error:.1e} × max(1, |logit|), in {self.seconds:.1f} s")


class _Probabilities(nn.Module):
    """The model followed by a softmax over classes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), 1)


def deepness_metadata(card: ModelCard, tile: int, overlap: float = DEFAULT_OVERLAP) -> dict[str, str]:
    """The keys the QGIS Deepness plugin reads (JSON values).

    Deepness divides 8-bit pixels by 255 before standardising, so the card's input scale is
    folded into the mean and std: ``(raw/255 - m')/s'`` equals ``(raw/scale - m)/s``.
    """
    spec = card.input
    factor = spec.scale / 255.0
    meta = {"model_type": "Segmentor",
            "class_names": {str(i): n for i, n in enumerate(card.classes.names)},
            "tile_size": tile, "tiles_size": tile,  # the plugin's code reads the first, its docs name the second
            "tiles_overlap": int(round(overlap * 100)),
            "standardization_mean": [m * factor for m in spec.mean],
            "standardization_std": [s * factor for s in spec.std]}
    if spec.gsd:
        meta["resolution"] = spec.gsd * 100  # centimetres per pixel
    return {k: json.dumps(v) for k, v in meta.items()}


def card_metadata(card: ModelCard, dynamic: bool, tile: int, multiple: int = WINDOW_MULTIPLE) -> dict[str, str]:
    """All metadata_props of an exported file: the whole card, the graph's form, Deepness keys."""
    return {CARD_KEY: json.dumps(card.to_dict()), CARD_FORMAT_KEY: json.dumps(FORMAT_VERSION), "rsseg_output": OUTPUT,
            "rsseg_dynamic_size": json.dumps(dynamic), "rsseg_tile": json.dumps(tile),
            MULTIPLE_KEY: json.dumps(multiple),
            **deepness_metadata(card, tile)}


def check_tile(tile: int) -> int:
    """``tile`` if an export can be made and checked at that side; :class:`OptionError` otherwise."""
    if not 1 <= tile <= MAX_TILE:
        raise OptionError("tile", tile, f"must be within 1..{MAX_TILE} pixels")
    return tile


def _unsupported_op(err: Exception) -> str | None:
    """The operator named by an exporter error, if it names one."""
    found = re.search(r"operator '?([\w:.]+)'?", str(err))
    return found.group(1) if found else None


def _to_onnx_bytes(model: nn.Module, example: torch.Tensor, dynamic: bool) -> bytes:
    # one name for H and W: Deepness refuses outputs whose H and W differ (ONNX Runtime does not enforce it)
    axes = {0: "batch", 2: "tile", 3: "tile"} if dynamic else {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Probabilities(model).eval(), example, buffer, opset_version=OPSET, dynamo=False,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: axes, OUTPUT: axes})
    return buffer.getvalue()


def _folded(proto):  # noqa: ANN001, ANN202 - onnx.ModelProto
    """The graph after ONNX Runtime's basic optimisations, still plain ONNX: constants folded (the shape
    arithmetic of fixed paddings), ``Pad`` and batch norms folded into their convolutions.

    Every consumer gains (QGIS Deepness, the INT8 quantiser, which then sees no ``Pad`` to quantise).
    The exporter gives ``Pad`` an empty ``constant_value`` input, which ONNX Runtime takes for a
    value it cannot know, leaving the ``Pad`` unfolded: trailing empty inputs are dropped first.
    """
    import onnx
    import onnxruntime as ort

    for node in proto.graph.node:
        while node.input and not node.input[-1]:
            node.input.pop()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "basic.onnx")
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        folded = onnx.load(options.optimized_model_filepath)
    if any(node.domain not in ("", "ai.onnx") for node in folded.graph.node):
        return proto  # an operator only ONNX Runtime knows: keep the exporter's graph
    used = [imp for imp in folded.opset_import if imp.domain in ("", "ai.onnx")]
    del folded.opset_import[:]
    folded.opset_import.extend(used)
    return folded


def _with_logits_output(proto):  # noqa: ANN001, ANN202 - onnx.ModelProto
    """A copy of the graph that also outputs the softmax's input (the logits), for the self-check."""
    import onnx

    check = onnx.ModelProto()
    check.CopyFrom(proto)
    softmax = [n for n in check.graph.node if n.output[0] == OUTPUT]
    if not softmax or softmax[0].op_type != "Softmax":
        raise RssegError("exported graph does not end in a Softmax (internal error)")
    check.graph.output.append(onnx.ValueInfoProto(name=softmax[0].input[0]))
    return check


def _logit_error(model: nn.Module, proto, shapes: list[tuple[int, ...]]) -> float:  # noqa: ANN001
    """Max abs difference of ONNX Runtime's and PyTorch's logits on random inputs of ``shapes``,
    relative to ``max(1, max |logit|)`` (float32 rounding grows with the logits' size)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a graph failing at another size is reported by the caller, not logged
    session = ort.InferenceSession(_with_logits_output(proto).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for shape in shapes:
        x = rng.standard_normal(shape, dtype=np.float32)
        got = session.run(None, {INPUT: x})[1]
        with torch.inference_mode():
            want = model(torch.from_numpy(x)).float().numpy()
        if got.shape != want.shape:
            raise ValueError(f"ONNX Runtime returned {got.shape}, PyTorch {want.shape}")
        worst = max(worst, float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
    return worst


def export_onnx(model: nn.Module, card: ModelCard, path: str | Path, *, overwrite: bool = False,
                tile: int | None = None, source: str | None = None, int8: bool = False) -> ExportReport:
    """Export ``model`` (in eval mode, on the CPU) with ``card`` to ``path`` and check it.

    Dynamic height and width are tried first and kept if ONNX Runtime reproduces PyTorch on
    a non-square input and at ``tile``; otherwise the graph is fixed to ``tile`` (default: the
    card's tile size). Fails, writing nothing, if the logits differ by more than
    ``1e-4 · max(1, max |logit|)`` or an operator cannot be exported. ``source``: the model
    file's SHA-256, recorded for the ONNX cache (:mod:`rsseg.models.runtime`). ``int8``: the float
    graph an INT8 export quantises (:func:`rsseg.models.export_rewrites.for_export`).
    """
    import onnx

    start = time.perf_counter()
    path = check_output(path, overwrite)
    model = model.cpu().float().eval()
    tile = check_tile(tile or card.tile_size)
    side = min(tile, 256)
    c = card.in_channels
    attempts = [(True, torch.randn(1, c, side, side), [(2, c, side, side + 64), (1, c, tile, tile)]),
                (False, torch.randn(1, c, tile, tile), [(2, c, tile, tile)])]
    failure = ""
    multiple = window_multiple(model)
    sizes = {side, side + 64, tile}  # the static pads hold for multiples of the window multiple only
    static = for_export(model, c, multiple, int8) if all(n % multiple == 0 for n in sizes) else model
    for dynamic, example, shapes in attempts:
        try:
            proto = _folded(onnx.load_from_string(_to_onnx_bytes(static, example, dynamic)))
        except Exception as err:  # noqa: BLE001 - the exporter raises many types
            op = _unsupported_op(err)
            reason = f"operator {op} is not supported by the ONNX exporter at opset {OPSET}" if op else \
                f"the ONNX exporter failed ({type(err).__name__}: {first_line(err, 120)})"
            raise RssegError(f"{path}: cannot export {card.arch['name']}: {reason}") from None
        try:
            diff = _logit_error(model, proto, shapes)
        except Exception as err:  # noqa: BLE001 - ONNX Runtime rejects the graph at another size
            failure = f"{type(err).__name__}: {first_line(err, 160)}"
            continue
        if diff <= TOLERANCE:
            break
        failure = f"ONNX Runtime and PyTorch logits differ by {diff:.1e} × max(1, |logit|) (limit {TOLERANCE:.0e})"
    else:
        raise RssegError(f"{path}: export of {card.arch['name']} failed its check: {failure}")
    meta = card_metadata(card, dynamic, tile, window_multiple(model))
    for key, value in {**meta, **({SOURCE_KEY: source} if source else {})}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "rsseg"
    with atomic_output(path, overwrite) as tmp:
        onnx.save(proto, str(tmp))
    return ExportReport(path, card.arch["name"], dynamic, tile, diff, time.perf_counter() - start)
