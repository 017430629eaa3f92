"""The training loop: one process or DistributedDataParallel under ``torchrun``."""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from rsseg.data.patches import PatchDataset, pad_collate, read_dataset_info, worker_errors_as_one_line
from rsseg.data.photometric import Photometric
from rsseg.data.samplers import RandomCropDataset
from rsseg.distributed import barrier, cleanup, init_distributed
from rsseg.errors import RssegError, reason
from rsseg.interrupts import Terminated, signals_deferred
from rsseg.io.atomic import TAG, atomic_output
from rsseg.models import create_model, save_checkpoint
from rsseg.models.encoders import TimmEncoder
from rsseg.train.config import OptimConfig, TrainConfig
from rsseg.train.distributed import ShardSampler, all_reduce_sum
from rsseg.train.evaluation import confusion_over_loader
from rsseg.train.losses import SegmentationLoss
from rsseg.train.metrics import compute_metrics, format_table, metric_value
from rsseg.train.plots import plot_confusion, plot_curves

CONFIG_FILE = "config.yaml"
STATE_FILE = "state.pt"
DEFAULT_EPOCHS = 50  # train.epochs when neither it nor train.max_minutes is given
MAX_EPOCHS = 1_000_000  # with train.max_minutes alone: the budget decides
RESULT_FILES = (STATE_FILE, "best.pt", "last.pt", "log.csv", "log.json", "curves.png", "confusion.png")
LOG_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "mIoU", "mF1", "OA", "all_mIoU", "all_mF1",
              "patches_per_s", "seconds", "skipped_steps")
MAX_NON_FINITE = 5  # consecutive steps with a NaN or infinite loss (each skipped) that stop the run


def encoder_modules(model: nn.Module) -> list[nn.Module]:
    """The backbone: any :class:`TimmEncoder` or submodule named ``encoder``/``backbone``."""
    return [module for name, module in model.named_modules()
            if isinstance(module, TimmEncoder) or name.rsplit(".", 1)[-1] in ("encoder", "backbone")]


def encoder_parameters(model: nn.Module) -> set[int]:
    """Ids of backbone parameters."""
    return {id(p) for module in encoder_modules(model) for p in module.parameters()}


def freeze_encoder(model: nn.Module) -> None:
    """No gradients for the backbone (``optim.encoder_lr: 0``); its BatchNorm statistics stay as
    loaded while training (see :meth:`Trainer.train_epoch`)."""
    for module in encoder_modules(model):
        module.requires_grad_(False)


def build_optimizer(model: nn.Module, optim: OptimConfig, pretrained: bool = True) -> torch.optim.Optimizer:
    """AdamW with a pretrained backbone at ``encoder_lr`` and everything else at ``lr``.

    A backbone starting from random weights (``pretrained=False``) trains at ``lr`` too.
    """
    encoder = encoder_parameters(model) if pretrained else set()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if id(p) in encoder], "lr": optim.encoder_lr},
              {"params": [p for p in params if id(p) not in encoder], "lr": optim.lr}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=optim.weight_decay)


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float, power: float,
              budget: TimeBudget | None = None) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine or poly decay to ``min_ratio`` at ``total``
    steps or when ``budget`` is spent, whichever comes first."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), budget.fraction() if budget else 0.0))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else (1 - progress) ** power
    return min_ratio + (1 - min_ratio) * decay


