"""ONNX export (card, Deepness keys, self-check, errors) and the ONNX Runtime predict path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import rasterio
import torch
import torch.nn.functional as F
from conftest import TinyFCN, card_for, random_scene, run_cli, write_scene
from torch import nn

from rsseg.errors import RssegError
from rsseg.models import create_model, load_checkpoint, save_checkpoint
from rsseg.models.base import SegmentationModel
from rsseg.models.checkpoint import make_card
from rsseg.models.onnx import load_onnx, read_onnx_card
from rsseg.models.onnx_export import export_onnx
from rsseg.models.runtime import cached_export, fresh_export, load_model
from rsseg.tiling import predict_scene


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small registered architecture (ABCNet, ResNet-18 trunk) saved with a full card."""
    torch.manual_seed(0)
    model = create_model("abcnet", 4, 3, backbone="resnet18").eval()
    path = tmp_path_factory.mktemp("onnx") / "abcnet.pt"
    save_checkpoint(model, path, tile_size=128, class_names=["road", "tree", "roof", "water"],
                    class_colors=[(90, 90, 90), (20, 140, 40), (200, 60, 40), (30, 80, 220)], gsd=0.25,
                    input_scale=1000.0)
    return path


@pytest.fixture(scope="module")
def onnx_file(model_file):
    model, card = load_checkpoint(model_file)
    out = model_file.with_suffix(".onnx")
    report = export_onnx(model, card, out)
    assert report.dynamic and report.logit_error <= 1e-4
    return out


def test_export_stores_card_and_deepness_keys(model_file, onnx_file):
    proto = onnx.load(str(onnx_file))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert read_onnx_card(onnx_file) == load_checkpoint(model_file)[1]
    assert json.loads(meta["model_type"]) == "Segmentor"
    assert json.loads(meta["class_names"]) == {"0": "road", "1": "tree", "2": "roof", "3": "water"}
    assert json.loads(meta["resolution"]) == pytest.approx(25.0)  # cm per pixel
    assert json.loads(meta["tile_size"]) == 128 and json.loads(meta["tiles_overlap"]) == 50
    # Deepness divides by 255, the card by 1000: mean and std are rescaled so both give the same input
    card = read_onnx_card(onnx_file)
    raw = np.array([0.0, 500.0, 1000.0])
    deep = (raw / 255 - json.loads(meta["standardization_mean"])[0]) / json.loads(meta["standardization_std"])[0]
    np.testing.assert_allclose(deep, (raw / 1000 - card.input.mean[0]) / card.input.std[0], rtol=1e-6)
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "tile", "tile"] and len(proto.graph.output) == 1


def test_onnx_model_matches_torch_on_non_square_batch(model_file, onnx_file):
    model, _ = load_checkpoint(model_file)
    runner, _ = load_onnx(onnx_file, threads=1)
    x = torch.randn(3, 3, 96, 160)
    with torch.inference_mode():
        want = torch.softmax(model(x), 1)
        got = torch.softmax(runner(x), 1)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < 1e-5


def test_predict_onnx_agrees_with_pytorch(tmp_path, model_file, onnx_file):
    scene = write_scene(tmp_path / "scene.tif", (random_scene(200, 260).astype(np.uint16) * 4))
    outputs = {}
    for name, (model, card) in {"pt": load_checkpoint(model_file), "onnx": load_onnx(onnx_file)}.items():
        mask, probs = tmp_path / f"{name}.tif", tmp_path / f"{name}_p.tif"
        predict_scene(scene, mask, model, card, probs=probs, tta="flip", device="cpu", progress=False)
        with rasterio.open(mask) as m, rasterio.open(probs) as p:
            outputs[name] = m.read(1), p.read().astype(int)
    agree = (outputs["pt"][0] == outputs["onnx"][0]).mean()
    assert agree >= 0.999
    assert np.abs(outputs["pt"][1] - outputs["onnx"][1]).max() <= 1  # within 1/255


