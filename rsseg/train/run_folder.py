"""The run folder: checked before anything is created, started, discarded if the run fails early,
and written after each epoch (logs, plots)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import yaml

from rsseg.errors import RssegError
from rsseg.interrupts import signals_deferred
from rsseg.io.atomic import TAG, atomic_output
from rsseg.train.plots import plot_confusion, plot_curves

CONFIG_FILE = "config.yaml"
STATE_FILE = "state.pt"
RESULT_FILES = (STATE_FILE, "best.pt", "last.pt", "log.csv", "log.json", "curves.png", "confusion.png")
LOG_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "mIoU", "mF1", "OA", "all_mIoU", "all_mF1",
              "patches_per_s", "seconds", "skipped_steps")


class RunFolder:
    """The folder of one run: ``config.yaml``, ``state.pt``, ``best.pt``, ``last.pt``, logs and plots."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.created: list[Path] = []  # what this run created, removed by discard()

    @property
    def state(self) -> Path:
        return self.path / STATE_FILE

    def holds_results(self) -> bool:
        """Whether the folder holds anything besides a config and rsseg temporaries (safe to start again)."""
        return any(p.name != CONFIG_FILE and TAG not in p.name for p in self.path.iterdir())

    def check(self, data_root: str | os.PathLike, resume: bool, overwrite: bool) -> None:
        """Refuse a folder that cannot be used, before anything is created."""
        path, data = self.path, Path(data_root)
        if path.exists() and data.exists() and os.path.samefile(path, data):
            raise RssegError(f"{path}: the run folder is the patch folder; choose another `out`")
        if resume:
            if not self.state.is_file():
                raise RssegError(f"{self.state}: no training state to resume from")
            return
        if path.exists() and not path.is_dir():
            raise RssegError(f"{path}: is a file, not a run folder")
        existing = next(p for p in (path, *path.absolute().parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RssegError(f"{path}: cannot write in {existing}")
        if path.exists() and self.holds_results() and not overwrite:
            raise RssegError(f"{path}: run folder is not empty (use `resume` to continue it or `overwrite` "
                             "to start again)")

    def start(self, config: dict) -> None:
        """Create the folder (or clear a previous run's results) and write ``config``."""
        with signals_deferred():
            if not self.path.exists():
                self.path.mkdir(parents=True)
                self.created.append(self.path)
            self.created.append(self.path / CONFIG_FILE)
        for name in RESULT_FILES:
            (self.path / name).unlink(missing_ok=True)
        with atomic_output(self.path / CONFIG_FILE, overwrite=True) as tmp:
            tmp.write_text(yaml.safe_dump(config, sort_keys=False))

    def discard(self) -> None:
        """Remove the results and what :meth:`start` created (a run that failed before finishing an
        epoch leaves the folder as it was)."""
        for name in RESULT_FILES:
            (self.path / name).unlink(missing_ok=True)
        for path in reversed(self.created):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.created = []

    def write_logs(self, history: Sequence[dict]) -> None:
        """``log.json`` (every record, metrics included) and ``log.csv`` (:data:`LOG_FIELDS`)."""
        with atomic_output(self.path / "log.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(list(history), indent=1))
        with atomic_output(self.path / "log.csv", overwrite=True) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, LOG_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)

    def write_plots(self, history: Sequence[dict], best: dict, class_names: Sequence[str]) -> None:
        """``curves.png`` over all epochs and ``confusion.png`` of the ``best`` epoch."""
        plot_curves(history, self.path / "curves.png")
        plot_confusion(best["metrics"]["confusion_matrix"], class_names, self.path / "confusion.png",
                       title=f"validation, epoch {best['epoch']}")
