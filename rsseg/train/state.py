"""The resumable state of a run: model, optimizer, scheduler, AMP scaler, random generators, progress.

Saved as tensors, lists and numbers only, so that it loads with ``weights_only=True`` (never code).
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rsseg.errors import RssegError, reason
from rsseg.io.atomic import atomic_output


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every random generator's state as tensors, lists and numbers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": {"version": version, "internal": list(internal), "gauss": python_gauss}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Progress:
    """How far a run got: the next epoch, the best score, the epoch records and the seconds spent."""

    start_epoch: int = 0
    best: float = -math.inf
    history: list[dict] = field(default_factory=list)
    seconds_spent: float = 0.0


@dataclass
class TrainingState:
    """What a resumed run needs besides its config: the live objects whose states are saved."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    def save(self, path: str | os.PathLike, epoch: int, progress: Progress) -> None:
        """Write the state after ``epoch`` (0-based) atomically."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "epoch": epoch,
                 "best": progress.best, "history": progress.history, "rng": rng_state(),
                 "seconds_spent": progress.seconds_spent}
        with atomic_output(path, overwrite=True) as tmp:
            torch.save(state, tmp)

    def load(self, path: str | os.PathLike) -> Progress:
        """Restore every state saved in ``path``; the progress it records."""
        path = Path(path)
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
            progress = Progress(int(state["epoch"]) + 1, float(state["best"]), list(state["history"]),
                                float(state.get("seconds_spent", 0.0)))
            set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
            raise RssegError(f"{path}: training state does not fit this run ({type(err).__name__}: "
                             f"{reason(err, 100)})") from None
        return progress
