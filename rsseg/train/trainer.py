"""The training loop: one process or DistributedDataParallel under ``torchrun``.

A recipe that changes one thing subclasses :class:`Trainer` and overrides one hook:
:meth:`~Trainer.configure_model`, :meth:`~Trainer.configure_optimizer`,
:meth:`~Trainer.configure_scheduler` or :meth:`~Trainer.configure_loss`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from rsseg.data.patch_dataset import PatchDataset, pad_collate, worker_errors_as_one_line
from rsseg.data.patches import read_dataset_info
from rsseg.data.photometric import Photometric
from rsseg.data.samplers import RandomCropDataset
from rsseg.distributed import ShardSampler, all_reduce_sum, barrier, broadcast_flag, cleanup, init_distributed
from rsseg.errors import RssegError
from rsseg.interrupts import Terminated
from rsseg.models import create_model, save_checkpoint
from rsseg.train.budget import TimeBudget
from rsseg.train.config import TrainConfig
from rsseg.train.evaluation import confusion_over_loader
from rsseg.train.losses import SegmentationLoss
from rsseg.train.metrics import compute_metrics, format_table, metric_value
from rsseg.train.optim import build_optimizer, build_scheduler, encoder_modules, freeze_encoder
from rsseg.train.run_folder import RunFolder
from rsseg.train.state import Progress, TrainingState, seed_everything
from rsseg.train.warm_start import load_warm_start, read_warm_start, with_model_of

DEFAULT_EPOCHS = 50  # train.epochs when neither it nor train.max_minutes is given
MAX_EPOCHS = 1_000_000  # with train.max_minutes alone: the budget decides
#: with train.max_minutes and no data.samples_per_epoch, an epoch has at least this many steps, so that the
#: per-epoch validation and checkpoints take a small share of a short budget (see docs/training.md)
BUDGET_MIN_STEPS = 50
MAX_NON_FINITE = 5  # consecutive steps with a NaN or infinite loss (each skipped) that stop the run


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


class NonFiniteLoss(RssegError):
    """The loss became NaN or infinite."""


class Trainer:
    """Trains ``config`` into ``run_dir``: ``best.pt``, ``last.pt``, ``state.pt``, logs and plots.

    ``batch_size`` is per process. Under ``torchrun`` every rank trains on its share of the
    data (DistributedSampler), validation metrics are reduced over ranks, and only rank 0 writes.
    With ``train.init`` the model starts from a model file (:mod:`rsseg.train.warm_start`).
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True):
        self.run = RunFolder(run_dir)
        self.env, self.device = init_distributed(config.train.device)
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        self.progress = progress and self.env.is_main
        if self.env.is_main:
            self.run.check(config.data.root or ".", resume, overwrite)
        self.info = read_dataset_info(config.data.root)
        self.warm_start = (read_warm_start(config.train.init, self.info, config.data.root)
                           if config.train.init and not resume else None)
        self.config = with_model_of(config, self.warm_start) if self.warm_start else config
        self.notes: list[str] = [self.warm_start.describe()] if self.warm_start else []
        self.seed = config.train.seed
        self.budget = TimeBudget(config.train.max_minutes)
        self.epochs = config.train.epochs or (MAX_EPOCHS if self.budget.seconds else DEFAULT_EPOCHS)
        seed_everything(self.seed)
        self.batch_size = config.train.batch_size
        self.train_set, self.val_set = self._datasets()
        self.steps_per_epoch = self._steps_per_epoch()
        self.model = self.configure_model().to(self.device)
        self.frozen_encoder = config.optim.encoder_lr == 0
        if self.frozen_encoder:
            freeze_encoder(self.model)
        self.ddp = self._wrap(self.model)
        self.optimizer = self.configure_optimizer()
        self.scheduler = self.configure_scheduler()
        self.amp = config.train.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.criterion = self.configure_loss()
        self.state = TrainingState(self.model, self.optimizer, self.scheduler, self.scaler)
        self.status = Progress()
        self.non_finite_in_a_row = 0  # steps skipped for a NaN or infinite loss since the last finite one
        self.resumed = resume
        if resume:
            self.status = self.state.load(self.run.state)
            self.budget.spent = self.status.seconds_spent
        if self.progress:
            for note in self.notes:
                tqdm.write(note)

    @property
    def run_dir(self) -> Path:
        return self.run.path

    # -- hooks: override one in a subclass to change one thing -------------------------------------
    def configure_model(self) -> nn.Module:
        """The model: ``config.model`` for the dataset's classes and bands, loaded from ``train.init`` if given."""
        model = create_model(self.config.model.name, self.info.num_classes, self.info.in_channels,
                             **self.config.model.kwargs)
        if self.warm_start:
            self.notes.append(load_warm_start(model, self.warm_start, self.info))
        return model

    def configure_optimizer(self) -> torch.optim.Optimizer:
        """AdamW; a backbone that starts trained (ImageNet, ``train.init``) learns at ``optim.encoder_lr``."""
        kwargs, init = self.config.model.kwargs, self.config.train.init
        return build_optimizer(self.model, self.config.optim,
                               bool(kwargs.get("pretrained") or kwargs.get("pretrained_weights") or init))

    def configure_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        """Per-step warm-up then decay, ending with the epochs or the time budget."""
        return build_scheduler(self.optimizer, self.config.optim, self.epochs * self.steps_per_epoch,
                               self.steps_per_epoch, self.budget)

    def configure_loss(self) -> nn.Module:
        """Label-smoothed cross-entropy plus Dice (``loss`` section), ignoring the ignore index."""
        loss = self.config.loss
        return SegmentationLoss(self.info.classes.ignore_index, loss.label_smoothing, loss.dice_weight,
                                self.info.classes.label_sets)

    # -- setup -------------------------------------------------------------------------------------
    def _datasets(self) -> tuple[RandomCropDataset, PatchDataset]:
        """Random training crops and the validation patches, every mask checked."""
        data = self.config.data
        photometric = (Photometric(self.info.input.mean, self.info.input.std, data.photometric)
                       if data.photometric > 0 else None)
        train_set = RandomCropDataset(PatchDataset(data.root, "train", seed=self.seed, info=self.info), data.tile,
                                      data.samples_per_epoch, data.scale, data.flips, data.rot90, photometric,
                                      max_class_share=data.max_class_share, mosaic=data.mosaic)
        if self.budget.seconds and data.samples_per_epoch is None:
            train_set.samples_per_epoch = max(len(train_set), BUDGET_MIN_STEPS * self.batch_size * self.env.world_size)
        val_set = PatchDataset(data.root, data.val_split, info=self.info)
        for split in (train_set.patches, val_set):  # random crops may miss a bad label for epochs
            split.check_masks()
        return train_set, val_set

    def _steps_per_epoch(self) -> int:
        per_rank = len(self.train_set) // self.env.world_size
        if per_rank < self.batch_size:
            raise RssegError(f"{self.config.data.root}: {len(self.train_set)} training crops per epoch for batch "
                             f"size {self.batch_size} × {self.env.world_size} process(es); raise "
                             "data.samples_per_epoch or lower train.batch_size")
        return per_rank // self.batch_size

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

    # -- checkpoints -------------------------------------------------------------------------------
    def save_state(self, epoch: int) -> None:
        """``state.pt`` after ``epoch`` (0-based), with the time spent so far."""
        self.status.seconds_spent = self.budget.elapsed()
        self.state.save(self.run.state, epoch, self.status)

    def _save_model(self, name: str, epoch: int, metrics: dict) -> None:
        extra = {"dataset": self.info.name, "epoch": epoch + 1, "select_metric": self.config.train.select_metric,
                 "metrics": {"all": metrics["all"], "papers": metrics["papers"]}, "config": self.config.to_dict()}
        classes = dataclasses.replace(self.info.classes, label_sets=())  # a training-data notion
        save_checkpoint(self.model, self.run_dir / name, overwrite=True, classes=classes,
                        input=self.info.input, tile_size=self.config.data.tile, extra=extra)

    def _write_epoch(self, epoch: int, metrics: dict, improved: bool) -> None:
        self._save_model("last.pt", epoch, metrics)
        if improved:
            self._save_model("best.pt", epoch, metrics)
        self.run.write_logs(self.status.history)
        self.save_state(epoch)

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
                skipped += 1
                self._count_non_finite(float(mean_loss), epoch, steps + skipped)
                continue
            self.non_finite_in_a_row = 0
            self._step(loss)
            loss_sum += float(mean_loss)
            seen += len(x) * self.env.world_size
            steps += 1
            bar.set_postfix(loss=f"{loss_sum / steps:.4f}", patches_s=f"{seen / (time.perf_counter() - start):.1f}")
            if self._out_of_time():
                break
        return loss_sum / steps if steps else math.nan, seen / (time.perf_counter() - start), skipped

    def _count_non_finite(self, loss: float, epoch: int, step: int) -> None:
        """Count a skipped step; stop the run at :data:`MAX_NON_FINITE` in a row."""
        self.non_finite_in_a_row += 1
        if self.non_finite_in_a_row < MAX_NON_FINITE:
            return
        kept = f"last.pt (epoch {epoch}) is kept" if epoch else "no checkpoint was written yet"
        raise NonFiniteLoss(f"{self.run_dir}: loss was {loss} for {MAX_NON_FINITE} steps in a row at epoch "
                            f"{epoch + 1} step {step}; training stopped, {kept} (lower optim.lr, check the data, "
                            "or set train.amp=false)")

    def _step(self, loss: torch.Tensor) -> None:
        """Backward, clip, update and advance the schedule."""
        clip = self.config.optim.clip_grad
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()

    def _out_of_time(self) -> bool:
        """Whether the time budget is spent (decided on rank 0, so every rank stops at the same step)."""
        return self.budget.seconds is not None and broadcast_flag(self.budget.exhausted(), self.device)

    def validate(self) -> tuple[dict, float]:
        """Metrics over the validation split (reduced over ranks) and the mean validation loss."""
        matrix, loss_sum, count = confusion_over_loader(
            self.model, self._val_loader(), self.info.num_classes, self.info.classes.ignore_index, self.device,
            amp=self.amp, criterion=self.criterion, progress=self.progress, desc="validate")
        totals = all_reduce_sum(torch.tensor([loss_sum, float(count)], device=self.device, dtype=torch.float64))
        all_reduce_sum(matrix.matrix)
        metrics = compute_metrics(matrix.matrix, self.info.classes.names, self.info.classes.excluded_from_mean)
        metrics["classes_present"] = int((matrix.matrix.sum(1) > 0).sum())  # in the validation reference
        return metrics, float(totals[0] / max(totals[1], 1.0))

    def selection_score(self, record: dict) -> tuple[float, bool]:
        """An epoch's score for ``best.pt`` and whether the select metric gave it.

        Where the validation reference holds fewer than two classes (a few polygons of one class in
        the validation strip, or only label-set pixels) the metric cannot rank epochs (1.0 or NaN
        from the first one) and ``-val_loss`` decides instead, ties going to the later epoch.
        """
        score = metric_value(record["metrics"], self.config.train.select_metric)
        if math.isfinite(score) and record["metrics"].get("classes_present", 2) >= 2:
            return score, True
        return (-record["val_loss"] if math.isfinite(record["val_loss"]) else -math.inf), False

    def run_epoch(self, epoch: int) -> dict:
        """Train and validate one epoch; its log record (rank 0 writes checkpoints and logs)."""
        t0 = time.perf_counter()
        train_loss, speed, skipped = self.train_epoch(epoch)
        t_val = time.perf_counter()
        metrics, val_loss = self.validate()
        self.budget.reserve = time.perf_counter() - t_val
        select = self.config.train.select_metric
        record = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[-1]["lr"], "train_loss": train_loss,
                  "val_loss": val_loss, "mIoU": metrics["papers"]["mIoU"], "mF1": metrics["papers"]["mF1"],
                  "OA": metrics["papers"]["OA"], "all_mIoU": metrics["all"]["mIoU"], "all_mF1": metrics["all"]["mF1"],
                  "patches_per_s": speed, "seconds": time.perf_counter() - t0, "skipped_steps": skipped,
                  "metrics": metrics}
        self.status.history.append(record)
        score, scored = self.selection_score(record)
        improved = score > self.status.best if scored else score >= self.status.best
        if improved:
            self.status.best = score
        if self.env.is_main:
            self._write_epoch(epoch, metrics, improved)
            if self.progress:
                shown = f"{select} {100 * score:.2f}" if scored else f"{select} n/a (< 2 classes: val loss picks)"
                tqdm.write(f"epoch {epoch + 1}: train loss {train_loss:.4f}  val loss {val_loss:.4f}  {shown}"
                           f"{'  (best)' if improved else ''}  {speed:.1f} patches/s"
                           f"{f'  ({skipped} steps skipped: loss not finite)' if skipped else ''}")
        return record

    def fit(self) -> FitResult:
        """Run the remaining epochs, or until ``train.max_minutes`` is spent.

        Returns the best epoch and where its model file is.
        """
        if self.status.start_epoch >= self.epochs:
            raise RssegError(f"{self.run_dir}: run already finished {self.epochs} epochs (raise train.epochs to "
                             "go on)")
        if self.budget.exhausted():
            if not self.resumed:
                raise RssegError(f"{self.run_dir}: train.max_minutes {self.budget.seconds / 60:g} is spent before "
                                 "the first epoch could start; give it more time")
            raise RssegError(f"{self.run_dir}: run already spent its train.max_minutes "
                             f"({self.budget.seconds / 60:g}); raise it to go on")
        started = time.perf_counter()
        try:
            if self.env.is_main and not self.resumed:
                self.run.start(self.config.to_dict())
            barrier()
            for epoch in range(self.status.start_epoch, self.epochs):
                self.run_epoch(epoch)
                barrier()
                if self._out_of_time():
                    break
        except BaseException as err:
            if self.env.is_main and not self.run.state.is_file():
                self.run.discard()  # nothing to resume: leave the folder as it was
            elif self.env.is_main and isinstance(err, (KeyboardInterrupt, Terminated)):
                tqdm.write(f"{self.run_dir}: kept at its last finished epoch; continue with "
                           f"rsseg train --resume {self.run_dir}")
            raise
        finally:
            cleanup()
        return self._finish(time.perf_counter() - started)

    def _finish(self, seconds: float) -> FitResult:
        """Plots and the table of the best epoch (rank 0); the result."""
        select = self.config.train.select_metric
        ranked = [(*self.selection_score(h), i) for i, h in enumerate(self.status.history)]
        best = self.status.history[max(ranked, key=lambda r: (r[0], -r[2] if r[1] else r[2]))[2]]
        if self.env.is_main:
            self.run.write_plots(self.status.history, best, self.info.classes.names)
            if self.progress:
                tqdm.write(format_table(best["metrics"]))
        return FitResult(best, metric_value(best["metrics"], select), select, len(self.status.history), seconds,
                         self.run_dir, self.env.rank)


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
