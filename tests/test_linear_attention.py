"""Linear-attention family: attention maths, MANet / MAResU-Net / ABCNet behaviour, profiling, CLI."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import fit_steps

from rsseg.cli import cli
from rsseg.errors import RssegError
from rsseg.models import create_model, list_models, load_checkpoint, save_checkpoint
from rsseg.models.abcnet import FeatureAggregation
from rsseg.models.attention import KernelAttention, SoftmaxAttention, TaylorAttention
from rsseg.models.blocks import ChannelAttention
from rsseg.models.profile import count_flops, peak_memory_bytes

NAMES = ("manet", "maresunet", "abcnet")
ATTENTION_TYPES = (KernelAttention, TaylorAttention, ChannelAttention)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Single-threaded torch: faster and steadier on a shared CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("cls,residual", [(KernelAttention, True), (TaylorAttention, True),
                                          (TaylorAttention, False)])
@pytest.mark.parametrize("hw", [(6, 6), (5, 9), (8, 3)])
def test_linear_form_equals_quadratic(cls, residual, hw):
    torch.manual_seed(0)
    module = cls(16, residual=residual)
    with torch.no_grad():
        module.gamma.fill_(0.8)
    x = torch.randn(2, 16, *hw)
    linear, quadratic = module(x), module.quadratic(x)
    assert linear.shape == x.shape
    assert not torch.allclose(linear, x if residual else torch.zeros_like(x))  # attention contributes
    torch.testing.assert_close(linear, quadratic, rtol=1e-5, atol=1e-5)


def test_gamma_zero_is_identity_on_residual_path():
    x = torch.randn(2, 16, 4, 7)
    for module in (KernelAttention(16), TaylorAttention(16), ChannelAttention(), SoftmaxAttention(16)):
        assert torch.equal(module(x), x)
    assert torch.equal(TaylorAttention(16, residual=False)(x), torch.zeros_like(x))
    fam = FeatureAggregation(32, 16).eval()
    spatial, context = torch.randn(2, 16, 4, 7), torch.randn(2, 16, 4, 7)
    assert torch.equal(fam(spatial, context), fam.fuse(torch.cat([spatial, context], 1)))


@pytest.mark.parametrize("name", NAMES)
def test_attention_blocks_identity_at_init_inside_models(name):
    """Every attention module of a freshly built model passes its input through unchanged."""
    model = create_model(name, 5, backbone="resnet18").eval()
    seen = []

    def check(module, inputs, output):
        expected = inputs[0] if module.__dict__.get("residual", True) else torch.zeros_like(inputs[0])
        seen.append(torch.equal(output, expected))

    for module in model.modules():
        if isinstance(module, ATTENTION_TYPES):
            module.register_forward_hook(check)
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96))
    assert seen and all(seen)
    assert len(seen) == {"manet": 8, "maresunet": 8, "abcnet": 3}[name]


@pytest.mark.parametrize("name", NAMES)
def test_batch_consistency_default_backbone(name):
    """f(cat[a, b]) == cat[f(a), f(b)] in eval mode, H ≠ W, with the paper's backbone."""
    torch.manual_seed(0)
    model = create_model(name, 6).eval()
    for module in model.modules():  # non-zero γ so attention mixes positions
        if isinstance(module, ATTENTION_TYPES):
            module.gamma.data.fill_(0.5)
    a, b = torch.randn(1, 3, 64, 96), torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        joint = model(torch.cat([a, b]))
        separate = torch.cat([model(a), model(b)])
    assert joint.shape == (2, 6, 64, 96)
    torch.testing.assert_close(joint, separate, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_reaches_encoder(name):
    torch.manual_seed(0)
    model = create_model(name, 6, backbone="resnet18").train()
    x = torch.randn(1, 3, 256, 384)
    target = torch.randint(0, 6, (1, 256, 384))
    outputs = model(x)
    main = outputs[0] if isinstance(outputs, tuple) else outputs
    assert main.shape == (1, 6, 256, 384)
    if name == "abcnet":
        assert len(outputs) == 3 and all(o.shape == (1, 6, 256, 384) for o in outputs)
        assert model.aux_weights == (0.4, 0.4)
    loss, parts = model.loss(outputs, target, F.cross_entropy)
    loss.backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert set(parts) == ({"main", "aux1", "aux2"} if name == "abcnet" else {"main"})


def test_abcnet_aux_only_in_training_and_weights_overridable():
    model = create_model("abcnet", 4, backbone="resnet18", aux_weights=(0.2, 0.1))
    assert model.aux_weights == (0.2, 0.1)
    x = torch.randn(2, 3, 64, 64)
    assert isinstance(model.train()(x), tuple)
    out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 64, 64)
    with pytest.raises(ValueError, match="two auxiliary heads"):
        create_model("abcnet", 4, backbone="resnet18", aux_weights=(0.4,))


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases_on_fixed_batch(name):
    torch.manual_seed(0)
    model = create_model(name, 3, backbone="resnet18").train()
    # 16×16 blocks of random classes; each class shifts one band, so the labels can be learnt.
    target = torch.randint(0, 3, (2, 4, 4)).repeat_interleave(16, 1).repeat_interleave(16, 2)
    x = 0.5 * torch.randn(2, 3, 64, 64) + F.one_hot(target, 3).permute(0, 3, 1, 2)
    losses = fit_steps(model, x, target, 10)
    assert losses[-1] < 0.75 * losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_size_constraint_error(name):
    model = create_model(name, 3, backbone="resnet18").eval()
    with pytest.raises(ValueError, match="multiples of 32, got 80×100"):
        model(torch.randn(1, 3, 80, 100))


