"""INT8 ONNX models: calibration windows from scenes or patch folders, static quantisation, its self-check.

:func:`export_int8` exports a model to float32 ONNX (:func:`rsseg.models.onnx_export.export_onnx`),
calibrates its activations on windows drawn from the given rasters and quantises it with
ONNX Runtime (:data:`FORMATS`, per-channel int8 weights, uint8 activations). Windows held back from the
calibration measure the result: the argmax agreement with the float32 graph and the mean
absolute probability difference. Operators that lose accuracy in int8 are kept in float when
the measurement asks for it, in steps (:data:`KEPT_IN_FLOAT`); below :data:`MIN_AGREEMENT`
nothing is written.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from rsseg.errors import RssegError, first_line
from rsseg.io.atomic import atomic_output, check_output
from rsseg.io.raster import check_value_range, open_raster, plan_bands, read_window
from rsseg.models.checkpoint import ModelCard
from rsseg.models.onnx_export import CARD_KEY, INPUT, PRECISION_KEY, check_tile, export_onnx

MIN_AGREEMENT = 0.98  # argmax agreement with float32 on the held-back windows
# the first the quantiser handles: QLinearConv and friends ran faster on the default model than QDQ pairs around
# float operators in every back-to-back run (docs/deploy.md#int8-models), but ONNX Runtime's QOperator
# quantiser fails on some graphs that QDQ handles (biases fed by Identity nodes, which rsseg's exports no longer hold)
FORMATS = ("QOperator", "QDQ")
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")
CLASSIFIER = "final classifier"  # the last convolution and what follows it
SUMS = "sums of reductions"  # Add and Mul reading a reduction kept in float (linear attention's sums)
ENCODER = "encoder"  # the backbone: the nodes of the model's ``encoder`` module (``/model/encoder/...``)
_REDUCTIONS = ("ReduceMean", "ReduceSum", "ReduceMax", "LayerNormalization", "InstanceNormalization", "MatMul",
               "Einsum", "Div", "Sqrt", "Pow")
# operators kept in float, tried in turn until the held-back windows agree: the softmax always;
# then normalisations and attention reductions; then the final classifier too; then the sums of those
# reductions; last the encoder, whose rounding errors add up layer after layer (the default model on the
# grey SpaceNet tile: 97.1 % up to the classifier, 97.5 % with the sums, 99.45 % with the encoder too)
KEPT_IN_FLOAT: tuple[tuple[str, ...], ...] = (("Softmax",), ("Softmax", *_REDUCTIONS),
                                              ("Softmax", *_REDUCTIONS, CLASSIFIER),
                                              ("Softmax", *_REDUCTIONS, CLASSIFIER, SUMS),
                                              ("Softmax", *_REDUCTIONS, CLASSIFIER, SUMS, ENCODER))


@dataclass
class CalibrationSet:
    """Normalised windows (N×C×T×T float32) and the rasters they came from (file name -> windows)."""

    windows: np.ndarray
    sources: dict[str, int] = field(default_factory=dict)

    def record(self, held_back: int) -> dict[str, Any]:
        """What the card keeps of the calibration data: names and counts, no paths of this machine."""
        return {"windows": len(self.windows) - held_back, "held_back": held_back, "window": self.windows.shape[-1],
                "sources": [{"name": name, "windows": n} for name, n in self.sources.items()]}


def calibration_rasters(paths: Sequence[Path]) -> list[Path]:
    """The raster files of ``paths``: files as given, folders searched (patch folders: their ``images``)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            rasters = sorted(p for p in path.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES and p.is_file()
                             and "masks" not in p.relative_to(path).parts)
            if not rasters:
                raise RssegError(f"{path}: no rasters ({', '.join(RASTER_SUFFIXES)}) to calibrate with")
            found.extend(rasters)
        elif path.is_file():
            found.append(path)
        else:
            raise RssegError(f"{path}: calibration data not found")
    return found


def check_calibration(rasters: Sequence[Path], card: ModelCard) -> None:
    """Refuse a raster that cannot feed the model (bands, value range) before anything is computed."""
    for path in rasters:
        with open_raster(path) as ds:
            plan = plan_bands(ds, path, card.in_channels, list(card.input.bands or []) or None, card.input.scale)
            check_value_range(ds, path, plan.bands, plan.input_scale, scale_given=False)


