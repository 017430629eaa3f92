"""The CPU paths: a CLI that starts without torch, INT8 exports, the lean ONNX Runtime session, overlapped I/O."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
import torch
import torch.nn.functional as F
from conftest import TinyFCN, card_for, random_scene, write_scene
from torch import nn

from rsseg.cli import COMMANDS
from rsseg.errors import RssegError
from rsseg.models import load_checkpoint, quantize, save_checkpoint
from rsseg.models.base import SegmentationModel
from rsseg.models.onnx import load_onnx, read_onnx_card
from rsseg.models.onnx_export import INPUT, export_onnx
from rsseg.tiling import predict_scene
from rsseg.tiling.journal import BandJournal, partial_dir

LIGHT = [["--help"]] + [[name, "--help"] for name in sorted(set(COMMANDS) - {"prepare"})] + [
    ["prepare", "generic", "--help"]]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def _without_torch(calls: list[list[str]]) -> subprocess.CompletedProcess:
    """Run ``rsseg`` with each argument list in one fresh interpreter; print whether torch got imported."""
    return _python("import sys\nfrom rsseg.cli import main\n"
                   f"for args in {calls!r}:\n"
                   "    try:\n        main(args)\n    except SystemExit as stop:\n"
                   "        assert not stop.code, (args, stop.code)\n"
                   "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n")


def test_help_of_the_cli_and_every_command_imports_no_torch():
    run = _without_torch(LIGHT)
    assert run.returncode == 0, run.stderr
    assert "torch imported: False" in run.stderr
    assert all(f"Usage: rsseg {name}" in run.stdout for name in COMMANDS)


def test_help_of_prepare_imports_no_torch():
    run = _without_torch([["prepare", "--help"]])
    assert "torch imported: False" in run.stderr


def test_vectorize_imports_no_torch(tmp_path):
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 10:30, 10:40] = 1
    path = write_scene(tmp_path / "mask.tif", mask, nodata=255)
    out = tmp_path / "polygons.gpkg"
    run = _without_torch([["vectorize", str(path), "-o", str(out), "--quiet"]])
    assert run.returncode == 0, run.stderr
    assert "torch imported: False" in run.stderr
    assert out.is_file() and "polygon" in run.stdout


def test_models_lists_without_building_and_profiles_on_request():
    listed = subprocess.run([sys.executable, "-m", "rsseg.cli", "models", "--markdown"], capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "| name | paper | default backbone |" and any(line.startswith("| manet |") for line in lines)
    refused = subprocess.run([sys.executable, "-m", "rsseg.cli", "models", "--size", "64"], capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2
    assert refused.stderr.strip() == "Error: --size applies to --profile only"


def _tif_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tif"))}


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_overlapped_io_gives_the_same_bytes_and_resumes(tmp_path, tiny, monkeypatch, runtime):
    """Masks, probabilities and confidence (flip TTA) are the same bytes with the reader, model and writer
    threads and without them, also when a run interrupted part-way resumes. (PyTorch models run in the
    caller's thread; ONNX Runtime's in a thread of their own.)"""
    model, card = tiny
    if runtime == "onnx":
        export_onnx(model, card, tmp_path / "tiny.onnx")
        model, card = load_onnx(tmp_path / "tiny.onnx", threads=1)
    scene = write_scene(tmp_path / "s.tif", random_scene(520, 130, seed=5))
    kw = dict(tile=64, batch_size=3, device="cpu", progress=False, band_rows=128, threads=1, tta="flip")
    files = {}
    for overlap_io in (False, True):
        out = tmp_path / str(overlap_io)
        out.mkdir()
        predict_scene(scene, out / "m.tif", model, card, probs=out / "p.tif", confidence=out / "c.tif",
                      overlap_io=overlap_io, **kw)
        files[overlap_io] = _tif_bytes(out)
    assert files[True] == files[False] and len(files[True]) == 3

    out = tmp_path / "resumed"
    out.mkdir()
    saved = []
    real_save = BandJournal.save

    def killed_after_two(journal, band, arrays):
        if len(saved) == 2:
            raise KeyboardInterrupt
        saved.append(band)
        real_save(journal, band, arrays)

    with monkeypatch.context() as m:
        m.setattr(BandJournal, "save", killed_after_two)
        with pytest.raises(KeyboardInterrupt):
            predict_scene(scene, out / "m.tif", model, card, probs=out / "p.tif", confidence=out / "c.tif", **kw)
    assert not (out / "m.tif").exists() and len(list(partial_dir(out / "m.tif").glob("rows-*.npz"))) == 2
    report = predict_scene(scene, out / "m.tif", model, card, probs=out / "p.tif", confidence=out / "c.tif", **kw)
    assert report.resumed_row == 256
    assert _tif_bytes(out) == files[False]


# ---- INT8 ------------------------------------------------------------------------------------------

ENTRY = Path(__file__).parent / "rsseg_with_test_models.py"


@pytest.fixture(scope="module")
def int8_setup(tmp_path_factory):
    """A small model file, a calibration scene and a folder of patches (images and masks) beside it."""
    folder = tmp_path_factory.mktemp("int8")
    model = TinyFCN(4)
    model.arch = {"name": "test_tiny_fcn", "num_classes": 4, "in_channels": 3, "kwargs": {}}
    checkpoint = folder / "tiny.pt"
    save_checkpoint(model, checkpoint, tile_size=64, mean=[0.5] * 3, std=[0.25] * 3, class_names=list("abcd"))
    scene = write_scene(folder / "calib.tif", random_scene(256, 256, seed=7))
    patches = folder / "patches"
    for i in range(3):
        (patches / "train" / "images").mkdir(parents=True, exist_ok=True)
        (patches / "train" / "masks").mkdir(parents=True, exist_ok=True)
        write_scene(patches / "train" / "images" / f"p{i}.tif", random_scene(64, 64, seed=10 + i))
        write_scene(patches / "train" / "masks" / f"p{i}.tif", np.zeros((1, 64, 64), np.uint8))
    return folder, checkpoint, scene, patches


def test_int8_export_agrees_with_fp32_records_its_calibration_and_predicts(int8_setup, tmp_path):
    folder, checkpoint, scene, patches = int8_setup
    out = tmp_path / "tiny.int8.onnx"
    run = subprocess.run([sys.executable, str(ENTRY), "export", str(checkpoint), "-o", str(out), "--int8",
                          "--calibrate", str(scene), "--calibrate", str(patches), "--calibration-windows", "16",
                          "--quiet"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    agreement = float(re.search(r"argmax agreement with FP32 ([\d.]+) %", run.stdout).group(1))
    assert agreement >= 98 and "mean |Δp|" in run.stdout
    card = read_onnx_card(out)
    calibration = card.extra["calibration"]
    assert card.extra["precision"] == "int8" and calibration["windows"] == 12 and calibration["held_back"] == 4
    assert {s["name"] for s in calibration["sources"]} <= {"calib.tif", "p0.tif", "p1.tif", "p2.tif"}
    assert sum(s["windows"] for s in calibration["sources"]) == 16 and str(folder) not in json.dumps(card.extra)
    onnx_model = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in onnx_model.graph.node)
    assert {p.key: p.value for p in onnx_model.metadata_props}["rsseg_precision"] == "int8"

    model, card = load_onnx(out)
    fp32, _ = load_checkpoint(checkpoint)
    test_scene = write_scene(tmp_path / "scene.tif", random_scene(160, 192, seed=8))
    masks = {}
    for name, net in (("int8", model), ("fp32", fp32)):
        report = predict_scene(test_scene, tmp_path / f"{name}.tif", net, card, device="cpu", progress=False,
                               gsd="native")
        with rasterio.open(tmp_path / f"{name}.tif") as ds:
            masks[name] = ds.read(1)
        assert report.precision["name"] == name
    assert (masks["int8"] == masks["fp32"]).mean() >= 0.97


def test_int8_refusals_are_one_line_before_any_work(int8_setup, tmp_path):
    folder, checkpoint, scene, patches = int8_setup
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no rasters here")
    one_band = write_scene(tmp_path / "gray.tif", random_scene(64, 64, bands=1))
    out = tmp_path / "out.onnx"
    export = ["export", str(checkpoint), "-o", str(out), "--int8", "--quiet"]
    cases = {
        "no calibration": (export, 2, "Error: --int8 needs calibration data: --calibrate SCENE_OR_FOLDER"),
        "empty folder": ([*export, "--calibrate", str(empty)], 1, f"Error: {empty}: no rasters"),
        "bands": ([*export, "--calibrate", str(one_band)], 1,
                  f"Error: {one_band}: has 1 data band(s), the model needs 3"),
        "unknown precision": (["predict", str(scene), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "m.tif"),
                               "--precision", "int4"], 2, "Error: Invalid value for '--precision'"),
        "int8 .pt without data": (["predict", str(scene), "--checkpoint", str(checkpoint), "-o",
                                   str(tmp_path / "m.tif"), "--precision", "int8"], 1,
                                  f"Error: {checkpoint}: --precision int8 quantises the model on windows of your "
                                  f"scenes: give --calibrate SCENE_OR_FOLDER"),
    }
    procs = {name: subprocess.Popen([sys.executable, str(ENTRY), *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for name, (args, _, _) in cases.items()}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        _, code, start = cases[name]
        lines = stderr.strip().splitlines()
        assert proc.returncode == code and len(lines) == 1 and lines[0].startswith(start), (name, stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "gray.tif"]


def test_int8_that_loses_accuracy_or_fails_to_quantise_writes_nothing(int8_setup, tmp_path, monkeypatch):
    folder, checkpoint, scene, _ = int8_setup
    model, card = load_checkpoint(checkpoint)
    out = tmp_path / "m.int8.onnx"
    monkeypatch.setattr(quantize, "MIN_AGREEMENT", 1.01)  # no INT8 graph reaches it
    with pytest.raises(RssegError, match=r"INT8 model agrees with FP32 on [\d.]+ % of held-back pixels "
                                         r"\(below 101 %\)"):
        quantize.export_int8(model, card, out, [scene], windows=8, progress=False)

    def broken(*args):
        raise ValueError("unsupported node\nsecond line")
    monkeypatch.setattr(quantize, "_quantize", broken)
    with pytest.raises(RssegError, match=rf"^{re.escape(str(out))}: ONNX Runtime cannot quantise it \(ValueError: "
                                         r"unsupported node\)$"):
        quantize.export_int8(model, card, out, [scene], windows=8, progress=False)
    assert list(tmp_path.iterdir()) == []


class TinyUpsampling(SegmentationModel):
    """Features at half resolution upsampled ×2 onto a skip connection: the quantiser must keep the sizes."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        torch.manual_seed(1)
        self.skip, self.down = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(torch.relu(self.down(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.relu(self.skip(x) + up)) * 4


def test_int8_keeps_the_size_computations_of_upsampling_in_float(int8_setup, tmp_path):
    _, _, scene, _ = int8_setup
    model = TinyUpsampling().eval()
    report = quantize.export_int8(model, card_for(model, tile_size=64), tmp_path / "up.int8.onnx", [scene], windows=8,
                                  progress=False)
    assert report.check.agreement >= 0.98
    graph = onnx.load(str(tmp_path / "up.int8.onnx")).graph
    sizes = quantize.shape_nodes(list(graph.node))
    assert "Shape" in {n.op_type for n in graph.node if n.name in sizes}
    assert not {n.op_type for n in graph.node if n.name in sizes} & {"Conv", "Relu", "Add", "QuantizeLinear"}
    size_tensors = {out for n in graph.node if n.name in sizes for out in n.output}
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in size_tensors for n in graph.node)


def test_int8_shapes_read_the_int8_tensors_and_the_outputs_are_the_same_bits(int8_setup, tmp_path, monkeypatch):
    """The size computations take their shapes off the int8 tensors, not off dequantised copies of them;
    the graph computes the very same probabilities."""
    import onnxruntime as ort

    _, _, scene, _ = int8_setup
    model = TinyUpsampling().eval()
    card = card_for(model, tile_size=64)
    monkeypatch.setattr(quantize, "shapes_before_dequantizing", lambda path: None)
    quantize.export_int8(model, card, tmp_path / "plain.onnx", [scene], windows=8, progress=False)
    monkeypatch.undo()
    rewritten = tmp_path / "rewritten.onnx"
    rewritten.write_bytes((tmp_path / "plain.onnx").read_bytes())
    quantize.shapes_before_dequantizing(rewritten)

    def graph_facts(path: Path) -> tuple[int, bool]:
        nodes = onnx.load(str(path)).graph.node
        dequantized = {n.output[0] for n in nodes if n.op_type == "DequantizeLinear"}
        return len(dequantized), any(n.op_type == "Shape" and n.input[0] in dequantized for n in nodes)

    (before, shape_read_float), (after, still) = graph_facts(tmp_path / "plain.onnx"), graph_facts(rewritten)
    assert shape_read_float and not still and after < before
    assert "QLinearConv" in {n.op_type for n in onnx.load(str(rewritten)).graph.node}  # QOperator, not QDQ
    x = np.random.default_rng(3).normal(size=(2, 3, 64, 64)).astype(np.float32)
    outputs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {INPUT: x})[0]
               for p in (tmp_path / "plain.onnx", rewritten)]
    assert np.array_equal(outputs[0], outputs[1])


