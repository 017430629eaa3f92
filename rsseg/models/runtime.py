"""Pick the runtime for a model file: PyTorch, or ONNX Runtime (an exported file, or a cached export)."""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from rsseg.choices import RUNTIMES
from rsseg.errors import OptionError, RssegError, first_line
from rsseg.models.checkpoint import FORMAT_VERSION, ModelCard, load_checkpoint, read_card
from rsseg.models.onnx_export import SOURCE_KEY


def onnx_cache_dir() -> Path:
    """Where exports of ``.pt`` files are cached: ``$XDG_CACHE_HOME/rsseg/onnx`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rsseg" / "onnx"


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _cache_name(source: str, *more: str) -> str:
    """A hash of the model file's ``source`` digest, the exporter's opset and revision, the card format and ``more``."""
    from rsseg.models.onnx_export import OPSET, REVISION

    key = f"opset{OPSET} export{REVISION} card{FORMAT_VERSION}"
    return hashlib.sha256(" ".join([source, key, *more]).encode()).hexdigest()[:32]


def made_from(graph: Path, source: str) -> bool:
    """Whether ``graph`` is a whole ONNX file exported from the model file whose SHA-256 is ``source``."""
    import onnx

    try:
        proto = onnx.load(str(graph), load_external_data=False)
    except Exception:  # noqa: BLE001 - protobuf decode errors: a truncated or foreign file
        return False
    return any(p.key == SOURCE_KEY and p.value == source for p in proto.metadata_props)


def _cached(target: Path, source: str, export: Callable[[Path], object]) -> Path:
    """``target`` in the cache, made by ``export(target)`` unless it is there and made from ``source``.

    A cache entry is trusted only after :func:`made_from`: one truncated, or replaced by
    another model's export, is made again with a warning.
    """
    if target.is_file():
        if made_from(target, source):
            return target
        warnings.warn(f"{target}: cached export not made from this model file; exporting again", stacklevel=3)
    target.parent.mkdir(parents=True, exist_ok=True)
    export(target)
    return target


def cached_export(checkpoint: str | os.PathLike, model: nn.Module | None = None, card: ModelCard | None = None
                  ) -> Path:
    """The ONNX export of ``checkpoint`` (already loaded as ``model``, ``card``), exported and checked on first use.

    Keyed by a hash of the model file, the exporter's opset and the card format, so a changed file
    (or a newer rsseg) exports anew; the export records the model file's SHA-256 (:func:`made_from`).
    """
    from rsseg.models.onnx_export import export_onnx

    source = file_sha256(checkpoint)

    def export(target: Path) -> None:
        loaded = (model, card) if model is not None and card is not None else load_checkpoint(checkpoint, "cpu")
        export_onnx(*loaded, target, overwrite=True, source=source)

    return _cached(_export_path(source), source, export)


def _export_path(source: str) -> Path:
    """Where the float32 export of the model file whose SHA-256 is ``source`` is cached."""
    return onnx_cache_dir() / f"{_cache_name(source)}.onnx"


def fresh_export(checkpoint: str | os.PathLike) -> Path | None:
    """The cached float32 export of ``checkpoint`` if one was made from this very file, else None.

    Loading the checkpoint is then not needed at all (nor PyTorch's model code, nor timm). A file
    or cache that cannot be read gives None too: loading the checkpoint then says what is wrong.
    """
    try:
        source = file_sha256(checkpoint)
        target = _export_path(source)
        return target if target.is_file() and made_from(target, source) else None
    except OSError:
        return None


def cached_int8_export(checkpoint: str | os.PathLike, calibration: Sequence[Path], model: nn.Module | None = None,
                       card: ModelCard | None = None, progress: bool = True) -> Path:
    """The INT8 export of ``checkpoint`` calibrated on ``calibration`` (scenes or folders), made and checked
    on first use (:func:`rsseg.models.quantize.export_int8`).

    Keyed like :func:`cached_export`, by the quantised formats, the float fallbacks and the calibration
    rasters (path, size, modification time).
    """
    from rsseg.models.quantize import FORMATS, KEPT_IN_FLOAT, calibration_rasters, export_int8

    rasters = calibration_rasters(calibration)
    data = [f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in rasters]
    source = file_sha256(checkpoint)

    def export(target: Path) -> None:
        loaded = (model, card) if model is not None and card is not None else load_checkpoint(checkpoint, "cpu")
        export_int8(*loaded, target, calibration, overwrite=True, progress=progress, source=source)

    name = _cache_name(source, "int8", *FORMATS, repr(KEPT_IN_FLOAT), *data)
    return _cached(onnx_cache_dir() / f"{name}.int8.onnx", source, export)


def _cpu_signature() -> str:
    """The CPU's instruction sets (``flags`` of ``/proc/cpuinfo``; the machine type elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    flags = next((line for line in info.splitlines() if line.startswith("flags")), platform.processor())
    return f"{platform.machine()} {flags}"


def optimized_graph(export: Path) -> Path:
    """Where ONNX Runtime's optimised graph of a cached ``export`` is kept, beside it.

    The fully optimised graph holds kernels and layouts chosen for this CPU's instruction sets
    by this ONNX Runtime, so the name carries both; a second run loads it without optimising again.
    It is the graph the engine runs, without the final softmax (:func:`rsseg.models.onnx.without_softmax`).
    """
    import onnxruntime as ort

    cpu = hashlib.sha256(_cpu_signature().encode()).hexdigest()[:12]
    return export.with_name(f"{export.stem}.logits.ort{ort.__version__}-{cpu}.onnx")


def load_model(path: str | os.PathLike, device: torch.device, runtime: str = "auto", threads: int | None = None,
               precision: str = "auto", calibration: Sequence[Path] = (), progress: bool = True
               ) -> tuple[nn.Module, ModelCard, str]:
    """The model, its card and the runtime used (``torch`` or ``onnx``) for a ``.pt`` or ``.onnx`` file.

    ``auto`` runs ``.onnx`` files with ONNX Runtime, and ``.pt`` files with ONNX Runtime on the
    CPU (through a cached, checked export; PyTorch if the model does not export) and with
    PyTorch on a GPU or in a half ``precision`` (``fp16``, ``bf16``: autocast, which the float32
    ONNX graph lacks). ``int8`` runs an INT8 ``.onnx`` file, or a ``.pt`` file's INT8 export
    calibrated on ``calibration`` (scenes or folders; cached like the float32 export).
    """
    from rsseg.models.onnx import load_onnx

    if runtime not in RUNTIMES:
        raise OptionError("runtime", runtime, f"choose from {', '.join(RUNTIMES)}")
    path = Path(path)
    if precision == "int8" and runtime == "torch":
        raise OptionError("precision", precision, "INT8 runs on ONNX Runtime: use `runtime=auto` or onnx")
    if path.suffix.lower() == ".onnx":
        if runtime == "torch":
            raise RssegError(f"{path}: an ONNX file runs with `runtime=onnx` or `runtime=auto`, not torch")
        return (*load_onnx(path, device, threads), "onnx")
    if precision == "int8":
        if not calibration:
            raise RssegError(f"{path}: `precision=int8` quantises the model on windows of your scenes: give "
                             f"`calibrate=SCENE_OR_FOLDER`, or a .onnx made by `rsseg export --int8`")
        try:
            exported = cached_int8_export(path, calibration, progress=progress)
            return (*load_onnx(exported, device, threads, optimized=_optimized(exported, path)), "onnx")
        except OSError as err:
            raise _cache_error(err) from None
    use_torch = runtime == "torch" or (runtime == "auto" and (device.type != "cpu" or precision in ("fp16", "bf16")))
    fresh = None if use_torch else fresh_export(path)
    if fresh is not None:
        read_card(path)  # the file's own checks and warnings (unknown card fields), with no model built
        return (*load_onnx(fresh, device, threads, optimized=_optimized(fresh, path)), "onnx")
    model, card = load_checkpoint(path, device)
    if use_torch:
        return model, card, "torch"
    try:
        exported = cached_export(path, model, card)
        return (*load_onnx(exported, device, threads, optimized=_optimized(exported, path)), "onnx")
    except (RssegError, OSError) as err:
        failure = _cache_error(err) if isinstance(err, OSError) else err
        if runtime == "onnx":
            raise failure from None
        warnings.warn(f"running with PyTorch: {failure}", stacklevel=2)
        return model.to(device).eval(), card, "torch"


def _optimized(export: Path, checkpoint: Path) -> Path:
    """The optimised graph of ``export`` (:func:`optimized_graph`), removed first unless made from ``checkpoint``."""
    optimized = optimized_graph(export)
    if optimized.is_file() and not made_from(optimized, file_sha256(checkpoint)):
        optimized.unlink()
    return optimized


def _cache_error(err: OSError) -> RssegError:
    """A one-line error for a cache folder that cannot be used (read-only, a file, no space)."""
    where = err.filename or onnx_cache_dir()
    return RssegError(f"{where}: ONNX cache unusable ({err.strerror or first_line(err)})")