def read_calibration(rasters: Sequence[Path], card: ModelCard, side: int, count: int, seed: int = 0,
                     progress: bool = True) -> CalibrationSet:
    """``count`` windows of ``side``² drawn at random from ``rasters`` (spread evenly over them),
    normalised as the engine feeds the model; windows of smaller rasters are padded (edge mirrored)."""
    rng = np.random.default_rng(seed)
    picked = [rasters[i] for i in rng.permutation(len(rasters))[:count]] if len(rasters) > count else list(rasters)
    shares = [count // len(picked) + (i < count % len(picked)) for i in range(len(picked))]
    mean = np.asarray(card.input.mean, np.float32)[:, None, None]
    std = np.asarray(card.input.std, np.float32)[:, None, None]
    windows: list[np.ndarray] = []
    sources: dict[str, int] = {}
    with tqdm(total=count, desc="calibration windows", unit="win", disable=not progress) as bar:
        for path, share in zip(picked, shares):
            with open_raster(path) as ds:
                plan = plan_bands(ds, path, card.in_channels, list(card.input.bands or []) or None, card.input.scale)
                h, w = min(side, ds.height), min(side, ds.width)
                for _ in range(share):
                    y, x = int(rng.integers(0, ds.height - h + 1)), int(rng.integers(0, ds.width - w + 1))
                    data, valid = read_window(ds, plan.bands, y, x, h, w)
                    pad = ((0, 0), (0, side - h), (0, side - w))
                    x_norm = (np.pad(data, pad, mode="symmetric").astype(np.float32) / plan.input_scale - mean) / std
                    windows.append(x_norm * np.pad(valid, pad[1:])[None])  # invalid pixels -> band mean
                    bar.update()
            sources[path.name] = sources.get(path.name, 0) + share
    return CalibrationSet(np.stack(windows).astype(np.float32), sources)


class _Reader:
    """ONNX Runtime's calibration data reader over windows, one at a time (a progress bar per pass)."""

    def __init__(self, windows: np.ndarray, progress: bool):
        self.windows, self.progress = windows, progress
        self._it: Iterator[np.ndarray] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = iter(tqdm(self.windows, desc="calibrating", unit="win", disable=not self.progress))
        window = next(self._it, None)
        return None if window is None else {INPUT: window[None]}

    def rewind(self) -> None:
        self._it = None


@dataclass
class Int8Check:
    """How the INT8 graph compares with the float32 one on held-back windows."""

    agreement: float  # share of pixels whose top class is the same
    mean_abs_dp: float  # mean |Δp| over pixels and classes
    kept_in_float: tuple[str, ...]
    format: str = FORMATS[0]

    def line(self) -> str:
        return (f"argmax agreement with FP32 {100 * self.agreement:.2f} %, mean |Δp| {self.mean_abs_dp:.4f} "
                f"on held-back windows")


def _probabilities(path: Path, windows: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    from rsseg.models.onnx import session_options

    session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {INPUT: windows[i:i + 2]})[0] for i in range(0, len(windows), 2)])


SHAPE_INPUTS = {"Resize": (1, 2, 3), "Upsample": (1,), "Reshape": (1,), "Expand": (1,), "Tile": (1,),
                "Slice": (1, 2, 3, 4), "Pad": (1,), "ConstantOfShape": (0,)}  # inputs that give sizes, not data


def shape_nodes(nodes: Sequence[Any]) -> set[str]:
    """Names of the nodes that compute sizes (``Resize`` scales, ``Reshape`` shapes, ``Pad`` widths, ...),
    back to the ``Shape`` nodes that read them off the data.

    Quantising them rounds the sizes (a padding or scale stored in uint8), and features no
    longer match their skip connections.
    """
    producer = {out: node for node in nodes for out in node.output}
    wanted = [node.input[i] for node in nodes for i in SHAPE_INPUTS.get(node.op_type, ()) if i < len(node.input)]
    found: set[str] = set()
    while wanted:
        node = producer.get(wanted.pop())
        if node is not None and node.name not in found:
            found.add(node.name)
            if node.op_type not in ("Shape", "Size"):  # what these read is data, not a size
                wanted.extend(node.input)
    return found


def shapes_before_dequantizing(path: Path) -> None:
    """Let each ``Shape`` node of the quantised graph at ``path`` read the int8 tensor that a
    ``DequantizeLinear`` gets (same shape), and drop the dequantisations left unread.

    The size computations (:func:`shape_nodes`, kept in float) read activations only for their
    shape, yet the quantiser dequantises whole activations for them: on the default model 35 of
    its 67 dequantisations fed a ``Shape`` and nothing else.
    """
    import onnx

    proto = onnx.load(str(path))
    nodes = proto.graph.node
    dequantized = {node.output[0]: node.input[0] for node in nodes if node.op_type == "DequantizeLinear"}
    for node in nodes:
        if node.op_type == "Shape" and node.input[0] in dequantized:
            node.input[0] = dequantized[node.input[0]]
    read = {name for node in nodes for name in node.input} | {out.name for out in proto.graph.output}
    for node in [n for n in nodes if n.op_type == "DequantizeLinear" and n.output[0] not in read]:
        nodes.remove(node)
    onnx.save(proto, str(path))


