"""Training end to end on a generated multi-class dataset: convergence, predict/evaluate, resume, NaN, DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import rasterio
import torch
from conftest import run_cli, write_scene

import rsseg.train.trainer as trainer_module
from rsseg.data.generic import prepare_generic
from rsseg.data.patch_dataset import PatchDataset
from rsseg.data.patches import read_dataset_info
from rsseg.errors import RssegError
from rsseg.models import load_checkpoint
from rsseg.train import build_config, train
from rsseg.train.config import TrainConfig
from rsseg.train.evaluation import evaluate_patches
from rsseg.train.losses import SegmentationLoss

CLASSES = "Ground,Building,Tree,Road"
TESTS = Path(__file__).parent


def make_scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy background (class 0) with red rectangles (1), green disks (2) and grey roads (3)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(size // 64):
        centre, half = int(rng.integers(size)), int(rng.integers(3, 7))
        if rng.random() < 0.5:
            ids[max(0, centre - half):centre + half] = 3
        else:
            ids[:, max(0, centre - half):centre + half] = 3
    for _ in range(size * size // 2500):
        (y, x), (h, w) = rng.integers(0, size, 2), rng.integers(8, 24, 2)
        ids[y:y + h, x:x + w] = 1
    for _ in range(size * size // 3000):
        (y, x), r = rng.integers(0, size, 2), rng.integers(4, 10)
        ids[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = 2
    colours = np.array([[110, 120, 80], [200, 60, 50], [40, 140, 50], [128, 128, 128]], dtype=np.float32)
    image = colours[ids].transpose(2, 0, 1) + rng.normal(0, 18, (3, size, size))
    return np.clip(image, 0, 255).astype(np.uint8), ids


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> Path:
    """A 320² scene cut into 64 px patches: 63 train (top 240 rows), 18 val (bottom 80 rows)."""
    root = tmp_path_factory.mktemp("train_data")
    image, ids = make_scene(320, seed=0)
    write_scene(root / "scene.tif", image)
    write_scene(root / "labels.tif", ids[None])
    prepare_generic([root / "scene.tif"], [root / "labels.tif"], CLASSES, root / "patches", patch=64, stride=32,
                    val_fraction=0.25)
    return root / "patches"


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a small shared CPU, more threads spin and run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(data: Path, *overrides: str, epochs: int | None = 3) -> TrainConfig:
    """The tiny fully convolutional test model: seconds per epoch on a shared CPU."""
    return build_config(None, ("model.name=test_tiny_fcn", "data.workers=0", "train.device=cpu",
                               "optim.lr=0.01", "optim.encoder_lr=0.01", "optim.warmup_epochs=0.2",
                               *overrides),
                        {"data": {"root": str(data), "tile": 64}, "train": {"epochs": epochs, "batch_size": 8}})


def test_train_converges_checkpoint_predicts_and_evaluates(patches, tmp_path, capsys):
    run = tmp_path / "run"
    code, text = run_cli(["train", "--data", str(patches), "--model", "test_tiny_fcn", "--epochs", "6",
                          "--threads", "1", "--batch-size", "8", "--tile", "64", "-o", str(run), "--workers", "2",
                          "--device", "cpu", "--set", "optim.lr=0.01", "--set", "optim.encoder_lr=0.01",
                          "--set", "data.samples_per_epoch=128"], capsys)
    assert code == 0, text
    assert "best mIoU" in text and f"-> {run / 'best.pt'}" in text
    for name in ("best.pt", "last.pt", "state.pt", "config.yaml", "log.csv", "log.json", "curves.png",
                 "confusion.png"):
        assert (run / name).is_file(), name
    assert not list(run.glob(".*tmp*"))
    history = json.loads((run / "log.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    # majority-class baseline on the validation masks: predict Ground everywhere
    counts = np.bincount(np.concatenate([PatchDataset(patches, "val").load(i)[1].ravel() for i in range(18)]),
                         minlength=4)
    baseline = counts[0] / counts.sum() / 4  # IoU of Ground = its pixel share; 0 for the three others
    best = max(h["mIoU"] for h in history)
    assert baseline < 0.2 and best > 0.6, (baseline, best)  # measured: baseline 0.148, best 0.935 (6 epochs, 22 s)
    model, card = load_checkpoint(run / "best.pt")
    assert list(card.classes.names) == CLASSES.split(",") and card.tile_size == 64 and card.extra["dataset"] == "scene"
    assert card.input == read_dataset_info(patches).input and card.extra["metrics"]["papers"]["mIoU"] == best

    # a scene training never saw, through `rsseg predict` and `rsseg evaluate --scene`
    image, ids = make_scene(256, seed=5)
    scene = write_scene(tmp_path / "new.tif", image)
    labels = write_scene(tmp_path / "new_labels.tif", ids[None])
    code, text = run_cli(["predict", str(scene), "--checkpoint", str(run / "best.pt"), "-o",
                          str(tmp_path / "new_mask.tif"), "--quiet"], capsys)
    assert code == 0, text
    with rasterio.open(tmp_path / "new_mask.tif") as ds:
        assert (ds.read(1) == ids).mean() > 0.85
    code, text = run_cli(["evaluate", "--checkpoint", str(run / "best.pt"), "--scene", str(scene), "--labels",
                          str(labels), "-o", str(tmp_path / "scene.json")], capsys)
    assert code == 0, text
    scene_metrics = json.loads((tmp_path / "scene.json").read_text())
    assert scene_metrics["pixels"] == 256 * 256 and scene_metrics["all"]["mIoU"] > 0.6
    assert "papers (4 cls):  mIoU" in text

    # patch evaluation of best.pt on the validation split reproduces the logged confusion matrix
    code, text = run_cli(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(patches), "--split",
                          "val", "-o", str(tmp_path / "val.json")], capsys)
    assert code == 0, text
    logged = next(h for h in history if h["mIoU"] == best)["metrics"]
    assert json.loads((tmp_path / "val.json").read_text())["confusion_matrix"] == logged["confusion_matrix"]
    code, text = run_cli(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(patches), "--split",
                          "val", "--tta", "flip", "-o", str(tmp_path / "val.json")], capsys)
    assert code == 1 and "output exists" in text


def _interrupt_after_first_epoch(monkeypatch):
    original = trainer_module.Trainer.save_state

    def save_then_die(self, epoch):
        original(self, epoch)
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module.Trainer, "save_state", save_then_die)


def test_resume_gives_the_weights_of_an_uninterrupted_run(patches, tmp_path, monkeypatch):
    cfg = config(patches)
    train(cfg, tmp_path / "straight", progress=False)
    with monkeypatch.context() as patch:
        _interrupt_after_first_epoch(patch)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "killed", progress=False)
    assert len(json.loads((tmp_path / "killed" / "log.json").read_text())) == 1
    train(cfg, tmp_path / "killed", resume=True, progress=False)
    straight, _ = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed, _ = load_checkpoint(tmp_path / "killed" / "last.pt")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    logs = [json.loads((tmp_path / run / "log.json").read_text()) for run in ("straight", "killed")]
    assert [h["train_loss"] for h in logs[0]] == [h["train_loss"] for h in logs[1]]
    with pytest.raises(RssegError, match="already finished 3 epochs"):
        train(cfg, tmp_path / "killed", resume=True, progress=False)
    with pytest.raises(RssegError, match="run folder is not empty"):
        train(cfg, tmp_path / "killed", progress=False)


def test_time_budget_ends_schedule_and_run_with_checkpoints(patches, tmp_path, monkeypatch):
    ticks = iter(range(0, 10 ** 6, 2))  # a clock that advances 2 s each time the budget reads it
    monkeypatch.setattr(trainer_module.TimeBudget, "clock", staticmethod(lambda: float(next(ticks))))
    cfg = config(patches, "train.max_minutes=1", "optim.warmup_epochs=0", epochs=None)  # the budget alone decides
    sized = trainer_module.Trainer(cfg, tmp_path / "sized", progress=False)
    assert sized.steps_per_epoch == trainer_module.BUDGET_MIN_STEPS  # a short budget is not spent on validation
    cfg = config(patches, "train.max_minutes=1", "optim.warmup_epochs=0", "data.samples_per_epoch=32", epochs=None)
    best = train(cfg, tmp_path / "run", progress=False)
    history = json.loads((tmp_path / "run" / "log.json").read_text())
    assert 1 < best.epochs == len(history) < 10
    for name in ("best.pt", "last.pt", "state.pt"):
        assert (tmp_path / "run" / name).is_file(), name
    lrs = [h["lr"] for h in history]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.02 * 0.01  # cosine schedule ended with the budget
    with pytest.raises(RssegError, match="spent its train.max_minutes"):
        train(cfg, tmp_path / "run", resume=True, progress=False)


def nan_loss_on(nan: Callable[[int, bool], bool]) -> type[SegmentationLoss]:
    """The loss, NaN on the calls where ``nan(call number from 1, training)`` holds."""
    class NanLoss(SegmentationLoss):
        calls = 0

        def forward(self, logits, target):
            NanLoss.calls += 1
            loss = super().forward(logits, target)
            return loss * float("nan") if nan(NanLoss.calls, self.training) else loss

    return NanLoss


def test_nan_loss_stops_and_keeps_last_good_checkpoint(patches, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "SegmentationLoss", nan_loss_on(lambda call, training: training and call > 8))
    run = tmp_path / "nan"
    with pytest.raises(RssegError, match=r"loss was nan for 5 steps in a row at epoch 2 step 5; training stopped, "
                                         r"last.pt \(epoch 1\) is kept"):
        train(config(patches), run, progress=False)
    _, card = load_checkpoint(run / "last.pt")
    assert card.extra["epoch"] == 1


def test_a_few_nan_losses_are_skipped_and_counted(patches, tmp_path):
    """Also a recipe that overrides one hook: the loss; everything else stays the default."""
    class NanRecipe(trainer_module.Trainer):
        def configure_loss(self):
            loss = self.config.loss
            return nan_loss_on(lambda call, training: 3 <= call <= 5)(self.info.classes.ignore_index,
                                                                       loss.label_smoothing, loss.dice_weight)

    trainer = NanRecipe(config(patches, epochs=1), tmp_path / "run", progress=False)
    assert type(trainer.criterion).__name__ == "NanLoss" and trainer.config.model.name == "test_tiny_fcn"
    trainer.fit()
    history = json.loads((tmp_path / "run" / "log.json").read_text())
    assert [h["skipped_steps"] for h in history] == [3] and np.isfinite(history[0]["train_loss"])
    updates = {int(state["step"]) for state in trainer.optimizer.state.values()}
    assert updates == {7 - 3}  # 63 crops in batches of 8: 7 steps, 3 of them without an update
    assert "skipped_steps" in (tmp_path / "run" / "log.csv").read_text().splitlines()[0]


def test_bad_patch_in_a_worker_is_one_clear_line(patches, tmp_path, capsys):
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(patches, broken)
    mask = sorted((broken / "train" / "masks").iterdir())[5]
    with rasterio.open(mask, "r+") as ds:
        ds.write(np.full((1, 64, 64), 9, dtype=np.uint8))
    code, text = run_cli(["train", "--data", str(broken), "--model", "test_tiny_fcn", "--epochs", "1",
                          "--batch-size", "8", "--tile", "64", "-o", str(tmp_path / "run"), "--workers", "2",
                          "--device", "cpu"], capsys)
    assert code == 1
    assert text.strip().splitlines()[-1] == (f"Error: {mask}: value 9 is not a class id (0..3) nor the ignore "
                                             "index 255")
    code, text = run_cli(["train", "--data", str(patches), "--model", "test_tiny_fcn", "--set", "optim.lr"], capsys)
    assert code == 1 and "--set 'optim.lr': expected section.key=value" in text
    code, text = run_cli(["train", "--data", str(patches), "--set", "train.epoch=3"], capsys)
    assert code == 1 and "unknown key train.epoch" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_gloo(patches, tmp_path):
    """`rsseg train` under torchrun: 2 CPU processes, gloo; metrics reduced over ranks, rank 0 writes."""
    launcher = tmp_path / "launch.py"
    launcher.write_text(f"import sys\nsys.path.insert(0, {str(TESTS)!r})\nimport conftest\n"
                        "from rsseg.cli import main\nmain(sys.argv[1:])\n")
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         str(launcher), "train", "--data", str(patches), "--model", "test_tiny_fcn", "--epochs", "2",
         "--batch-size", "4", "--tile", "64", "-o", str(run), "--workers", "0", "--device", "cpu",
         "--set", "optim.lr=0.01", "--set", "optim.encoder_lr=0.01"],
        capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained 2 epochs") == 1  # rank 0 only
    history = json.loads((run / "log.json").read_text())
    assert len(history) == 2 and history[-1]["train_loss"] < history[0]["train_loss"]
    # 63 train patches over 2 ranks, 31 each (DistributedSampler, drop_last), 7 steps of 4 per rank
    state = torch.load(run / "state.pt", weights_only=False)
    assert state["scheduler"]["last_epoch"] == 2 * 7
    # the validation metrics reduced over both ranks equal a single-process evaluation of the same model
    model, card = load_checkpoint(run / "last.pt")
    single = evaluate_patches(model, card, patches, "val", batch_size=8, progress=False)
    assert single.matrix.tolist() == history[-1]["metrics"]["confusion_matrix"]
    assert int(single.matrix.sum()) == 18 * 64 * 64


@pytest.mark.parametrize("path", sorted((TESTS.parent / "configs").glob("*/[!_]*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_resolve_to_registered_models(path):
    from rsseg.data.registry import list_datasets
    from rsseg.models import list_models

    cfg = build_config(path, ("train.epochs=1",))
    dataset = path.parent.name
    assert cfg.model.name == path.stem and cfg.model.name in {m.name for m in list_models()}
    assert dataset in {d.name for d in list_datasets()}  # a recipe folder per registered benchmark
    assert cfg.data.root == f"data/{dataset}" and cfg.train.out == f"runs/{dataset}-{path.stem}"
    assert cfg.model.kwargs["pretrained"] is True  # ImageNet backbones, as in the papers
    assert cfg.optim.encoder_lr == pytest.approx(cfg.optim.lr / 10) and cfg.train.epochs == 1


def test_cpu_defaults_without_a_config(tmp_path):
    cpu = build_config(None, ("train.device=cpu",), {"data": {"root": "x"}})
    assert (cpu.data.tile, cpu.train.batch_size) == (256, 4)
    assert cpu.model.name == "unet" and cpu.model.kwargs == {"backbone": "efficientnet_lite0", "pretrained": True}
    chosen = build_config(None, ("train.device=cpu", "model.name=abcnet", "data.tile=128"), {"data": {"root": "x"}})
    assert chosen.model.kwargs == {} and chosen.data.tile == 128
    gpu = build_config(None, ("train.device=cuda",), {"data": {"root": "x"}})
    assert (gpu.data.tile, gpu.train.batch_size, gpu.model.kwargs) == (512, 8, {})
    shipped = build_config(TESTS.parent / "configs" / "vaihingen" / "unet.yaml", ("train.device=cpu",))
    assert shipped.data.tile == 512 and shipped.model.kwargs["backbone"] == "resnet34"


def test_encoder_lr_zero_freezes_the_backbone_and_its_batchnorm(patches, tmp_path):
    """A frozen pretrained backbone keeps its weights and BatchNorm statistics; the decoder learns.
    Photometric randomisation on."""
    import timm

    weights = tmp_path / "backbone.pth"
    torch.manual_seed(1)
    torch.save(timm.create_model("mobilenetv3_small_050").state_dict(), weights)
    run = tmp_path / "frozen"
    train(config(patches, "model.name=abcnet", "model.backbone=mobilenetv3_small_050", "model.channels=32",
                 f"model.pretrained_weights={weights}", "optim.encoder_lr=0", "data.photometric=1.0", epochs=1),
          run, progress=False)
    model, _ = load_checkpoint(run / "last.pt")
    source = torch.load(weights, weights_only=True)
    encoder = {k.removeprefix("encoder.body."): v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    assert any("running_mean" in k for k in encoder)
    assert all(torch.equal(v, source[k]) for k, v in encoder.items() if not k.endswith("num_batches_tracked"))
    torch.manual_seed(0)
    fresh = trainer_module.create_model("abcnet", 4, 3, backbone="mobilenetv3_small_050", channels=32).state_dict()
    head = [k for k in fresh if k.startswith("head.") and fresh[k].is_floating_point()]
    assert head and not all(torch.equal(model.state_dict()[k], fresh[k]) for k in head)
