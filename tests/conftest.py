"""Shared fixtures: small GeoTIFF scenes and tiny models (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from torch import nn

from rsseg.models.base import SegmentationModel
from rsseg.models.checkpoint import make_card
from rsseg.models.registry import MODELS, register_model

TRANSFORM = from_origin(500000.0, 5400000.0, 0.09, 0.09)
CRS = "EPSG:32632"


def write_scene(path: Path, data: np.ndarray, nodata: float | None = None, crs: str | None = CRS,
                transform=TRANSFORM, **profile) -> Path:
    """Write a C×H×W array as a GeoTIFF (tiled when large enough)."""
    count, height, width = data.shape
    with rasterio.open(path, "w", driver=profile.pop("driver", "GTiff"), width=width, height=height, count=count,
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata, **profile) as ds:
        ds.write(data)
    return path


def random_scene(height: int, width: int, bands: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth random uint8 imagery (blobs, so a conv model's classes form regions)."""
    rng = np.random.default_rng(seed)
    small = rng.random((bands, height // 16 + 2, width // 16 + 2))
    big = torch.nn.functional.interpolate(torch.from_numpy(small)[None], size=(height, width), mode="bicubic",
                                          align_corners=False)[0].numpy()
    noise = rng.normal(0, 0.05, big.shape)
    return np.clip((big + noise) * 255, 0, 255).astype(np.uint8)


class TinyFCN(SegmentationModel):
    """A few 3×3 convolutions: fully convolutional, small receptive field (11 px)."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, num_classes, 3, padding=1),
        )
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x) * 4


class ConstantModel(SegmentationModel):
    """Returns the same logits everywhere, whatever the input."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.logits = nn.Parameter(torch.linspace(-1.0, 1.5, num_classes) ** 2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        b, _, h, w = x.shape
        return self.logits.view(1, -1, 1, 1).expand(b, -1, h, w)


if "test_tiny_fcn" not in MODELS:
    register_model("test_tiny_fcn", paper="test model")(
        lambda num_classes, in_channels=3, seed=0: TinyFCN(num_classes, in_channels, seed=seed))


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory):
    """ONNX exports made by ``--runtime auto`` go to a per-session cache, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))
    yield
    mp.undo()


def card_for(model: nn.Module, name: str = "test_tiny_fcn", num_classes: int = 4, in_channels: int = 3, **card):
    """A model card for a hand-built model (and ``model.arch`` so it can be saved)."""
    model.arch = {"name": name, "num_classes": num_classes, "in_channels": in_channels, "kwargs": {}}
    card.setdefault("mean", [0.5] * in_channels)
    card.setdefault("std", [0.25] * in_channels)
    card.setdefault("gsd", TRANSFORM.a)
    return make_card(model.arch, **card)


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """Run ``rsseg ARGS`` in-process: exit code and stdout + stderr."""
    from rsseg.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exc.value.code, captured.out + captured.err


def fit_steps(model: nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int, lr: float = 1e-3) -> list[float]:
    """Adam steps on one fixed batch through ``model.loss``; the loss of each step."""
    import torch.nn.functional as F

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss, _ = model.loss(model(x), target, F.cross_entropy)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def save_tiny_model(path: Path) -> Path:
    """A 4-class :class:`TinyFCN` model file at ``path`` (tile 64), as the CLI tests run it."""
    from rsseg.models import save_checkpoint

    model = TinyFCN(4)
    model.arch = {"name": "test_tiny_fcn", "num_classes": 4, "in_channels": 3, "kwargs": {}}
    save_checkpoint(model, path, tile_size=64)
    return path


@pytest.fixture
def tiny():
    model = TinyFCN(4)
    return model, card_for(model, tile_size=64)


class SlowFCN(TinyFCN):
    """TinyFCN that sleeps a little per call, so a test can kill a run half-way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(0.05)
        return super().forward(x)


if "test_slow_fcn" not in MODELS:
    register_model("test_slow_fcn", paper="test model")(
        lambda num_classes, in_channels=3, seed=0: SlowFCN(num_classes, in_channels, seed=seed))
