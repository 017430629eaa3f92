"""A resume journal: finished bands of rows of one scene's outputs, kept beside the final output.

The folder ``.NAME.partial`` next to output ``NAME`` holds ``journal.json`` (a key that hashes the
model and every option that changes the result) and one file per finished band of rows, written
under a temporary name and renamed, so a band file exists only when complete. A process killed
at any point (SIGKILL included) leaves bands that a rerun with the same key reuses; a different
key starts the scene afresh. Each band file is written by exactly one process.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rsseg.io.atomic import replaced_atomically

JOURNAL = "journal.json"
BAND_ROWS = 512  # rows per band: the writer's block height, so a band is whole block rows

_digests: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers (cached per model object)."""
    if model not in _digests:
        h = hashlib.sha256()
        for name, tensor in model.state_dict().items():
            h.update(name.encode())
            h.update(str(tensor.dtype).encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        _digests[model] = h.hexdigest()
    return _digests[model]


def run_key(**fields) -> str:
    """A short hash of everything that changes a scene's result (JSON-serialisable fields)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]


def partial_dir(out: Path) -> Path:
    """The journal folder of output ``out``."""
    return out.with_name(f".{out.name}.partial")


def journal_key(out: Path) -> str | None:
    """The key of the journal beside ``out`` (``None`` without a readable one)."""
    try:
        return json.loads((partial_dir(out) / JOURNAL).read_text())["key"]
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class Band:
    """Scene rows ``[y0, y1)``."""

    index: int
    y0: int
    y1: int


def split_bands(height: int, rows: int = BAND_ROWS) -> list[Band]:
    """Consecutive bands of ``rows`` rows (the last one shorter)."""
    return [Band(i, y, min(y + rows, height)) for i, y in enumerate(range(0, height, rows))]


class BandJournal:
    """Finished bands of one output, stored as compressed arrays (``mask``, ``probs``, ...)."""

    def __init__(self, folder: Path, key: str, bands: list[Band]):
        self.folder, self.key, self.bands = folder, key, bands

    @classmethod
    def open(cls, out: Path, key: str, height: int, restart: bool = False, create: bool = True,
             band_rows: int = BAND_ROWS) -> BandJournal:
        """The journal of ``out``: kept if its key matches, else (or with ``restart``) emptied.

        ``create=False`` only attaches to a folder another process prepares.
        """
        journal = cls(partial_dir(out), key, split_bands(height, band_rows))
        if create:
            if restart or journal_key(out) != key:
                journal.remove()
            journal.folder.mkdir(exist_ok=True)
            path = journal.folder / JOURNAL
            if not path.exists():
                with replaced_atomically(path) as tmp:
                    tmp.write_text(json.dumps({"key": key, "height": height, "band_rows": band_rows}))
        return journal

    def _path(self, band: Band) -> Path:
        return self.folder / f"rows-{band.y0:09d}-{band.y1:09d}.npz"

    def done(self, band: Band) -> bool:
        return self._path(band).exists()

    def first_missing_row(self) -> int:
        """The first row of the first band not yet finished (the height when all are)."""
        return next((b.y0 for b in self.bands if not self.done(b)), self.bands[-1].y1 if self.bands else 0)

    def save(self, band: Band, arrays: dict[str, np.ndarray]) -> None:
        """Store a finished band (uint8 arrays), atomically."""
        with replaced_atomically(self._path(band)) as tmp, \
                zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name, array in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)

    def load(self, band: Band) -> dict[str, np.ndarray]:
        """The arrays of a finished band."""
        with np.load(self._path(band), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def remove(self) -> None:
        """Delete the journal folder and everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
