"""RecoNet, FLANet, SANet and DANet: module identities from the papers and whole-model behaviour."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import fit_steps

from rsseg.models import create_model, list_models
from rsseg.models.attention import SoftmaxAttention
from rsseg.models.base import resize_logits
from rsseg.models.blocks import ChannelAttention
from rsseg.models.context_blocks import FullyAttentionalBlock, LowRankReconstruction, SqueezeAttention
from rsseg.models.sanet import class_presence

MODELS = ("reconet", "flanet", "sanet", "danet")
# narrow heads on resnet18: the properties below do not depend on the width, the runtime does
SMALL = {"reconet": {"channels": 64, "rank": 8}, "flanet": {"channels": 64}, "sanet": {}, "danet": {"channels": 64}}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _randomise_bn(module: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so eval-mode checks do not pass by BN being identity."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


# --- RecoNet -------------------------------------------------------------------------------


def test_reconet_rank1_with_unit_spatial_profiles_is_se_block_without_bottleneck():
    ctx = LowRankReconstruction(16, rank=1, profile_size=8)
    x = torch.randn(2, 16, 5, 7)
    v_c, _, _ = ctx.generate(x)
    attention = ctx.reconstruct(v_c, torch.ones(2, 1, 5), torch.ones(2, 1, 7))
    conv = ctx.channel_gen
    se = x * torch.sigmoid(F.conv2d(x.mean((2, 3), keepdim=True), conv.weight, conv.bias))
    torch.testing.assert_close(x * attention, se)


def test_reconet_attention_has_input_shape_and_lambda_sums_to_one():
    ctx = LowRankReconstruction(16, rank=4, profile_size=8)
    with torch.no_grad():
        ctx.rank_logits.normal_()
    x = torch.randn(2, 16, 12, 20)
    attention = ctx.reconstruct(*ctx.generate(x))
    assert attention.shape == x.shape
    torch.testing.assert_close(ctx(x), x * attention)
    assert ctx.lambdas.sum().item() == pytest.approx(1.0, abs=1e-6)
    # A = Σ λ_i v_c ⊗ v_h ⊗ v_w, checked element-wise for one position
    v_c, v_h, v_w = ctx.generate(x)
    lam = ctx.lambdas
    expected = sum(lam[i] * v_c[1, i, 3] * v_h[1, i, 7] * v_w[1, i, 11] for i in range(4))
    torch.testing.assert_close(attention[1, 3, 7, 11], expected)


def test_reconet_height_generator_at_profile_size_is_the_released_fc_layer():
    ctx = LowRankReconstruction(8, rank=3, profile_size=16)
    x = torch.randn(2, 8, 16, 24)  # H equals the profile size, W does not
    _, v_h, v_w = ctx.generate(x)
    fc = ctx.height_gen
    torch.testing.assert_close(v_h, torch.sigmoid(x.mean((1, 3)) @ fc.weight.T + fc.bias).view(2, 3, 16))
    assert v_w.shape == (2, 3, 24) and ((v_w > 0) & (v_w < 1)).all()


# --- FLANet --------------------------------------------------------------------------------


def test_fla_shape_identity_at_gamma_zero_and_row_stochastic_attention():
    fla = FullyAttentionalBlock(8).eval()
    x = torch.randn(2, 8, 6, 10)
    assert fla(x).shape == x.shape
    torch.testing.assert_close(fla.attend(x), x)
    a_h, a_w = fla.relations(x)
    assert a_h.shape == (2, 10, 8, 8) and a_w.shape == (2, 6, 8, 8)
    torch.testing.assert_close(a_h.sum(-1), torch.ones(2, 10, 8))
    torch.testing.assert_close(a_w.sum(-1), torch.ones(2, 6, 8))


def test_fla_batch_consistent_and_matches_explicit_slices():
    fla = FullyAttentionalBlock(8).eval()
    _randomise_bn(fla)
    with torch.no_grad():
        fla.gamma.fill_(0.7)
    a, b = torch.randn(1, 8, 6, 10), 3 * torch.randn(1, 8, 6, 10)
    both = fla(torch.cat([a, b]))
    torch.testing.assert_close(both, torch.cat([fla(a), fla(b)]), atol=1e-5, rtol=1e-4)
    # explicit: sample b, column w=4 (K = V = (C, H)) with sample b's own height prior
    x = b[0]
    q_h = fla.query_h(x.mean(2).T)  # (H, C)
    q_w = fla.query_w(x.mean(1).T)  # (W, C)
    col, row = x[:, :, 4], x[:, 2, :]
    f_h = torch.softmax(col @ q_h, -1) @ col  # (C, H)
    f_w = torch.softmax(row @ q_w, -1) @ row  # (C, W)
    attended = fla.attend(torch.cat([a, b]))
    torch.testing.assert_close(attended[1, :, 2, 4], x[:, 2, 4] + 0.7 * (f_h[:, 2] + f_w[:, 4]))


# --- SANet ---------------------------------------------------------------------------------


def test_sa_module_with_zero_attention_logits_is_half_residual_plus_half():
    sa = SqueezeAttention(8, 4).eval()
    _randomise_bn(sa)
    with torch.no_grad():
        bn = sa.attention[-1][-1]  # the BatchNorm right before the sigmoid
        bn.weight.zero_()
        bn.bias.zero_()
    x = torch.randn(2, 8, 20, 28)
    assert sa.attention(F.avg_pool2d(x, 8, ceil_mode=True)).abs().max().item() == 0.0
    torch.testing.assert_close(sa(x), 0.5 * sa.main(x) + 0.5)


def test_sanet_loss_is_mask_plus_weighted_categorical_and_dense():
    model = create_model("sanet", 3, backbone="resnet18").train()
    x = torch.randn(2, 3, 64, 64)
    target = torch.randint(0, 2, (2, 64, 64))
    target[1, :8] = 255  # ignored pixels are not a class
    presence = class_presence(target, 3)
    assert presence.tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    outputs = model(x)
    mask, dense, categories = outputs
    assert categories.shape == (2, 3)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=255)
    total, parts = model.loss(outputs, target, criterion)
    expected = (criterion(mask, target) + 0.2 * F.binary_cross_entropy_with_logits(categories, presence)
                + 0.8 * criterion(resize_logits(dense, target), target))
    torch.testing.assert_close(total, expected)
    assert set(parts) == {"mask", "cat", "den"}


# --- DANet ---------------------------------------------------------------------------------


def test_danet_pam_equals_explicit_softmax_over_positions():
    pam = SoftmaxAttention(16, scale=8)
    with torch.no_grad():
        pam.gamma.fill_(0.7)
    x = torch.randn(2, 16, 5, 6)
    out = pam(x)
    for s in range(2):
        q = torch.einsum("dc,cn->dn", pam.query.weight[:, :, 0, 0], x[s].flatten(1)) + pam.query.bias[:, None]
        k = torch.einsum("dc,cn->dn", pam.key.weight[:, :, 0, 0], x[s].flatten(1)) + pam.key.bias[:, None]
        v = torch.einsum("dc,cn->dn", pam.value.weight[:, :, 0, 0], x[s].flatten(1)) + pam.value.bias[:, None]
        energy = q.T @ k  # (N, N): energy[n, m] = q_n · k_m
        weights = torch.exp(energy - energy.max(1, keepdim=True).values)
        weights = weights / weights.sum(1, keepdim=True)
        expected = x[s].flatten(1) + 0.7 * v @ weights.T
        torch.testing.assert_close(out[s].flatten(1), expected, atol=1e-5, rtol=1e-4)


def test_danet_cam_equals_explicit_form():
    cam = ChannelAttention()
    with torch.no_grad():
        cam.gamma.fill_(0.3)
    x = torch.randn(2, 6, 4, 5)
    flat = x.flatten(2)
    energy = flat @ flat.transpose(1, 2)
    new = energy.max(-1, keepdim=True).values - energy
    attn = torch.exp(new - new.max(-1, keepdim=True).values)
    attn = attn / attn.sum(-1, keepdim=True)
    torch.testing.assert_close(cam(x), (0.3 * attn @ flat + flat).view_as(x), atol=1e-5, rtol=1e-4)


# --- whole models --------------------------------------------------------------------------


def test_models_are_registered_with_resnet50_default():
    entries = {e.name: e for e in list_models()}
    for name in MODELS:
        assert entries[name].default_backbone == "resnet50"


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_non_square(name):
    model = create_model(name, 6, backbone="resnet18", **SMALL[name]).train()
    x = torch.randn(1, 3, 256, 384)
    target = torch.randint(0, 6, (1, 256, 384))
    outputs = model(x)
    assert isinstance(outputs, tuple) and len(outputs) == len(model.aux_weights) + 1
    assert outputs[0].shape == (1, 6, 256, 384)
    assert all(o.shape[:2] == (1, 6) for o in outputs)
    total, parts = model.loss(outputs, target, F.cross_entropy)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.encoder.body.conv1.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 6, 256, 384)


@pytest.mark.parametrize("name", MODELS)
def test_eval_batch_consistency_and_loss_falls(name):
    model = create_model(name, 4, backbone="resnet18", **SMALL[name])
    for module in model.modules():  # make γ-gated attention active
        if isinstance(getattr(module, "gamma", None), torch.nn.Parameter):
            module.gamma.data.fill_(0.5)
    x = torch.randn(2, 3, 64, 96)
    model.eval()
    _randomise_bn(model)
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.cat([model(x[:1]), model(x[1:])]), atol=1e-4, rtol=1e-4)

    target = torch.zeros(2, 64, 96, dtype=torch.long)
    target[:, :, 48:] = 1
    target[1, 32:] = 2
    losses = fit_steps(model, x, target, 5)
    assert losses[-1] < 0.8 * losses[0], losses
