"""Half precision on the CPU: attention and context modules at real window sizes, every registered
model under autocast, the default model on the demo scene, and the guards against NaN outputs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from conftest import TinyFCN, card_for, run_cli, write_scene

from rsseg.device import torch_threads
from rsseg.errors import OptionError, RssegError
from rsseg.models import create_model, list_models, load_checkpoint
from rsseg.models.attention import KernelAttention
from rsseg.models.default import DEFAULT_MODEL
from rsseg.models.precision import Precision, check_finite, relative_error, resolve_precision, run_in
from rsseg.tiling import predict_scene

ROOT = Path(__file__).resolve().parent.parent
BOUNDS = {"fp16": 5e-3, "bf16": 3e-2, "half": 1e-2}  # relative error of a module's output against float32


def _load_bench_attention():
    if str(ROOT / "scripts") not in sys.path:  # the script imports its neighbour bench_record
        sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("bench_attention", ROOT / "scripts" / "bench_attention.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench_attention()
# every module at its 512² window; the modules summing over all N positions at 1024² as well
MODULE_CASES = [pytest.param(name, build, channels, side, id=f"{name.split()[0]}-{side}")
                for name, build, channels, sides in bench.PRECISION_CASES
                for side in (sides if name.split()[0] in ("KernelAttention", "TaylorAttention", "ChannelAttention")
                             else sides[:1])]


@pytest.fixture(autouse=True)
def two_threads():
    with torch_threads(2):
        yield


def test_kernel_attention_sums_no_longer_overflow_float16():
    """The issue's case: 256 channels on 128² positions, inputs ~3, γ = 1; its float16 sums passed 65,504."""
    torch.manual_seed(0)
    module = bench.with_unit_gamma(KernelAttention(256))
    x = 3 * torch.randn(1, 256, 128, 128)
    with torch.inference_mode():
        q, k, v = (F.softplus(proj(x).flatten(2)) for proj in (module.query, module.key, module.value))
    assert torch.einsum("bdn,bdc->bcn", q, torch.einsum("bdm,bcm->bdc", k, v)).abs().max() > 65504  # numerator
    ref = run_in(module, x, "fp32")
    for mode in ("fp16", "bf16", "half"):
        out = run_in(module, x, mode)
        assert out.dtype == torch.float32 and relative_error(out, ref) < BOUNDS[mode], mode
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.float16):
        q, k, v = (proj(x).flatten(2) for proj in (module.query, module.key, module.value))
        assert q.dtype == torch.float16 and module.attend(q, k, v).dtype == torch.float16  # as autocast would give


@pytest.mark.parametrize("name, build, channels, side", MODULE_CASES)
def test_module_finite_and_close_in_half_precision(name, build, channels, side):
    torch.manual_seed(0)
    module = bench.with_unit_gamma(build())
    x = 3 * torch.randn(1, channels, side, side)
    ref = run_in(module, x, "fp32")
    errors = {mode: relative_error(run_in(module, x, mode), ref) for mode in ("fp16", "bf16")}
    assert all(error < BOUNDS[mode] for mode, error in errors.items()), errors


REGISTERED = [e.name for e in list_models() if e.builder.__module__.startswith("rsseg.models.")]


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_model_under_cpu_autocast(name):
    torch.manual_seed(0)
    model = create_model(name, 6).eval()
    x = torch.randn(1, 3, 64, 64)
    ref = run_in(model, x, "fp32")
    for mode, bound in (("fp16", 2e-2), ("bf16", 1e-1)):
        out = run_in(model, x, mode)
        assert out.shape == ref.shape and relative_error(out, ref) < bound, (mode, relative_error(out, ref))


def test_default_model_agrees_with_fp32_on_the_demo_scene():
    model, card = load_checkpoint(DEFAULT_MODEL, "cpu")
    with rasterio.open(ROOT / "data_samples" / "demo_scene.tif") as ds:
        raw = ds.read(list(card.input.bands or [1, 2, 3]), window=((832, 1216), (832, 1216))).astype(np.float32)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (card.input.mean, card.input.std))
    x = (torch.from_numpy(raw)[None] / card.input.scale - mean) / std
    ref = run_in(model.eval(), x, "fp32").argmax(1)
    for mode in ("fp16", "bf16"):
        agreement = float((run_in(model, x, mode).argmax(1) == ref).float().mean())
        assert agreement >= 0.995, (mode, agreement)