def test_int8_falls_back_to_qdq_where_the_qoperator_quantiser_fails(int8_setup, tmp_path, monkeypatch):
    _, checkpoint, scene, _ = int8_setup
    model, card = load_checkpoint(checkpoint)
    real = quantize._quantize
    tried = []

    def qoperator_fails(fp32, out, reader, kept, form):
        tried.append(form)
        if form == "QOperator":
            raise AttributeError("'NoneType' object has no attribute 'data_type'")
        real(fp32, out, reader, kept, form)

    monkeypatch.setattr(quantize, "_quantize", qoperator_fails)
    report = quantize.export_int8(model, card, tmp_path / "m.int8.onnx", [scene], windows=8, progress=False)
    assert tried[:2] == ["QOperator", "QDQ"] and "QOperator" not in tried[2:]
    assert report.check.format == "QDQ" and "(INT8, QDQ," in report.summary_line()
    assert read_onnx_card(tmp_path / "m.int8.onnx").extra["calibration"]["format"] == "QDQ"
    graph = onnx.load(str(tmp_path / "m.int8.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}


class EqualBiases(SegmentationModel):
    """Two convolutions with equal biases, which the ONNX exporter stores once (behind Identity nodes)."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        torch.manual_seed(2)
        self.a, self.b = nn.Conv2d(3, num_classes, 3, padding=1), nn.Conv2d(num_classes, num_classes, 1)
        with torch.no_grad():
            self.a.bias.fill_(0.1)
            self.b.bias.fill_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x))) * 4


def test_int8_of_a_graph_with_shared_stored_tensors_is_qoperator(int8_setup, tmp_path):
    """Equal stored tensors (the folded biases of fresh batch norms), which the exporter hands out
    through Identity nodes and ONNX Runtime's QOperator quantiser fails on, reach it as stored tensors:
    the export's folding drops the Identity nodes."""
    from rsseg.models.onnx_export import export_onnx

    _, _, scene, _ = int8_setup
    model = EqualBiases().eval()
    card = card_for(model, tile_size=64)
    fp32 = tmp_path / "fp32.onnx"
    export_onnx(model, card, fp32, tile=64)
    assert not [n for n in onnx.load(str(fp32)).graph.node if n.op_type == "Identity"]
    report = quantize.export_int8(model, card, tmp_path / "m.int8.onnx", [scene], windows=8, progress=False)
    assert report.check.format == "QOperator" and report.check.agreement >= 0.98


@pytest.mark.parametrize("kind", ["jpeg", "nodata", "float-nan", "striped"])
def test_row_strip_reads_every_window_as_a_window_read_would(tmp_path, kind):
    """Windows sliced from the row strip equal windows read one by one (pixels and validity), while
    the strip holds no more than a window and a block of rows; a run that starts over (resume) reads afresh."""
    from rsseg.io.raster import RowStrip, read_window
    from rsseg.tiling.grid import TileGrid

    data = random_scene(300, 230, seed=3)
    profile: dict = {"tiled": True, "blockxsize": 64, "blockysize": 64}
    nodata = None
    if kind == "jpeg":
        profile.update(compress="jpeg", photometric="ycbcr")
    elif kind == "nodata":
        data[:, 100:180, 20:90] = nodata = 0
    elif kind == "float-nan":
        data = data.astype(np.float32)
        data[1, 40:70, 150:] = np.nan
    else:
        profile = {"tiled": False, "blockysize": 7}
    path = write_scene(tmp_path / f"{kind}.tif", data, nodata=nodata, **profile)
    grid = TileGrid.build(300, 230, 96, 96, 40, 40)
    with rasterio.open(path) as ds:
        strip = RowStrip(ds, [1, 2, 3])
        tiles = list(grid) + list(grid.tiles(range(2, 4)))  # then a second run, from row 2 of the grid
        invalid = 0
        for t in tiles:
            got, got_ok = strip.read(t.y, t.x, t.height, t.width)
            want, want_ok = read_window(ds, [1, 2, 3], t.y, t.x, t.height, t.width)
            assert np.array_equal(got, want) and np.array_equal(got_ok, want_ok), t
            assert strip.data.shape[1] <= 96 + 64 + 40
            invalid += int((~want_ok).sum())
    assert (invalid > 0) == (kind in ("nodata", "float-nan"))


class TinyEncoderDecoder(SegmentationModel):
    """An ``encoder`` module and a head, as the registered models name theirs; between them a sum of a reduction."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        torch.manual_seed(2)
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        return self.head(features + features.mean(dim=(2, 3), keepdim=True))


def test_int8_last_ladder_steps_keep_sums_of_reductions_and_the_encoder_in_float(int8_setup, tmp_path, monkeypatch):
    _, _, scene, _ = int8_setup
    model = TinyEncoderDecoder().eval()
    card = card_for(model, tile_size=64)
    real, tried = quantize._quantize, []

    def recording(fp32, out, reader, kept, form):
        tried.append(kept)
        real(fp32, out, reader, kept, form)

    monkeypatch.setattr(quantize, "_quantize", recording)
    monkeypatch.setattr(quantize, "MIN_AGREEMENT", 1.01)  # no step is enough: the whole ladder, in order
    with pytest.raises(RssegError, match="below 101 %"):
        quantize.export_int8(model, card, tmp_path / "refused.onnx", [scene], windows=8, progress=False)
    assert tried == list(quantize.KEPT_IN_FLOAT) and quantize.ENCODER not in {k for step in tried[:-1] for k in step}
    assert tried[-2][-1] == quantize.SUMS  # the cheap step before the encoder

    monkeypatch.setattr(quantize, "MIN_AGREEMENT", 0.0)
    monkeypatch.setattr(quantize, "KEPT_IN_FLOAT", quantize.KEPT_IN_FLOAT[-1:])
    report = quantize.export_int8(model, card, tmp_path / "m.int8.onnx", [scene], windows=8, progress=False)
    assert report.check.kept_in_float[-1] == "encoder" and "sums of reductions, encoder)" in report.summary_line()
    assert read_onnx_card(tmp_path / "m.int8.onnx").extra["calibration"]["kept_in_float"][-3:] == [
        "final classifier", "sums of reductions", "encoder"]
    nodes = onnx.load(str(tmp_path / "m.int8.onnx")).graph.node
    convs = {n.name: n.op_type for n in nodes if "Conv" in n.op_type}
    encoder = {op for name, op in convs.items() if "/encoder/" in name}
    head = [op for name, op in convs.items() if "/head/" in name]
    assert encoder == {"Conv"} and head == ["QLinearConv", "Conv"]  # the classifier stays float too
    assert [n.op_type for n in nodes if "Add" in n.op_type] == ["Add"]  # the sum of the ReduceMean: float


class Upsampling(SegmentationModel):
    """A stride-2 convolution and a transposed convolution with a batch norm back up (as MANet's decoder)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(8, 8, 3, 2, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(self.down(x)))


def test_int8_quantises_transposed_convolutions_as_phase_convolutions(int8_setup, tmp_path):
    """ONNX Runtime's CPU provider has no int8 transposed convolution: the INT8 export's float graph has
    none (a phase convolution, the batch norm folded in), the FP32 export keeps it; the model is unchanged."""
    _, _, scene, _ = int8_setup
    model = Upsampling().eval()
    card = card_for(model, tile_size=64)
    export_onnx(model, card, tmp_path / "fp32.onnx", tile=64)
    assert "ConvTranspose" in {n.op_type for n in onnx.load(str(tmp_path / "fp32.onnx")).graph.node}
    report = quantize.export_int8(model, card, tmp_path / "m.int8.onnx", [scene], windows=8, progress=False)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.int8.onnx")).graph.node]
    assert "ConvTranspose" not in ops and "DepthToSpace" in ops and ops.count("QLinearConv") >= 2
    assert report.check.agreement >= 0.98 and isinstance(model.up[0], nn.ConvTranspose2d)
