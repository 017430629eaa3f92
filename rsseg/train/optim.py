"""The optimizer and the learning-rate schedule: AdamW, warm-up, cosine, poly or restarts, a frozen backbone."""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from rsseg.models.encoders import TimmEncoder
from rsseg.train.budget import TimeBudget
from rsseg.train.config import OptimConfig


def encoder_modules(model: nn.Module) -> list[nn.Module]:
    """The backbone: any :class:`TimmEncoder` or submodule named ``encoder``/``backbone``."""
    return [module for name, module in model.named_modules()
            if isinstance(module, TimmEncoder) or name.rsplit(".", 1)[-1] in ("encoder", "backbone")]


def encoder_parameters(model: nn.Module) -> set[int]:
    """Ids of backbone parameters."""
    return {id(p) for module in encoder_modules(model) for p in module.parameters()}


def freeze_encoder(model: nn.Module) -> None:
    """No gradients for the backbone (``optim.encoder_lr: 0``); its BatchNorm statistics stay as
    loaded while training (see :meth:`rsseg.train.trainer.Trainer.train_epoch`)."""
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


def restart_progress(step: int, t0: int, t_mult: float) -> float:
    """How far ``step`` is into its cycle, in [0, 1), for cycles of ``t0``, ``t0 * t_mult``, ... steps
    (SGDR, Loshchilov & Hutter 2017; :class:`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`)."""
    cycle = float(max(1, t0))
    while step >= cycle:
        step -= int(cycle)
        cycle = max(1.0, float(int(cycle * t_mult)))
    return step / cycle


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float, power: float,
              budget: TimeBudget | None = None, t0: int = 1, t_mult: float = 2.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine or poly decay to ``min_ratio`` at ``total``
    steps or when ``budget`` is spent, whichever comes first; ``cosine_restarts`` instead decays
    to ``min_ratio`` over cycles of ``t0``, ``t0 * t_mult``, ... steps and restarts at full rate."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine_restarts":
        progress = restart_progress(step - warmup, t0, t_mult)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), budget.fraction() if budget else 0.0))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else (1 - progress) ** power
    return min_ratio + (1 - min_ratio) * decay


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig, total_steps: int, steps_per_epoch: int,
                    budget: TimeBudget | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-step schedule of :func:`lr_factor` (warm-up of ``optim.warmup_epochs`` epochs, restart
    cycles of ``optim.t0_epochs`` epochs growing by ``optim.t_mult``)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
        lr_factor, total=total_steps, warmup=int(optim.warmup_epochs * steps_per_epoch), schedule=optim.schedule,
        min_ratio=optim.min_lr_ratio, power=optim.poly_power, budget=budget,
        t0=max(1, round(optim.t0_epochs * steps_per_epoch)), t_mult=optim.t_mult))
