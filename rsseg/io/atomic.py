"""Write outputs under a temporary name and rename them only when complete.

While ``NAME`` is being written, everything of the run lives beside it under one prefix
``.NAME.rsseg-PID-TOKEN``: the temporary output ``….tmp[.SUFFIX]`` with its sidecars, scratch
folders, and a ``….lock`` file locked (``flock``) for as long as the run holds the output.
Another run that finds the lock held refuses the output; one that can take the lock (the
owner died, even by SIGKILL) removes that prefix's files. So two runs never both report
success for one file, and a rerun removes what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from rsseg.errors import RssegError
from rsseg.interrupts import signals_deferred

TAG = ".rsseg-"
NAME_BYTES = 120  # of the output name kept in temporary names (a long name must leave room for the rest)
_OWNER = re.compile(r"(\d+)-([0-9a-z_]+)")


def check_output(path: str | os.PathLike, overwrite: bool, folder: bool = False) -> Path:
    """Refuse an existing output unless ``overwrite``, a folder in a file's place, or a missing parent folder."""
    path = Path(path)
    try:
        path.lstat()
    except FileNotFoundError:
        pass
    except OSError as err:
        raise RssegError(f"{str(path)[:80]}…: {err.strerror}") from None
    if path.is_dir() != folder and path.exists():
        raise RssegError(f"{path}: is a file, not a folder" if folder else f"{path}: is a folder, not an output file")
    if path.exists() and not overwrite:
        raise RssegError(f"{path}: output exists (use `overwrite` to replace it)")
    if not path.parent.is_dir():
        raise RssegError(f"{path}: output folder {path.parent} does not exist")
    return path


def _name_key(final: Path) -> str:
    """``.NAME.rsseg-``, the start of every temporary name of ``final`` (NAME cut to NAME_BYTES)."""
    name = final.name.encode()[:NAME_BYTES].decode(errors="ignore")
    return f".{name}{TAG}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _lock_is_held(lock: Path) -> bool:
    """Whether a live process holds ``lock`` (a lock that cannot be opened counts as held)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _groups(final: Path) -> dict[str, list[Path]]:
    """The temporary files of ``final`` in its folder, grouped by run prefix ``.NAME.rsseg-PID-TOKEN``."""
    key = _name_key(final)
    groups: dict[str, list[Path]] = {}
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return groups
    for entry in entries:
        if not entry.name.startswith(key):
            continue
        owner = _OWNER.match(entry.name, len(key))
        if owner:
            groups.setdefault(entry.name[:owner.end()], []).append(Path(entry.path))
    return groups


def claim_conflicts(final: Path, own: str | None = None) -> int | None:
    """Remove temporaries of ``final`` whose run is gone; the PID of a live run writing it, if any."""
    key = _name_key(final)
    for prefix, paths in _groups(final).items():
        if prefix == own:
            continue
        pid = int(_OWNER.match(prefix, len(key)).group(1))
        lock = Path(final.parent, prefix + ".lock")
        live = _lock_is_held(lock) if lock in paths else (pid == os.getpid() or _alive(pid))
        if live:
            if lock in paths:
                return pid
            continue
        for path in sorted(paths, key=lambda p: p == lock):  # the lock last
            _remove(path)
    return None


class OutputClaim:
    """The right to write ``final``: a locked lock file, a temporary path, and the rename when done."""

    def __init__(self, final: Path, suffix: str | None = None):
        self.final = final
        self.prefix = f"{_name_key(final)}{os.getpid()}-{secrets.token_hex(4)}"
        self.suffix = final.suffix if suffix is None else suffix
        self.tmp = final.with_name(self.prefix + ".tmp" + self.suffix)
        self.lock = final.with_name(self.prefix + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, clean stale temporaries, refuse when another live run writes ``final``."""
        try:
            self._fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as err:
            raise RssegError(f"{self.final}: cannot write in {self.final.parent} ({err.strerror})") from None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        other = claim_conflicts(self.final, own=self.prefix)
        if other is not None:
            self.discard()
            raise RssegError(f"{self.final}: another rsseg run (pid {other}) is writing this output right now")

    def _own(self) -> list[Path]:
        return _groups(self.final).get(self.prefix, [])

    def outputs(self) -> list[tuple[Path, Path]]:
        """(temporary, final) pairs: the temporary output and its sidecars (same literal prefix).

        A sidecar of ``TMP.SUFFIX`` is named after the output: ``TMP.SUFFIX.aux.xml`` becomes
        ``NAME.aux.xml``, ``TMP.shx`` (beside ``TMP.shp``) becomes ``STEM.shx``.
        """
        start = self.prefix + ".tmp"
        pairs = [(self.tmp, self.final)]
        for path in self._own():
            rest = path.name[len(start):] if path.name.startswith(start) else ""
            if path == self.tmp or not rest.startswith("."):
                continue
            if self.suffix and rest.startswith(self.suffix + "."):
                name = self.final.name + rest[len(self.suffix):]
            else:
                name = self.final.stem + rest
            pairs.append((path, self.final.with_name(name)))
        return pairs

    def commit(self, overwrite: bool) -> None:
        """Rename the temporary output and its sidecars to their final names; release the claim."""
        if not self.tmp.exists():
            raise RssegError(f"{self.final}: nothing was written")
        if self.final.exists() and not overwrite:
            raise RssegError(f"{self.final}: output appeared while this run was writing it; kept it")
        with signals_deferred():
            for tmp, final in self.outputs():
                if tmp.is_dir() and final.is_dir():
                    old = final.with_name(self.prefix + ".old")
                    os.replace(final, old)
                    os.replace(tmp, final)
                else:
                    os.replace(tmp, final)
            self.discard()

    def discard(self) -> None:
        """Remove everything of this claim (the lock last)."""
        for path in self._own():
            if path != self.lock:
                _remove(path)
        self.lock.unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def replaced_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``, renamed over ``path`` if the block succeeds, else removed.

    The light form of :func:`atomic_output` for files only this process writes (journal bands,
    style sidecars): no existence check, no lock.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False, folder: bool = False,
                  suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it (and sidecars) to ``path`` on success.

    Sidecar files written next to the temporary file with the same name before its suffix
    (``.shx``, ``.dbf``, ``.prj`` of a Shapefile, ``.aux.xml``) are renamed along with it; a
    temporary folder replaces a folder. On any error or interruption every temporary file is
    removed, so no half-written output is left behind. ``folder``: the output is a folder
    (created by the caller at the temporary path). ``suffix``: of the temporary path, when the
    writer needs one the output name lacks (GDAL picks some formats by suffix).
    """
    claim = OutputClaim(check_output(path, overwrite, folder), suffix)
    claim.acquire()
    try:
        yield claim.tmp
        claim.commit(overwrite)
    except BaseException:
        claim.discard()
        raise


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, suffix: str | None = None) -> Iterator[OutputClaim]:
    """Hold the claim of output ``path``: refuse it while another live run holds it. The caller may
    write its temporary path and :meth:`~OutputClaim.commit`; whatever is left is removed on exit."""
    claim = OutputClaim(Path(path), suffix)
    claim.acquire()
    try:
        yield claim
    finally:
        claim.discard()