def _quantize(fp32: Path, out: Path, reader: _Reader, kept: tuple[str, ...], form: str) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    nodes = list(onnx.load(str(fp32), load_external_data=False).graph.node)  # in topological order
    excluded = {node.name for node in nodes if node.op_type in kept} | shape_nodes(nodes)
    if CLASSIFIER in kept:
        last_conv = max((i for i, node in enumerate(nodes) if node.op_type == "Conv"), default=len(nodes))
        excluded.update(node.name for node in nodes[last_conv:])
    if SUMS in kept:
        reduced = {out for node in nodes if node.op_type in kept for out in node.output}
        excluded.update(node.name for node in nodes if node.op_type in ("Add", "Mul") and reduced & set(node.input))
    if ENCODER in kept:
        excluded.update(node.name for node in nodes if f"/{ENCODER}/" in node.name)
    reader.rewind()
    logging.disable(logging.WARNING)  # the quantiser's advice goes to the root logger
    try:
        quantize_static(str(fp32), str(out), reader, quant_format=QuantFormat[form], per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=sorted(excluded),
                        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    finally:
        logging.disable(logging.NOTSET)
    shapes_before_dequantizing(out)


def quantize_checked(fp32: Path, out: Path, calibration: np.ndarray, held_back: np.ndarray, name: str,
                     progress: bool = True) -> Int8Check:
    """Quantise ``fp32`` into ``out`` on ``calibration`` windows, keeping more operators in float
    (:data:`KEPT_IN_FLOAT`) until ``held_back`` windows agree; the check of the last try.

    Each try uses the first of :data:`FORMATS` that the quantiser handles (the error of the last if none).
    """
    reference = _probabilities(fp32, held_back)
    reader = _Reader(calibration, progress)
    forms = list(FORMATS)
    best: Int8Check | None = None
    for kept in KEPT_IN_FLOAT:
        while True:
            try:
                _quantize(fp32, out, reader, kept, forms[0])
                probs = _probabilities(out, held_back)
                break
            except Exception as err:  # noqa: BLE001 - the quantiser and ONNX Runtime raise many types
                if len(forms) > 1:
                    forms.pop(0)
                    continue
                raise RssegError(f"{name}: ONNX Runtime cannot quantise it ({type(err).__name__}: "
                                 f"{first_line(err, 120)})") from None
        best = Int8Check(float((probs.argmax(1) == reference.argmax(1)).mean()),
                         float(np.abs(probs - reference).mean()), kept, forms[0])
        if best.agreement >= MIN_AGREEMENT:
            break
    assert best is not None
    return best


@dataclass
class Int8Report:
    """What an INT8 export wrote and how it compares with float32."""

    path: Path
    arch: str
    check: Int8Check
    calibration: dict[str, Any]
    seconds: float

    def summary_line(self) -> str:
        kept = ", ".join(self.check.kept_in_float)
        return (f"{self.arch} -> {self.path} (INT8, {self.check.format}, per-channel weights; "
                f"{self.calibration['windows']} calibration windows, kept in float: {kept}); {self.check.line()}, "
                f"in {self.seconds:.1f} s")


def export_int8(model, card: ModelCard, path: str | Path, calibration: Sequence[Path], *,  # noqa: ANN001 - nn.Module
                overwrite: bool = False, tile: int | None = None, windows: int = 64, held_back: int | None = None,
                progress: bool = True, source: str | None = None) -> Int8Report:
    """Export ``model`` with ``card`` to a statically quantised INT8 ONNX file at ``path``.

    ``calibration``: scenes or folders of rasters (patch folders: their images); ``windows``
    windows of ``tile`` are drawn from them, ``held_back`` of those (default a quarter)
    only measure the result. Refuses, writing nothing, rasters that do not fit the model and an
    agreement with float32 below :data:`MIN_AGREEMENT`. ``source``: as for :func:`export_onnx`.
    """
    import onnx

    start = time.perf_counter()
    path = check_output(path, overwrite)
    rasters = calibration_rasters(calibration)
    check_calibration(rasters, card)
    held = held_back if held_back is not None else max(1, windows // 4)
    if windows - held < 1:
        raise RssegError(f"{path}: {windows} calibration windows leave none after {held} held back")
    side = check_tile(tile or card.tile_size)
    data = read_calibration(rasters, card, side, windows, progress=progress)
    with tempfile.TemporaryDirectory(prefix="rsseg-int8-") as folder:
        fp32, int8 = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        export = export_onnx(model, card, fp32, overwrite=True, tile=side, source=source, int8=True)
        check = quantize_checked(fp32, int8, data.windows[held:], data.windows[:held], str(path), progress)
        if check.agreement < MIN_AGREEMENT:
            raise RssegError(f"{path}: INT8 model agrees with FP32 on {100 * check.agreement:.2f} % of held-back "
                             f"pixels (below {100 * MIN_AGREEMENT:.0f} %); nothing written")
        proto = onnx.load(str(int8))
        record = data.record(held)
        record.update(agreement=round(check.agreement, 5), mean_abs_dp=round(check.mean_abs_dp, 6),
                      kept_in_float=list(check.kept_in_float), format=check.format)
        meta = {p.key: p for p in proto.metadata_props}
        card_dict = json.loads(meta[CARD_KEY].value)
        card_dict["extra"] = {**card_dict.get("extra", {}), "precision": "int8", "calibration": record}
        meta[CARD_KEY].value = json.dumps(card_dict)
        entry = proto.metadata_props.add()
        entry.key, entry.value = PRECISION_KEY, "int8"
        with atomic_output(path, overwrite) as tmp:
            onnx.save(proto, str(tmp))
    return Int8Report(path, export.arch, check, record, time.perf_counter() - start)
