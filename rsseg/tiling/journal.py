"""A resume journal: finished bands of rows of one scene's outputs, kept beside the final output.

The folder ``.NAME.partial`` next to output ``NAME`` holds ``journal.json`` (a key that hashes the
model and every option that changes the result) and one file per finished band of rows, written
under a temporary name and renamed, so a band file exists only when complete. A process killed
at any point (SIGKILL included) leaves bands that a rerun with the same key reuses; a different
key starts the scene afresh. Each band file is written by exactly one process.

A band file holds its arrays and a SHA-256 over the key, its row range and the arrays, and is
checked (readable, arrays, shapes, class ids, checksum) before a rerun trusts it. ``renamed.json``
lists the outputs the run renamed into place (with their inode, size and time), so a rerun
replaces only those, never a file that merely sits where an output goes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rsseg.errors import RssegError
from rsseg.io.atomic import replaced_atomically
from rsseg.io.mask_meta import NODATA

JOURNAL = "journal.json"
RENAMED = "renamed.json"
CHECKSUM = "_sha256"  # the array of a band file that holds its checksum
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
    return journal_field(out, "key")


def journal_field(out: Path, name: str):
    """A field of the journal beside ``out`` (``None`` without a readable one)."""
    try:
        return json.loads((partial_dir(out) / JOURNAL).read_text())[name]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _identity(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def renamed_outputs(out: Path, key: str) -> set[str]:
    """The outputs (absolute paths) that the journal of ``out`` with this ``key`` renamed into
    place and that are still those very files: the only existing files a resumed run replaces."""
    if journal_key(out) != key:
        return set()
    try:
        files = json.loads((partial_dir(out) / RENAMED).read_text())
        return {path for path, ident in files.items() if _identity(Path(path)) == ident}
    except (OSError, ValueError, AttributeError):
        return set()


def _checksum(key: str, band: Band, arrays: dict[str, np.ndarray]) -> np.ndarray:
    h = hashlib.sha256(f"{key}:{band.y0}:{band.y1}".encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        h.update(array.tobytes())
    return np.frombuffer(h.digest(), np.uint8)


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
             band_rows: int = BAND_ROWS, scene: dict | None = None) -> BandJournal:
        """The journal of ``out``: kept if its key matches, else (or with ``restart``) emptied.

        ``create=False`` only attaches to a folder another process prepares; ``scene`` (what
        identifies the scene's content) is kept in the journal for :func:`journal_field`.
        """
        journal = cls(partial_dir(out), key, split_bands(height, band_rows))
        if create:
            if restart or journal_key(out) != key:
                journal.remove()
            try:
                journal.folder.mkdir(exist_ok=True)
                path = journal.folder / JOURNAL
                if not path.exists():
                    with replaced_atomically(path) as tmp:
                        tmp.write_text(json.dumps({"key": key, "height": height, "band_rows": band_rows,
                                                  "scene": scene}))
            except OSError as err:
                raise RssegError(f"{out}: cannot keep the resume journal {journal.folder.name[:60]} "
                                 f"({err.strerror})") from None
        return journal

    def _path(self, band: Band) -> Path:
        return self.folder / f"rows-{band.y0:09d}-{band.y1:09d}.npz"

    def done(self, band: Band) -> bool:
        return self._path(band).exists()

    def first_missing_row(self) -> int:
        """The first row of the first band not yet finished (the height when all are)."""
        return next((b.y0 for b in self.bands if not self.done(b)), self.bands[-1].y1 if self.bands else 0)

    def save(self, band: Band, arrays: dict[str, np.ndarray]) -> None:
        """Store a finished band (uint8 arrays) with its checksum, atomically."""
        try:
            with replaced_atomically(self._path(band)) as tmp, \
                    zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for name, array in {**arrays, CHECKSUM: _checksum(self.key, band, arrays)}.items():
                    with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
        except OSError as err:
            raise RssegError(f"{self.folder}: cannot save a band of the resume journal ({err.strerror})") from None

    def load(self, band: Band) -> dict[str, np.ndarray]:
        """The arrays of a finished band (its checksum left out)."""
        with np.load(self._path(band), allow_pickle=False) as data:
            return {name: data[name] for name in data.files if name != CHECKSUM}

    def _fault(self, band: Band, shapes: dict[str, tuple[int, ...]], width: int, num_classes: int) -> str | None:
        """What is wrong with a finished band's file (``None`` when it can be trusted)."""
        try:
            with np.load(self._path(band), allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except Exception as err:  # noqa: BLE001 (truncated, empty, not a zip of arrays: whatever numpy raises)
            return f"unreadable ({type(err).__name__})"
        stored = arrays.pop(CHECKSUM, None)
        if set(arrays) != set(shapes):
            return f"holds {sorted(arrays)}, not {sorted(shapes)}"
        for name, lead in shapes.items():
            shape = (*lead, band.y1 - band.y0, width)
            if arrays[name].dtype != np.uint8 or arrays[name].shape != shape:
                return f"{name} is {arrays[name].dtype} {arrays[name].shape}, not uint8 {shape}"
        mask = arrays.get("mask")
        if mask is not None and np.any((mask >= num_classes) & (mask != NODATA)):
            return f"class ids beyond the model's {num_classes} classes"
        if stored is None or not np.array_equal(stored, _checksum(self.key, band, arrays)):
            return "checksum does not match"
        return None

    def verify(self, shapes: dict[str, tuple[int, ...]], width: int, num_classes: int) -> list[Band]:
        """Remove every finished band whose file fails its checks, with one warning; the bands removed.

        ``shapes``: the leading dimensions of each array (``()`` for the mask, ``(C,)`` for C bands).
        """
        bad = [(band, fault) for band in self.bands if self.done(band)
               for fault in [self._fault(band, shapes, width, num_classes)] if fault]
        for band, _ in bad:
            path = self._path(band)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        if bad:
            band, fault = bad[0]
            warnings.warn(f"{self.folder}: {len(bad)} damaged band(s) of the resume journal recomputed "
                          f"(rows {band.y0}-{band.y1}: {fault})", stacklevel=2)
        return [band for band, _ in bad]

    def mark_renamed(self, paths: list[Path]) -> None:
        """Record outputs this run renamed into place (a killed rerun may replace exactly these)."""
        path = self.folder / RENAMED
        try:
            files = json.loads(path.read_text())
        except (OSError, ValueError):
            files = {}
        files.update({os.path.abspath(p): _identity(p) for p in paths})
        with replaced_atomically(path) as tmp:
            tmp.write_text(json.dumps(files))

    def remove(self) -> None:
        """Delete the journal folder and everything in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
