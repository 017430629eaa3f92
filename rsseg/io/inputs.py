"""Scene arguments: files, folders, glob patterns and ``@list.txt`` files of paths."""

from __future__ import annotations

import glob
from pathlib import Path

from rsseg.errors import RssegError

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".jp2", ".img"}  # what a folder argument contributes


def expand_inputs(args: list[str]) -> list[Path]:
    """Scene paths in argument order, duplicates dropped.

    ``@FILE`` reads one path (or folder, or pattern) per line, ``#`` comments and blank lines
    skipped, relative paths taken from FILE's folder; a folder gives its raster files
    (``.tif``, ``.tiff``, ``.vrt``, ``.jp2``, ``.img``) in name order; a pattern with ``*``,
    ``?`` or ``[`` that names no existing file or folder gives its matches. An existing file is
    itself, whatever its name holds. Other arguments are kept as given (a missing file is
    reported when its scene is run).
    """
    scenes: dict[Path, None] = {}
    for arg in args:
        for path in _expand(arg, None):
            scenes.setdefault(path, None)
    return list(scenes)


def _expand(arg: str, base: Path | None) -> list[Path]:
    """One argument (``base``: the folder of the list file it came from)."""
    path = Path(arg) if base is None else base / arg
    if path.is_file():  # an existing file is that file, whatever its name holds (`@`, `*`, `?`, `[`)
        return [path]
    if arg.startswith("@"):
        listing = Path(arg[1:]) if base is None else base / arg[1:]
        try:
            lines = listing.read_text().splitlines()
        except OSError as err:
            raise RssegError(f"{listing}: cannot read the list of scenes ({err.strerror})") from None
        paths = [line.strip() for line in lines]
        return [p for line in paths if line and not line.startswith("#") for p in _expand(line, listing.parent)]
    if any(c in arg for c in "*?[") and not path.exists():
        matches = sorted(glob.glob(str(path)))
        if not matches:
            raise RssegError(f"{arg}: no file matches this pattern")
        return [Path(m) for m in matches]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
        if not found:
            raise RssegError(f"{path}: folder holds no raster files ({', '.join(sorted(RASTER_SUFFIXES))})")
        return found
    return [path]
