"""Every output of a command checked before any work starts, against the inputs and each other."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

from rsseg.errors import RssegError, reason
from rsseg.io.atomic import check_output
from rsseg.io.remote import RemoteScene


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through symlinks, ``..`` and hard links)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def run_record_path(out: str | os.PathLike) -> Path:
    """The JSON record of a prediction run, beside its mask: ``OUT-STEM.json``."""
    return Path(out).with_suffix(".json")


def check_writable(path: Path) -> None:
    """Refuse a file name the file system cannot hold or a folder this process cannot write in."""
    folder = path.parent
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    size = len(path.name.encode())
    if size > limit:
        raise RssegError(f"{path.name[:40]}…: file name is {size} bytes, longer than the {limit} allowed in {folder}")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise RssegError(f"{path}: output folder {folder} is not writable")


def check_geotiff_name(label: str, path: Path) -> None:
    """Refuse a GeoTIFF output named with another raster format's suffix (``m.png``, ``p.jpg``)."""
    from rasterio.drivers import raster_driver_extensions

    driver = raster_driver_extensions().get(path.suffix.lower().lstrip("."), "GTiff")
    if driver != "GTiff":
        raise RssegError(f"{path}: {label} is written as a GeoTIFF, not {driver}; name it .tif")



FULL_BYTES = 2**20  # free space under which a failed write is put down to a full disk


def write_failed(path: Path, err: BaseException) -> RssegError:
    """The one-line error of a write to ``path`` that failed: a full disk named as such (GDAL's
    own messages then speak of the blocks it could not read back)."""
    try:
        stats = os.statvfs(path.parent)
        full = stats.f_bavail * stats.f_frsize < FULL_BYTES
    except OSError:
        full = False
    why = "no space left on device" if full else reason(err)
    return RssegError(f"{path}: cannot write it ({why})")


def check_output_folder(folder: Path) -> None:
    """Refuse an output folder that cannot be created or written in: under a file, read-only."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RssegError(f"{folder}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RssegError(f"{folder}: {ancestor} is not writable")


def make_output_folder(folder: Path) -> bool:
    """Create ``folder`` (and its parents) if missing, after :func:`check_output_folder`; whether it was created."""
    check_output_folder(folder)
    if folder.is_dir():
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RssegError(f"{folder}: cannot create the output folder ({err.strerror})") from None
    return True


def check_outputs(outputs: Mapping[str, Path | None], inputs: Iterable[str | os.PathLike | RemoteScene | None],
                  overwrite: bool, folders: Iterable[str] = (), replaceable: Iterable[str] = ()) -> None:
    """Check every output before any work: its folder exists and is writable, its name fits, it does
    not exist (unless ``overwrite``), and it coincides with no input and no other output.

    ``outputs`` maps what the caller calls an output (a parameter in backticks, ```probs```,
    which the CLI shows as its flag; or words) to its path; the labels in ``folders`` are folder
    outputs, which must not hold an input either. ``replaceable``: absolute paths that may be
    replaced without ``overwrite`` (what a killed run of the same job renamed into place).
    """
    folders, replaceable = set(folders), set(replaceable)
    given = [Path(p) for p in inputs if p is not None and not isinstance(p, RemoteScene)]
    checked: dict[str, Path] = {}
    for label, path in outputs.items():
        if path is None:
            continue
        path = Path(path)
        check_writable(path)
        check_output(path, overwrite or os.path.abspath(path) in replaceable, folder=label in folders)
        for source in given:
            if _same(path, source) or (label in folders and path.exists() and _inside(source, path)):
                raise RssegError(f"{path}: {label} would overwrite the input {source}")
        for other_label, other in checked.items():
            if _same(path, other):
                raise RssegError(f"{path}: given both as {other_label} and {label}; one would be lost")
        checked[label] = path
