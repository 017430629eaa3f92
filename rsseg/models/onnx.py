"""Run exported rsseg models with ONNX Runtime behind the torch model's call interface."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rsseg.errors import RssegError, first_line
from rsseg.io.atomic import atomic_output
from rsseg.models.base import WINDOW_MULTIPLE
from rsseg.models.checkpoint import ModelCard, card_from_dict
from rsseg.models.onnx_export import CARD_FORMAT_KEY, CARD_KEY, MULTIPLE_KEY, OUTPUT, PRECISION_KEY

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
_TINY = float(np.finfo(np.float32).tiny)


def session_options(threads: int | None = None, optimization: str = "all",
                    save_optimized: str | os.PathLike | None = None):  # noqa: ANN201 - onnxruntime.SessionOptions
    """ONNX Runtime's options for the engine's calls.

    ``threads`` intra-op threads (default: the cores this process may use, as PyTorch's runs),
    one inter-op thread, operators run in sequence. Idle workers sleep rather than spin: between
    calls the reader thread decodes the next windows and PyTorch blends the last ones on the same
    cores, and a spinning worker takes their time (a bare session, with nothing else to run, is
    not slowed by spinning; the engine's calls are). ``save_optimized``: also write the optimised
    graph there (see :func:`rsseg.models.runtime.optimized_graph`).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
    options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its optimiser's notes (unused initialisers, CPU-bound saved graphs)
    if save_optimized is not None:
        options.optimized_model_filepath = str(save_optimized)
    return options


def without_softmax(path: str | os.PathLike) -> bytes | None:
    """The graph at ``path`` without its final softmax over classes (it outputs the logits), or None
    if it does not end in one.

    The engine takes the softmax itself (in PyTorch, as for every model): ONNX Runtime's softmax
    over the class axis of a B×K×H×W tensor transposes it twice, and took 39 % of an INT8
    call of the default model.
    """
    import onnx

    proto = onnx.load(str(path))
    graph = proto.graph
    last = next((node for node in graph.node if graph.output[0].name in node.output), None)
    axis = next((a.i for a in last.attribute if a.name == "axis"), -1) if last is not None else None
    if last is None or last.op_type != "Softmax" or axis != 1 or len(graph.output) != 1:
        return None
    graph.node.remove(last)
    graph.output[0].name = last.input[0]
    for info in [v for v in graph.value_info if v.name == last.input[0]]:
        graph.value_info.remove(info)
    return proto.SerializeToString()


class OnnxModel(nn.Module):
    """An exported model run by ONNX Runtime; called like the torch model (B×C×H×W -> B×K×H×W logits).

    A graph ending in a softmax over classes (rsseg's exports) runs without it (:func:`without_softmax`);
    of another graph, which outputs probabilities, it returns their logarithms (logits of the same softmax).
    A graph fixed to one tile size gets smaller inputs padded (edge pixels repeated) and cropped back.
    ``optimized``: a file holding ONNX Runtime's optimised graph of ``path`` on the CPU, run as
    it is (no optimisation at load); written from ``path`` first if it does not exist.
    """

    def __init__(self, path: str | os.PathLike, device: torch.device | str = "cpu", threads: int | None = None,
                 optimization: str = "all", optimized: Path | None = None):
        super().__init__()
        import onnxruntime as ort

        cuda = torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        graph: str | bytes = str(path)
        shown = path
        try:
            if optimized is None or cuda or not optimized.is_file():
                graph = without_softmax(path) or graph
            if optimized is not None and not cuda:
                if not optimized.is_file():
                    with atomic_output(optimized, overwrite=True) as tmp:
                        ort.InferenceSession(graph, session_options(threads, optimization, tmp), providers=providers)
                graph, shown, optimization = str(optimized), optimized, "disable"
            self.session = ort.InferenceSession(graph, session_options(threads, optimization), providers=providers)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types (and onnx's decode errors)
            raise RssegError(f"{shown}: ONNX Runtime cannot load it ({first_line(err, 120)})") from None
        # the file's hash stands in for weights wherever a model is identified by its state dict (resume journal)
        digest = hashlib.sha256(Path(path).read_bytes()).digest()
        self.register_buffer("file_sha256", torch.tensor(list(digest), dtype=torch.uint8))
        self.input_name = self.session.get_inputs()[0].name
        self.logits = self.session.get_outputs()[0].name != OUTPUT  # the softmax was cut off
        h, w = self.session.get_inputs()[0].shape[-2:]
        self.fixed = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.providers = self.session.get_providers()
        meta = self.session.get_modelmeta().custom_metadata_map  # the card's: exported by rsseg.models.onnx_export
        self.window_multiple = int(meta.get(MULTIPLE_KEY, WINDOW_MULTIPLE))
        self.precision = meta.get(PRECISION_KEY, "fp32")  # int8: a statically quantised graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.fixed and (h, w) != self.fixed:
            if h > self.fixed[0] or w > self.fixed[1]:
                raise RssegError(f"this ONNX model takes {self.fixed[0]}×{self.fixed[1]} windows, got {h}×{w} "
                                 f"(use `tile={self.fixed[0]}`)")
            x = F.pad(x, (0, self.fixed[1] - w, 0, self.fixed[0] - h), mode="replicate")
        feed = {self.input_name: np.ascontiguousarray(x.detach().float().cpu().numpy())}  # no copy: float32 already
        out = self.session.run(None, feed)[0][..., :h, :w]
        if not self.logits:
            np.log(np.maximum(out, _TINY, out=out), out=out)  # in place: no new batch-sized arrays
        return torch.from_numpy(out).to(x.device)


def read_onnx_card(path: str | os.PathLike) -> ModelCard:
    """The model card stored in an exported file's metadata."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise RssegError(f"{path}: model file not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf decode errors
        raise RssegError(f"{path}: not an ONNX file ({type(err).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if CARD_KEY not in meta:
        raise RssegError(f"{path}: ONNX file without an rsseg model card (export it with `rsseg export`)")
    try:
        return card_from_dict(json.loads(meta[CARD_KEY]), int(meta.get(CARD_FORMAT_KEY, 1)))
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # SchemaError is a ValueError
        raise RssegError(f"{path}: invalid rsseg model card in the metadata ({err})") from None


def load_onnx(path: str | os.PathLike, device: torch.device | str = "cpu", threads: int | None = None,
              optimization: str = "all", optimized: Path | None = None) -> tuple[OnnxModel, ModelCard]:
    """An :class:`OnnxModel` and its card from an exported file (see :class:`OnnxModel` for ``optimized``)."""
    card = read_onnx_card(path)
    model = OnnxModel(path, device, threads, optimization, optimized)
    graph = {"input bands": (model.session.get_inputs()[0].shape, card.in_channels),
             "classes": (model.session.get_outputs()[0].shape, card.num_classes)}
    for what, (shape, stated) in graph.items():
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != stated):
            raise RssegError(f"{path}: its rsseg model card says {stated} {what}, its graph has {shape[1:2]}")
    return model, card