def test_four_bands_local_weights_and_other_backbones(tmp_path):
    weights = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), weights)
    reference = torch.load(weights)["layer1.0.conv1.weight"]
    for name in NAMES:
        model = create_model(name, 6, in_channels=4, backbone="resnet18", pretrained_weights=str(weights)).eval()
        assert torch.equal(model.encoder.body.layer1[0].conv1.weight, reference)
        assert model.encoder.body.conv1.weight.shape[1] == 4
        assert model(torch.randn(1, 4, 64, 32)).shape == (1, 6, 64, 32)
        assert "pretrained_weights" not in model.arch["kwargs"]
    save_checkpoint(model, tmp_path / "m.pt")
    weights.unlink()  # a model file must not need the pretraining file
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert torch.equal(loaded.encoder.body.layer1[0].conv1.weight, reference)
    # ConvNeXt's first feature map is at stride 4 (ResNet's at 2): stages are picked by stride.
    convnext = create_model("manet", 2, backbone="convnext_atto").eval()
    assert convnext(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)
    with pytest.raises(RssegError, match="no_such_net"):
        create_model("abcnet", 2, backbone="no_such_net")


def test_checkpoint_round_trip(tmp_path):
    model = create_model("abcnet", 3, backbone="resnet18", aux_weights=(0.3, 0.2)).eval()
    path = tmp_path / "abc.rsseg"
    save_checkpoint(model, str(path), class_names=["a", "b", "c"])
    loaded, card = load_checkpoint(str(path))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded.aux_weights == (0.3, 0.2) and card.num_classes == 3


def test_linear_memory_grows_linearly_softmax_quadratically():
    def peaks(cls, side):
        return peak_memory_bytes(cls(32).eval(), torch.randn(1, 32, side, side))

    for cls in (KernelAttention, TaylorAttention):
        assert peaks(cls, 48) / peaks(cls, 24) < 4.5
    assert peaks(SoftmaxAttention, 48) / peaks(SoftmaxAttention, 24) > 12
    assert peaks(SoftmaxAttention, 48) > 8 * peaks(KernelAttention, 48)


def test_profile_counts_known_costs():
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
    assert count_flops(conv, torch.randn(1, 8, 10, 12)) == 2 * 8 * 16 * 9 * 10 * 12

    def f(x):
        y = x @ x  # 4 MB
        z = y + 1  # 4 MB, peak 8 MB
        del y
        return z.sum()

    assert peak_memory_bytes(f, torch.randn(1000, 1000)) == 2 * 4 * 1000 * 1000


def test_models_command_lists_every_registered_model():
    result = CliRunner().invoke(cli, ["models", "--profile", "--size", "64", "--no-timing", "--markdown"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| name | paper | default backbone | params (M) | GFLOPs")
    listed = {line.split(" | ")[0].removeprefix("| ") for line in lines[1:]}
    assert listed == {e.name for e in list_models()} >= set(NAMES)
    result = CliRunner().invoke(cli, ["models", "--profile", "--size", "100"])
    assert result.exit_code != 0 and "multiple of 32" in result.output
