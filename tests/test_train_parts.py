"""The trainer's parts on their own: time budget, run folder, resumable state, schedule, sharding, hooks."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from rsseg.distributed import (
    DistEnv,
    ShardSampler,
    all_reduce_sum,
    broadcast_flag,
    contiguous_share,
    round_robin,
    scene_share,
)
from rsseg.errors import RssegError
from rsseg.train.budget import TimeBudget
from rsseg.train.config import OptimConfig, build_config
from rsseg.train.optim import build_optimizer, build_scheduler, lr_factor
from rsseg.train.run_folder import CONFIG_FILE, RunFolder
from rsseg.train.state import Progress, TrainingState, seed_everything


def test_time_budget_counts_earlier_sessions_and_the_reserve(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(TimeBudget, "clock", staticmethod(lambda: now[0]))
    budget = TimeBudget(minutes=1, spent=15.0)
    now[0] = 130.0
    assert budget.elapsed() == 45.0 and budget.fraction() == 0.75 and not budget.exhausted()
    budget.reserve = 10.0
    assert budget.fraction() == pytest.approx(55 / 60) and not budget.exhausted()
    now[0] = 140.0
    assert budget.fraction() == 1.0 and budget.exhausted()
    assert TimeBudget(None).fraction() == 0.0 and not TimeBudget(None).exhausted()


def test_lr_factor_warms_up_then_decays_or_ends_with_the_budget(monkeypatch):
    cosine = [lr_factor(s, total=10, warmup=2, schedule="cosine", min_ratio=0.1, power=0.9) for s in range(11)]
    assert cosine[:2] == [0.5, 1.0] and cosine[2] == 1.0 and cosine[10] == pytest.approx(0.1)
    assert cosine[2:] == sorted(cosine[2:], reverse=True)
    assert lr_factor(6, 10, 2, "poly", 0.0, 1.0) == pytest.approx(0.5)
    budget = TimeBudget(1)
    monkeypatch.setattr(budget, "fraction", lambda: 1.0)
    assert lr_factor(3, 1000, 2, "cosine", 0.0, 0.9, budget) == pytest.approx(0.0)


def test_cosine_restarts_lr_curve_matches_hand_computed_values_and_torch():
    # cycles of 4, 8, 16 steps; factor 0.5 * (1 + cos(pi * t / T)) with min_ratio 0
    curve = [lr_factor(s, 100, 0, "cosine_restarts", 0.0, 0.9, t0=4, t_mult=2) for s in range(13)]
    expected = [1.0, 0.853553, 0.5, 0.146447, 1.0, 0.961940, 0.853553, 0.691342, 0.5, 0.308658, 0.146447,
                0.038060, 1.0]
    assert curve == pytest.approx(expected, abs=1e-6)
    assert lr_factor(2, 100, 0, "cosine_restarts", 0.1, 0.9, t0=4, t_mult=2) == pytest.approx(0.55)
    assert lr_factor(1, 100, 2, "cosine_restarts", 0.0, 0.9, t0=4, t_mult=2) == 1.0  # warm-up first
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    reference = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=3, T_mult=2)
    torch_curve = []
    for _ in range(25):
        torch_curve.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert [lr_factor(s, 100, 0, "cosine_restarts", 0.0, 0.9, t0=3, t_mult=2) for s in range(25)] == \
        pytest.approx(torch_curve, abs=1e-9)
    optim = OptimConfig(lr=1.0, schedule="cosine_restarts", warmup_epochs=0, t0_epochs=1.5, t_mult=2)
    optimizer = build_optimizer(nn.Linear(1, 1), optim)
    scheduler = build_scheduler(optimizer, optim, total_steps=100, steps_per_epoch=2)  # t0: 3 steps
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1.0, 0.75, 0.25, 1.0])


def test_optimizer_groups_and_scheduler():
    model = nn.Sequential()
    model.add_module("encoder", nn.Linear(2, 2))
    model.add_module("head", nn.Linear(2, 2))
    optim = OptimConfig(lr=1e-2, encoder_lr=1e-3, warmup_epochs=0)
    assert [g["lr"] for g in build_optimizer(model, optim).param_groups] == [1e-3, 1e-2]
    assert [g["lr"] for g in build_optimizer(model, optim, pretrained=False).param_groups] == [1e-2]
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, total_steps=4, steps_per_epoch=2)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_run_folder_refuses_before_creating_anything(tmp_path):
    data = tmp_path / "patches"
    data.mkdir()
    with pytest.raises(RssegError, match="the run folder is the patch folder"):
        RunFolder(data).check(data, resume=False, overwrite=False)
    with pytest.raises(RssegError, match="no training state to resume from"):
        RunFolder(tmp_path / "new").check(data, resume=True, overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RssegError, match="is a file, not a run folder"):
        RunFolder(tmp_path / "file").check(data, resume=False, overwrite=False)
    used = tmp_path / "used"
    used.mkdir()
    (used / CONFIG_FILE).write_text("{}")
    RunFolder(used).check(data, resume=False, overwrite=False)  # a config alone: safe to start again
    (used / "log.csv").write_text("epoch\n")
    with pytest.raises(RssegError, match="run folder is not empty .*`resume`.*`overwrite`"):
        RunFolder(used).check(data, resume=False, overwrite=False)
    RunFolder(used).check(data, resume=False, overwrite=True)
    assert not (tmp_path / "new").exists() and sorted(p.name for p in used.iterdir()) == [CONFIG_FILE, "log.csv"]


def test_run_folder_start_logs_plots_and_discard(tmp_path):
    run = RunFolder(tmp_path / "a" / "run")
    run.start({"train": {"epochs": 2}})
    assert yaml.safe_load((run.path / CONFIG_FILE).read_text()) == {"train": {"epochs": 2}}
    matrix = [[5, 1], [0, 4]]
    history = [{"epoch": e, "lr": 0.1, "train_loss": 1.0 / e, "val_loss": 1.0, "mIoU": 0.5, "mF1": 0.6, "OA": 0.7,
                "metrics": {"confusion_matrix": matrix}} for e in (1, 2)]
    run.write_logs(history)
    run.write_plots(history, history[1], ["a", "b"])
    assert json.loads((run.path / "log.json").read_text())[1]["metrics"]["confusion_matrix"] == matrix
    rows = list(csv.DictReader((run.path / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "metrics" not in rows[0]
    for name in ("curves.png", "confusion.png"):
        assert (run.path / name).read_bytes()[:4] == b"\x89PNG"
    run.discard()
    assert not (tmp_path / "a" / "run").exists() and (tmp_path / "a").is_dir()  # only what it created


def _objects(seed: int) -> TrainingState:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    return TrainingState(model, optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=False))


def test_training_state_round_trip_restores_weights_optimizer_schedule_and_rng(tmp_path):
    state = _objects(0)
    state.model(torch.ones(4, 3)).sum().backward()
    state.optimizer.step()
    state.scheduler.step()
    seed_everything(7)
    state.save(tmp_path / "state.pt", epoch=2, progress=Progress(best=0.5, history=[{"epoch": 3}], seconds_spent=9.0))
    expected = (torch.rand(3), np.random.rand(), random.random())
    other = _objects(1)
    progress = other.load(tmp_path / "state.pt")
    assert progress == Progress(start_epoch=3, best=0.5, history=[{"epoch": 3}], seconds_spent=9.0)
    assert torch.equal(other.model.weight, state.model.weight)
    assert other.optimizer.state_dict()["state"][0]["step"] == 1 and other.scheduler.last_epoch == 1
    assert torch.equal(torch.rand(3), expected[0]) and (np.random.rand(), random.random()) == expected[1:]
    (tmp_path / "bad.pt").write_text("not a state")
    with pytest.raises(RssegError, match="bad.pt: not a training state rsseg can load safely"):
        other.load(tmp_path / "bad.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(RssegError, match="other.pt: training state does not fit this run"):
        other.load(tmp_path / "other.pt")


def test_sharding_round_robin_contiguous_and_single_process_collectives():
    envs = [DistEnv(rank, 3) for rank in range(3)]
    shards = [round_robin(8, env) for env in envs]
    assert shards == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert [list(ShardSampler(8, env)) for env in envs] == shards and len(ShardSampler(8, envs[2])) == 2
    assert scene_share(8, envs[1]) == ([1, 4, 7], False) and scene_share(2, envs[1]) == ([0, 1], True)
    assert scene_share(5, DistEnv()) == ([0, 1, 2, 3, 4], False)
    slices = [contiguous_share(10, rank, 3) for rank in range(3)]
    assert [list(range(10))[s] for s in slices] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    tensor = torch.tensor([1.0, 2.0])
    assert all_reduce_sum(tensor) is tensor and tensor.tolist() == [1.0, 2.0]
    assert broadcast_flag(True, torch.device("cpu")) is True


def test_recipe_configs_follow_geoseg_and_cite_their_source():
    root = Path(__file__).resolve().parent.parent / "configs"
    tiles = {"vaihingen": 512, "potsdam": 768, "uavid": 1024}
    epochs = {"vaihingen": 105, "potsdam": 45, "uavid": 40}
    for path in sorted(root.glob("*/*.yaml")):
        if path.name == "_base.yaml":
            continue
        config = build_config(path)
        dataset = path.parent.name
        if path.stem in ("manet", "maresunet", "abcnet", "unetformer"):
            assert f"GeoSeg config/{dataset}/{path.stem}.py" in path.read_text(), path
        assert config.data.tile == tiles[dataset] and config.train.epochs == epochs[dataset], path
        assert (config.data.max_class_share, config.data.mosaic, config.data.scale) == (0.75, 0.25, (0.5, 1.5)), path
        assert (config.optim.schedule, config.optim.t0_epochs, config.optim.t_mult) == ("cosine_restarts", 15, 2)
        assert (config.optim.lr, config.optim.encoder_lr, config.optim.weight_decay) == (6e-4, 6e-5, 0.01), path
        assert (config.loss.label_smoothing, config.loss.dice_weight) == (0.05, 1.0), path
    assert build_config(root / "vaihingen" / "unetformer.yaml").model.kwargs["aux_weight"] == 0.4
