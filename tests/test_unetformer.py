"""UNetFormer: size against the authors' code, shapes, batch consistency, aux head, ONNX export."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli

from rsseg.models import create_model, load_checkpoint, save_checkpoint
from rsseg.models.onnx import load_onnx
from rsseg.models.onnx_export import export_onnx
from rsseg.models.profile import count_flops, count_parameters
from rsseg.models.registry import list_models

# GeoSeg's UNetFormer (ResNet-18, decode_channels 64) at 1×3×512×512, 6 classes
REFERENCE_PARAMS = 11.72e6
REFERENCE_MACS = 11.7e9


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("unetformer", 6, 3).eval()


def test_parameters_and_macs_match_the_authors_code(model):
    assert count_parameters(model) == pytest.approx(REFERENCE_PARAMS, rel=0.03)
    macs = count_flops(model, torch.randn(1, 3, 512, 512)) / 2  # count_flops gives 2 FLOPs per MAC
    assert macs == pytest.approx(REFERENCE_MACS, rel=0.03)


@pytest.mark.parametrize("size", [(32, 64), (96, 160), (224, 96)])
def test_non_square_multiples_of_32_keep_the_input_size(model, size):
    with torch.inference_mode():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 6, *size) and torch.isfinite(out).all()


def test_rejects_sizes_that_are_not_multiples_of_32(model):
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 100, 128))


def test_eval_is_batch_consistent(model):
    x = torch.randn(3, 3, 96, 128)
    with torch.inference_mode():
        batch = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-4)


def test_training_returns_the_auxiliary_output_and_weights_it():
    torch.manual_seed(0)
    model = create_model("unetformer", 5, 4, aux_weight=0.4).train()
    x, target = torch.randn(2, 4, 64, 96), torch.randint(0, 5, (2, 64, 96))
    main, aux = model(x)
    assert main.shape == aux.shape == (2, 5, 64, 96)
    criterion = torch.nn.CrossEntropyLoss()
    total, parts = model.loss((main, aux), target, criterion)
    assert set(parts) == {"main", "aux1"}
    assert float(total.detach()) == pytest.approx(parts["main"] + 0.4 * parts["aux1"], rel=1e-5)
    total.backward()
    assert model.aux_head[-1].weight.grad is not None


def test_listed_by_rsseg_models(capsys):
    assert "unetformer" in [entry.name for entry in list_models()]
    code, output = run_cli(["models"], capsys)
    assert code == 0 and "unetformer" in output and "UNetFormer (Wang et al., 2022)" in output


def test_onnx_export_matches_pytorch(tmp_path, model):
    path = tmp_path / "unetformer.pt"
    save_checkpoint(model, path, tile_size=128)
    loaded, card = load_checkpoint(path)
    out = path.with_suffix(".onnx")
    report = export_onnx(loaded, card, out)
    assert report.logit_error <= 1e-4
    runner, _ = load_onnx(out, threads=1)
    x = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        want, got = torch.softmax(loaded(x), 1), torch.softmax(runner(x), 1)
    assert float((got - want).abs().max()) < 1e-5