class _FixedSize(SegmentationModel):
    """Reshapes through a hard-coded size: exports only as a fixed-size graph."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y.reshape(y.shape[0], 2, 64 * 64).reshape(y.shape[0], 2, 64, 64)


class _Unsupported(SegmentationModel):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b, k, h, w = y.shape
        return F.adaptive_avg_pool1d(y.reshape(b, k * h, w), w + 1)[..., :w].reshape(b, k, h, w)


def _card(tile: int = 64):
    return make_card({"name": "test", "num_classes": 2, "in_channels": 3, "kwargs": {}}, tile_size=tile)


def test_fixed_size_graph_is_recorded_and_padded(tmp_path):
    out = tmp_path / "fixed.onnx"
    report = export_onnx(_FixedSize().eval(), _card(), out)
    assert not report.dynamic
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["rsseg_dynamic_size"] == "false" and meta["rsseg_tile"] == "64"
    runner, _ = load_onnx(out)
    assert runner(torch.randn(2, 3, 32, 48)).shape == (2, 2, 32, 48)  # a smaller window is padded, cropped back
    with pytest.raises(RssegError, match="64×64 windows"):
        runner(torch.randn(1, 3, 96, 96))


def test_unsupported_operator_is_named_and_nothing_written(tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(RssegError) as err:
        export_onnx(_Unsupported().eval(), _card(), out)
    assert "adaptive_avg_pool1d" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_cached_export_once_per_file(tmp_path, monkeypatch, model_file):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = cached_export(model_file)
    assert first.parent == tmp_path / "cache" / "rsseg" / "onnx" and first.suffix == ".onnx"
    stamp = first.stat().st_mtime_ns
    assert cached_export(model_file) == first and first.stat().st_mtime_ns == stamp
    model, card, runtime = load_model(model_file, torch.device("cpu"))
    assert runtime == "onnx" and card == read_onnx_card(first)
    assert load_model(model_file, torch.device("cpu"), "torch")[2] == "torch"


def test_a_cached_export_runs_without_loading_the_checkpoint_or_timm(tmp_path, monkeypatch, model_file):
    """A second run finds the export made from this very file and loads neither the PyTorch model nor timm;
    a changed model file is exported again (no stale graph runs)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exported = cached_export(model_file)
    code = ("import sys, torch\nfrom rsseg.models.runtime import load_model\n"
            f"model, card, runtime = load_model({str(model_file)!r}, torch.device('cpu'))\n"
            "print(runtime, type(model).__name__, 'timm' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["onnx", "OnnxModel", "False"]

    changed = tmp_path / "changed.pt"
    model, card = load_checkpoint(model_file)
    with torch.no_grad():
        next(model.parameters()).add_(1)
    save_checkpoint(model, changed, tile_size=128)
    assert fresh_export(changed) is None and fresh_export(model_file) == exported
    assert load_model(changed, torch.device("cpu"))[2] == "onnx" and fresh_export(changed) not in (None, exported)


def test_cli_export_and_predict_with_onnx(tmp_path, capsys):
    model = TinyFCN(4)
    model.arch = {"name": "test_tiny_fcn", "num_classes": 4, "in_channels": 3, "kwargs": {}}
    save_checkpoint(model, tmp_path / "m.pt", tile_size=64)
    out = tmp_path / "m.onnx"
    code, err = run_cli(["export", str(tmp_path / "m.pt"), "-o", str(out)], capsys)
    assert code == 0 and out.is_file(), err
    scene = write_scene(tmp_path / "s.tif", random_scene(96, 96))
    code, err = run_cli(["predict", str(scene), "-o", str(tmp_path / "mask.tif"), "--checkpoint", str(out),
                         "--threads", "1", "--quiet"], capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "mask.tif") as ds:
        assert ds.read(1).max() < 4
    code, err = run_cli(["predict", str(scene), "-o", str(tmp_path / "x.tif"), "--checkpoint", str(out),
                         "--runtime", "torch", "--quiet"], capsys)
    assert code == 1 and err.count("\n") == 1 and "m.onnx" in err


def test_onnx_models_are_told_apart_by_their_file(tmp_path, onnx_file):
    from rsseg.tiling.journal import model_digest

    other = tmp_path / "other.onnx"
    export_onnx(_FixedSize().eval(), _card(), other)
    first, second = load_onnx(onnx_file)[0], load_onnx(other)[0]
    assert model_digest(first) != model_digest(second)
    assert model_digest(first) == model_digest(load_onnx(onnx_file)[0])


def test_the_engine_runs_the_graph_without_its_softmax(model_file, onnx_file, tmp_path):
    """The exported file ends in a softmax (for QGIS Deepness); the engine's session stops before it and
    returns the logits themselves. A graph that does not end in one is run whole, its probabilities
    returned as logarithms: both give the file's probabilities."""
    from rsseg.models.onnx_export import OUTPUT

    model, _ = load_checkpoint(model_file)
    assert onnx.load(str(onnx_file)).graph.node[-1].op_type == "Softmax"
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        logits = model(x)
    runner, _ = load_onnx(onnx_file, threads=1)
    assert runner.logits and runner.session.get_outputs()[0].name != OUTPUT
    assert float((runner(x) - logits).abs().max()) < 1e-4

    proto = onnx.load(str(onnx_file))  # the same graph with an Identity after its softmax
    last = proto.graph.node[-1]
    last.output[0] = "softmax_out"
    proto.graph.node.append(onnx.helper.make_node("Identity", ["softmax_out"], [OUTPUT]))
    onnx.save(proto, str(tmp_path / "identity.onnx"))
    whole, _ = load_onnx(tmp_path / "identity.onnx", threads=1)
    assert not whole.logits and whole.session.get_outputs()[0].name == OUTPUT
    got = torch.softmax(whole(x), 1)
    assert float((got - torch.softmax(logits, 1)).abs().max()) < 1e-5


class _SamePadded(SegmentationModel):
    """TensorFlow-style "same" padding (timm's Conv2dSame): stride-2 3×3 and 5×5, then back up."""

    def __init__(self) -> None:
        super().__init__()
        from timm.layers import Conv2dSame

        torch.manual_seed(0)
        self.down = nn.Sequential(Conv2dSame(3, 8, 3, stride=2), nn.ReLU(), Conv2dSame(8, 8, 5, stride=2))
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.head(self.down(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_same_padding_is_fixed_in_the_export_and_folded_into_the_convolutions(tmp_path):
    """The export pads by fixed amounts (the model in memory is left as it is) and folds each Pad into
    its convolution, asymmetric pads included; the graph still equals PyTorch on other window sizes."""
    from timm.layers import Conv2dSame

    model = _SamePadded().eval()
    card = card_for(model, num_classes=4, tile_size=128)
    export_onnx(model, card, tmp_path / "same.onnx")
    assert sum(isinstance(m, Conv2dSame) for m in model.modules()) == 2  # not changed in place
    graph = onnx.load(str(tmp_path / "same.onnx")).graph
    assert not [n for n in graph.node if n.op_type == "Pad"]
    pads = [next(list(a.ints) for a in n.attribute if a.name == "pads") for n in graph.node if n.op_type == "Conv"]
    assert pads[:2] == [[0, 0, 1, 1], [1, 1, 2, 2]]  # top, left, bottom, right
    runner, _ = load_onnx(tmp_path / "same.onnx", threads=1)
    x = torch.randn(2, 3, 96, 160)
    with torch.inference_mode():
        assert float((runner(x) - model(x)).abs().max()) < 1e-4


@pytest.mark.parametrize("kernel,stride,padding,output_padding",
                         [(3, 2, 1, 1), (4, 2, 1, 0), (2, 2, 0, 0), (3, 3, 0, 0)])
def test_a_transposed_convolution_as_phase_convolutions_computes_the_same(kernel, stride, padding, output_padding):
    """The INT8 exports' rewrite: a convolution to the ``stride²`` output phases and a pixel shuffle, with
    and without a batch norm folded in, equals the transposed convolution (and the norm) on any size."""
    from rsseg.models.export_rewrites import phase_conv

    torch.manual_seed(1)
    t = nn.ConvTranspose2d(6, 5, kernel, stride, padding, output_padding).eval()
    norm = nn.BatchNorm2d(5).eval()
    with torch.no_grad():
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 2)
    x = torch.randn(2, 6, 9, 14)
    with torch.inference_mode():
        assert float((phase_conv(t)(x) - t(x)).abs().max()) < 1e-5
        assert float((phase_conv(t, norm)(x) - norm(t(x))).abs().max()) < 1e-5


def test_transposed_convolutions_whose_output_is_not_stride_times_the_input_are_left_alone():
    from rsseg.models.export_rewrites import phase_conv

    assert phase_conv(nn.ConvTranspose2d(4, 4, 3, 2, 1)) is None  # 2n - 1 rows
    assert phase_conv(nn.ConvTranspose2d(4, 4, 3, 1, 1)) is None  # stride 1
    assert phase_conv(nn.ConvTranspose2d(4, 4, 4, 2, 1, groups=2)) is None