def _rng_state() -> dict:
    """Every random generator's state as tensors, lists and numbers (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": {"version": version, "internal": list(internal), "gauss": python_gauss}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass(frozen=True)
class FitResult:
    """The outcome of :meth:`Trainer.fit`.

    Args:
        best: the best epoch's log record (``epoch``, losses, ``metrics``, ...).
        score: its value of ``metric``.
        metric: the selecting metric (``train.select_metric``).
        epochs: epochs the run has now trained (a time budget may end the last one early).
        seconds: wall time of this call.
        run_dir: the run folder (``best.pt``, ``last.pt``, logs, plots).
        rank: this process's rank (0 outside ``torchrun``).
    """

    best: dict
    score: float
    metric: str
    epochs: int
    seconds: float
    run_dir: Path
    rank: int = 0

    @property
    def best_model(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def best_epoch(self) -> int:
        return int(self.best["epoch"])


class TimeBudget:
    """Training time against ``train.max_minutes``, counted across resumed sessions.

    ``reserve`` is kept free at the end (the last validation's duration), so that the final
    validation and checkpoints still fit in the budget.
    """

    clock = staticmethod(time.perf_counter)

    def __init__(self, minutes: float | None, spent: float = 0.0):
        self.seconds = 60.0 * float(minutes) if minutes else None
        self.spent = spent
        self.reserve = 0.0
        self.started = self.clock()

    def elapsed(self) -> float:
        """Seconds used so far, earlier sessions included."""
        return self.spent + self.clock() - self.started

    def fraction(self) -> float:
        """Share of the budget used (0 without a budget), the reserve counted as used."""
        if not self.seconds:
            return 0.0
        return min(1.0, (self.elapsed() + self.reserve) / self.seconds)

    def exhausted(self) -> bool:
        """Whether training must stop now to end within the budget."""
        return self.seconds is not None and self.fraction() >= 1.0


class NonFiniteLoss(RssegError):
    """The loss became NaN or infinite."""


class Trainer:
    """Trains ``config`` into ``run_dir``: ``best.pt``, ``last.pt``, ``state.pt``, logs and plots.

    ``batch_size`` is per process. Under ``torchrun`` every rank trains on its share of the
    data (DistributedSampler), validation metrics are reduced over ranks, and only rank 0 writes.
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.env, self.device = init_distributed(config.train.device)
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        self.progress = progress and self.env.is_main
        self.created: list[Path] = []  # what this run created, removed if it fails before its first epoch
        if self.env.is_main:
            self._check_run_dir(resume, overwrite)
        data_cfg = config.data
        self.seed = config.train.seed
        self.budget = TimeBudget(config.train.max_minutes)
        self.epochs = config.train.epochs or (MAX_EPOCHS if self.budget.seconds else DEFAULT_EPOCHS)
        _seed_everything(self.seed)
        self.info = read_dataset_info(data_cfg.root)
        photometric = (Photometric(self.info.input.mean, self.info.input.std, data_cfg.photometric)
                       if data_cfg.photometric > 0 else None)
        self.train_set = RandomCropDataset(PatchDataset(data_cfg.root, "train", seed=self.seed, info=self.info),
                                           data_cfg.tile, data_cfg.samples_per_epoch, data_cfg.scale,
                                           data_cfg.flips, data_cfg.rot90, photometric)
        self.val_set = PatchDataset(data_cfg.root, data_cfg.val_split, info=self.info)
        for split in (self.train_set.patches, self.val_set):  # random crops may miss a bad label for epochs
            split.check_masks()
        self.batch_size = config.train.batch_size
        per_rank = len(self.train_set) // self.env.world_size
        if per_rank < self.batch_size:
            raise RssegError(f"{data_cfg.root}: {len(self.train_set)} training crops per epoch for batch size "
                             f"{self.batch_size} × {self.env.world_size} process(es); raise data.samples_per_epoch "
                             "or lower train.batch_size")
        self.steps_per_epoch = per_rank // self.batch_size
        self.model = self._build_model()
        self.frozen_encoder = config.optim.encoder_lr == 0
        if self.frozen_encoder:
            freeze_encoder(self.model)
        self.ddp = self._wrap(self.model)
        optim = config.optim
        kwargs = config.model.kwargs
        self.optimizer = build_optimizer(self.model, optim,
                                         bool(kwargs.get("pretrained") or kwargs.get("pretrained_weights")))
        total = self.epochs * self.steps_per_epoch
        warmup = int(optim.warmup_epochs * self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, functools.partial(
            lr_factor, total=total, warmup=warmup, schedule=optim.schedule, min_ratio=optim.min_lr_ratio,
            power=optim.poly_power, budget=self.budget))
        self.amp = config.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.criterion = SegmentationLoss(self.info.classes.ignore_index, config.loss.label_smoothing,
                                          config.loss.dice_weight)
        self.start_epoch, self.best, self.history = 0, -math.inf, []
        self.non_finite_in_a_row = 0  # steps skipped for a NaN or infinite loss since the last finite one
        self.resumed = resume
        if resume:
            self._load_state()

    # -- setup -------------------------------------------------------------------------------------
    def _check_run_dir(self, resume: bool, overwrite: bool) -> None:
        """Refuse a run folder that cannot be used, before anything is created."""
        state = self.run_dir / STATE_FILE
        data = Path(self.config.data.root)
        if self.run_dir.exists() and data.exists() and os.path.samefile(self.run_dir, data):
            raise RssegError(f"{self.run_dir}: the run folder is the patch folder; choose another -o")
        if resume:
            if not state.is_file():
                raise RssegError(f"{state}: no training state to resume from")
            return
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise RssegError(f"{self.run_dir}: is a file, not a run folder")
        existing = next(p for p in (self.run_dir, *self.run_dir.absolute().parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RssegError(f"{self.run_dir}: cannot write in {existing}")
        if self.run_dir.exists() and _holds_results(self.run_dir) and not overwrite:
            raise RssegError(f"{self.run_dir}: run folder is not empty (use --resume to continue it or "
                             "--overwrite to start again)")

    def _start_run_dir(self) -> None:
        """Create the run folder (or clear a previous run's files) and write the config."""
        with signals_deferred():
            if not self.run_dir.exists():
                self.run_dir.mkdir(parents=True)
                self.created.append(self.run_dir)
            self.created.append(self.run_dir / CONFIG_FILE)
        for name in RESULT_FILES:
            (self.run_dir / name).unlink(missing_ok=True)
        with atomic_output(self.run_dir / CONFIG_FILE, overwrite=True) as tmp:
            tmp.write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))

    def discard_created(self) -> None:
        """Remove what this run created (a run that failed before finishing an epoch leaves nothing)."""
        for name in RESULT_FILES:
            (self.run_dir / name).unlink(missing_ok=True)
        for path in reversed(self.created):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.created = []

    def _build_model(self) -> nn.Module:
        kwargs = dict(self.config.model.kwargs)
        model = create_model(self.config.model.name, self.info.num_classes, self.info.in_channels, **kwargs)
        return model.to(self.device)

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.env.enabled:
            return model
        if self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.model = model
            return DistributedDataParallel(model, device_ids=[self.device.index])
        return DistributedDataParallel(model)

    def _train_loader(self, epoch: int) -> DataLoader:
        self.train_set.set_epoch(epoch)
        workers = self.config.data.workers
        common = dict(batch_size=self.batch_size, num_workers=workers, drop_last=True,
                      pin_memory=self.device.type == "cuda", persistent_workers=False)
        if self.env.enabled:
            sampler = DistributedSampler(self.train_set, self.env.world_size, self.env.rank, shuffle=True,
                                         seed=self.seed, drop_last=True)
            sampler.set_epoch(epoch)
            return DataLoader(self.train_set, sampler=sampler, **common)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return DataLoader(self.train_set, shuffle=True, generator=generator, **common)

    def _val_loader(self) -> DataLoader:
        size = self.config.train.val_batch_size or self.batch_size
        return DataLoader(self.val_set, batch_size=size, sampler=ShardSampler(len(self.val_set), self.env),
                          num_workers=self.config.data.workers,
                          collate_fn=functools.partial(pad_collate, ignore_index=self.info.classes.ignore_index))

    # -- state -------------------------------------------------------------------------------------
    def _load_state(self) -> None:
        """Restore the training state; only tensors and plain data are loaded, never code."""
        path = self.run_dir / STATE_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - whatever torch.load trips on, the file is at fault
            raise RssegError(f"{path}: not a training state rsseg can load safely (crafted, corrupt or from an "
                             f"older rsseg; {type(err).__name__}: {reason(err, 100)})") from None
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            self.start_epoch, self.best, self.history = int(state["epoch"]) + 1, float(state["best"]), \
                list(state["history"])
            self.budget.spent = float(state.get("seconds_spent", 0.0))
            _set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
            raise RssegError(f"{path}: training state does not fit this run ({type(err).__name__}: "
                             f"{reason(err, 100)})") from None

    def _save_state(self, epoch: int) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "epoch": epoch,
                 "best": self.best, "history": self.history, "rng": _rng_state(),
                 "seconds_spent": self.budget.elapsed()}
        with atomic_output(self.run_dir / STATE_FILE, overwrite=True) as tmp:
            torch.save(state, tmp)

    def _save_model(self, name: str, epoch: int, metrics: dict) -> None:
        extra = {"dataset": self.info.name, "epoch": epoch + 1, "select_metric": self.config.train.select_metric,
                 "metrics": {"all": metrics["all"], "papers": metrics["papers"]}, "config": self.config.to_dict()}
        save_checkpoint(self.model, self.run_dir / name, overwrite=True, classes=self.info.classes,
                        input=self.info.input, tile_size=self.config.data.tile, extra=extra)

    # -- loop --------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[float, float, int]:
        """One pass over the training data; mean loss, patches/s (all ranks) and steps skipped.

        A step whose loss is NaN or infinite (on any rank) is skipped on every rank: no backward, no
        update, the AMP scaler untouched. :data:`MAX_NON_FINITE` of them in a row stop the run.
        """
        self.ddp.train()
        if self.frozen_encoder:
            for module in encoder_modules(self.model):
                module.eval()
        loader = self._train_loader(epoch)
        of = f"/{self.epochs}" if self.epochs != MAX_EPOCHS else ""
        clip = self.config.optim.clip_grad
        autocast = (torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext)
        bar = tqdm(worker_errors_as_one_line(loader), total=len(loader), desc=f"epoch {epoch + 1}{of}",
                   unit="batch", leave=False, disable=not self.progress)
        loss_sum, seen, steps, skipped, start = 0.0, 0, 0, 0, time.perf_counter()
        for x, y in bar:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            with autocast():
                outputs = self.ddp(x)
                loss, _ = self.model.loss(outputs, y, self.criterion)
            mean_loss = all_reduce_sum(loss.detach().float().clone()) / self.env.world_size
            if not torch.isfinite(mean_loss):
                skipped, self.non_finite_in_a_row = skipped + 1, self.non_finite_in_a_row + 1
                if self.non_finite_in_a_row < MAX_NON_FINITE:
                    continue
                kept = f"last.pt (epoch {epoch}) is kept" if epoch else "no checkpoint was written yet"
                raise NonFiniteLoss(f"{self.run_dir}: loss was {float(mean_loss)} for {MAX_NON_FINITE} steps in a row "
                                    f"at epoch {epoch + 1} step {steps + skipped}; training stopped, {kept} "
                                    "(lower optim.lr, check the data, or set train.amp=false)")
            self.non_finite_in_a_row = 0
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            loss_sum += float(mean_loss)
            seen += len(x) * self.env.world_size
            steps += 1
            bar.set_postfix(loss=f"{loss_sum / steps:.4f}", patches_s=f"{seen / (time.perf_counter() - start):.1f}")
            if self._out_of_time():
                break
        return loss_sum / steps if steps else math.nan, seen / (time.perf_counter() - start), skipped

    def _out_of_time(self) -> bool:
        """Whether the time budget is spent (decided on rank 0, so every rank stops at the same step)."""
        if self.budget.seconds is None:
            return False
        flag = torch.tensor([float(self.budget.exhausted())], device=self.device)
        if self.env.enabled:
            torch.distributed.broadcast(flag, 0)
        return bool(flag.item())

    def validate(self) -> tuple[dict, float]:
        """Metrics over the validation split (reduced over ranks) and the mean validation loss."""
        matrix, loss_sum, count = confusion_over_loader(
            self.model, self._val_loader(), self.info.num_classes, self.info.classes.ignore_index, self.device,
            amp=self.amp, criterion=self.criterion, progress=self.progress, desc="validate")
        totals = all_reduce_sum(torch.tensor([loss_sum, float(count)], device=self.device, dtype=torch.float64))
        all_reduce_sum(matrix.matrix)
        metrics = compute_metrics(matrix.matrix, self.info.classes.names, self.info.classes.excluded_from_mean)
        return metrics, float(totals[0] / max(totals[1], 1.0))

    def fit(self) -> FitResult:
        """Run the remaining epochs, or until ``train.max_minutes`` is spent.

        Returns the best epoch and where its model file is.
        """
        epochs = self.epochs
        select = self.config.train.select_metric
        if self.start_epoch >= epochs:
            raise RssegError(f"{self.run_dir}: run already finished {epochs} epochs (raise train.epochs to go on)")
        if self.budget.exhausted():
            raise RssegError(f"{self.run_dir}: run already spent its train.max_minutes "
                             f"({self.budget.seconds / 60:g}); raise it to go on")
        started = time.perf_counter()
        try:
            if self.env.is_main and not self.resumed:
                self._start_run_dir()
            barrier()
            for epoch in range(self.start_epoch, epochs):
                t0 = time.perf_counter()
                train_loss, speed, skipped = self.train_epoch(epoch)
                t_val = time.perf_counter()
                metrics, val_loss = self.validate()
                self.budget.reserve = time.perf_counter() - t_val
                score = metric_value(metrics, select)
                record = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[-1]["lr"], "train_loss": train_loss,
                          "val_loss": val_loss, "mIoU": metrics["papers"]["mIoU"], "mF1": metrics["papers"]["mF1"],
                          "OA": metrics["papers"]["OA"], "all_mIoU": metrics["all"]["mIoU"],
                          "all_mF1": metrics["all"]["mF1"], "patches_per_s": speed,
                          "seconds": time.perf_counter() - t0, "skipped_steps": skipped, "metrics": metrics}
                self.history.append(record)
                improved = score > self.best
                if improved:
                    self.best = score
                if self.env.is_main:
                    self._write_epoch(epoch, metrics, improved)
                    if self.progress:
                        tqdm.write(f"epoch {epoch + 1}: train loss {train_loss:.4f}  val loss "
                                   f"{val_loss:.4f}  {select} {100 * score:.2f}{'  (best)' if improved else ''}"
                                   f"  {speed:.1f} patches/s"
                                   f"{f'  ({skipped} steps skipped: loss not finite)' if skipped else ''}")
                barrier()
                if self._out_of_time():
                    break
        except BaseException as err:
            if self.env.is_main and not (self.run_dir / STATE_FILE).is_file():
                self.discard_created()  # nothing to resume: leave the folder as it was
            elif self.env.is_main and isinstance(err, (KeyboardInterrupt, Terminated)):
                tqdm.write(f"{self.run_dir}: kept at its last finished epoch; continue with "
                           f"rsseg train --resume {self.run_dir}")
            raise
        finally:
            cleanup()
        best = max(self.history, key=lambda h: metric_value(h["metrics"], select))
        if self.env.is_main:
            plot_curves(self.history, self.run_dir / "curves.png")
            plot_confusion(best["metrics"]["confusion_matrix"], self.info.classes.names,
                           self.run_dir / "confusion.png", title=f"validation, epoch {best['epoch']}")
            if self.progress:
                tqdm.write(format_table(best["metrics"]))
        return FitResult(best, metric_value(best["metrics"], select), select, len(self.history),
                         time.perf_counter() - started, self.run_dir, self.env.rank)

    def _write_epoch(self, epoch: int, metrics: dict, improved: bool) -> None:
        self._save_model("last.pt", epoch, metrics)
        if improved:
            self._save_model("best.pt", epoch, metrics)
        with atomic_output(self.run_dir / "log.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(self.history, indent=1))
        with atomic_output(self.run_dir / "log.csv", overwrite=True) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, LOG_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.history)
        self._save_state(epoch)


def _holds_results(run_dir: Path) -> bool:
    """Whether a run folder holds anything besides a config and rsseg temporaries (safe to start again)."""
    return any(p.name != CONFIG_FILE and TAG not in p.name for p in run_dir.iterdir())


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_run_dir(config: TrainConfig) -> Path:
    """``runs/<dataset folder>-<model>``."""
    return Path("runs") / f"{Path(config.data.root or '.').name}-{config.model.name}"


def train(config: TrainConfig, run_dir: str | Path | None = None, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> FitResult:
    """Train (or resume) a run; returns its best epoch. See :class:`Trainer`.

    The run folder defaults to ``train.out``, else ``runs/<dataset folder>-<model>``.
    """
    if run_dir is None:
        run_dir = config.train.out or default_run_dir(config)
    return Trainer(config, run_dir, resume=resume, overwrite=overwrite, progress=progress).fit()

