"""Pretrained backbones: the offline EfficientNet-Lite0 conversion, timm's hub (download stubbed), local files."""

from __future__ import annotations

import pytest
import timm
import torch

from rsseg.errors import RssegError
from rsseg.models import create_model, load_checkpoint, save_checkpoint
from rsseg.models.pretrained import imagenet_state_dict, offline_weights_file

# One model of each family: linear attention, context head, smp baseline.
FAMILIES = ("abcnet", "danet", "unet")


def test_conversion_matches_reference_implementation():
    reference_impl = pytest.importorskip("efficientnet_lite_pytorch")
    weights = offline_weights_file("efficientnet_lite0")
    reference = reference_impl.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights)).eval()
    converted = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    converted.load_state_dict(imagenet_state_dict("tf_efficientnet_lite0"))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), converted(x)
    assert got.shape == (2, 1000)
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", FAMILIES)
def test_offline_efficientnet_lite0_for_every_family(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    imagenet = imagenet_state_dict("efficientnet_lite0")
    model = create_model(name, 4, in_channels=4, backbone="efficientnet_lite0", pretrained=True).eval()
    body = model.backbone().state_dict()
    key = "blocks.1.0.conv_pw.weight"
    assert torch.equal(body[key], imagenet[key])
    assert body["conv_stem.weight"].shape[1] == 4  # adapted to four bands
    assert model(torch.randn(1, 4, 64, 64)).shape == (1, 4, 64, 64)
    assert "pretrained" not in model.arch["kwargs"]
    save_checkpoint(model, tmp_path / "m.pt")
    monkeypatch.setattr("rsseg.models.pretrained.imagenet_state_dict", _no_source)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")  # a model file never needs the pretraining source
    assert torch.equal(loaded.backbone().state_dict()[key], imagenet[key])


def _no_source(backbone: str):
    raise AssertionError(f"pretraining source of {backbone} read while loading a model file")


@pytest.mark.parametrize("name", FAMILIES)
def test_online_weights_come_through_timm(name, monkeypatch):
    marked = {k: torch.full_like(v, 0.125) if v.is_floating_point() else v
              for k, v in timm.create_model("resnet18", pretrained=False).state_dict().items()}
    calls = []

    def fake_download(*args, **kwargs):  # stands in for the Hugging Face hub download only
        calls.append(args)
        return dict(marked)

    monkeypatch.setattr("rsseg.models.pretrained.hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr("timm.models._builder.load_state_dict_from_hf", fake_download)
    model = create_model(name, 3, backbone="resnet18", pretrained=True)
    assert calls, "timm's pretrained mechanism was not used"
    assert torch.all(model.backbone().state_dict()["layer1.0.conv1.weight"] == 0.125)


@pytest.mark.parametrize("name", FAMILIES)
def test_offline_hub_fails_at_once_naming_the_choices(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RssegError) as err:
        create_model(name, 3, backbone="resnet18", pretrained=True)
    message = str(err.value)
    assert "\n" not in message
    assert "efficientnet_lite0" in message and "pretrained_weights=PATH" in message


def test_local_weights_file_for_smp_baseline(tmp_path):
    weights = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), weights)
    reference = torch.load(weights)["layer2.0.conv1.weight"]
    model = create_model("fpn", 2, backbone="resnet18", pretrained_weights=str(weights))
    assert torch.equal(model.net.encoder.layer2[0].conv1.weight, reference)
    with pytest.raises(RssegError, match="resnet18.pth: .* backbone expects"):
        create_model("unet", 2, backbone="efficientnet_lite0", pretrained_weights=str(weights))