class NaNInBrightWindows(TinyFCN):
    """TinyFCN whose logits are NaN for windows holding a bright pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        bright = x.flatten(1).amax(1) > 1.0
        return torch.where(bright[:, None, None, None], torch.full_like(logits, float("nan")), logits)


def test_engine_names_model_and_window_of_nan_and_writes_nothing(tmp_path):
    model = NaNInBrightWindows(4)
    card = card_for(model, name="nan_fcn", tile_size=64)
    data = np.zeros((3, 128, 192), np.uint8)
    data[:, 100, 150] = 255  # only in the window at row 64, col 128 (no overlap)
    scene = write_scene(tmp_path / "scene.tif", data)
    before = set(tmp_path.iterdir())
    with pytest.raises(RssegError) as err:
        predict_scene(scene, tmp_path / "mask.tif", model, card, overlap=0, batch_size=2, progress=False)
    assert str(err.value) == (f"{scene}: model nan_fcn (fp32): non-finite values (NaN or inf) in window row 64, "
                              "col 128; try --precision fp32")
    assert set(tmp_path.iterdir()) == before  # no mask, record, journal or temporary left


def test_check_finite_passes_large_finite_values_whose_sum_overflows():
    big = torch.full((2, 3), 3e38)
    check_finite(big, "model m", ["a", "b"])
    big[1, 2] = float("nan")
    with pytest.raises(RssegError, match=r"non-finite values \(NaN or inf\) in b;"):
        check_finite(big, "model m", ["a", "b"])


def test_check_finite_without_items():
    check_finite(torch.ones(3), "x")
    with pytest.raises(RssegError, match=r"^model m: non-finite values \(NaN or inf\); try"):
        check_finite(torch.tensor([1.0, float("inf")]), "model m")


class NotFp16Safe(TinyFCN):
    fp16_safe = False


def test_precision_resolved_per_device_and_model(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    safe, unsafe = TinyFCN(4), NotFp16Safe(4)
    assert resolve_precision("auto", cpu, safe) == Precision("fp32", None, "auto: float32 on CPU")
    assert resolve_precision("auto", cuda, safe).dtype == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    choice = resolve_precision("auto", cuda, unsafe)
    assert choice.dtype == torch.bfloat16 and "not fp16-safe" in choice.reason
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", cuda, unsafe).dtype is None
    assert resolve_precision("fp16", cpu, unsafe) == Precision("fp16", torch.float16, "as requested")
    with pytest.raises(OptionError, match="precision=fp8: choose from auto, fp32, fp16, bf16"):
        resolve_precision("fp8", cpu, safe)


def test_precision_in_run_record_and_cpu_autocast_prediction(tmp_path):
    model = TinyFCN(4)
    card = card_for(model, tile_size=64)
    scene = write_scene(tmp_path / "scene.tif", np.random.default_rng(0).integers(0, 255, (3, 96, 96), np.uint8))
    masks = {}
    for precision in ("auto", "bf16"):
        out = tmp_path / f"{precision}.tif"
        predict_scene(scene, out, model, card, precision=precision, progress=False)
        record = json.loads(out.with_suffix(".json").read_text())
        with rasterio.open(out) as ds:
            masks[precision] = ds.read(1)
        assert record["precision"] == ({"name": "fp32", "reason": "auto: float32 on CPU"} if precision == "auto"
                                       else {"name": "bf16", "reason": "as requested"})
    assert (masks["auto"] == masks["bf16"]).mean() > 0.99


def test_cli_bogus_precision_is_one_error_line(tmp_path, capsys):
    scene = write_scene(tmp_path / "scene.tif", np.zeros((3, 64, 64), np.uint8))
    code, text = run_cli(["predict", str(scene), "-o", str(tmp_path / "m.tif"), "--precision", "bogus"], capsys)
    lines = [line for line in text.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("Error:") and "--precision" in lines[0], text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]
