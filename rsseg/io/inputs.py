"""Scene arguments: files, folders, glob patterns and ``@list.txt`` files of paths."""

from __future__ import annotations

import glob
from pathlib import Path

from rsseg.errors import RssegError
from rsseg.io.remote import Scene, is_remote, remote_scene
from rsseg.io.stac_item import is_stac_item, item_scene

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".jp2", ".img"}  # what a folder argument contributes


def expand_inputs(args: list[str], asset: str | None = None, download_whole: bool = False) -> list[Scene]:
    """Scene paths in argument order, duplicates dropped.

    A URL (``https://``, ``s3://``, ``/vsicurl/``...) is a remote scene (:mod:`rsseg.io.remote`);
    a ``.json`` file or URL is a STAC Item, whose image asset is the scene (``asset``, or by role:
    :func:`rsseg.io.stac_item.item_scene`); ``download_whole`` lets remote scenes on servers without
    range requests be downloaded whole.
    ``@FILE`` reads one path (or folder, or pattern) per line, ``#`` comments and blank lines
    skipped, relative paths taken from FILE's folder; a folder gives its raster files
    (``.tif``, ``.tiff``, ``.vrt``, ``.jp2``, ``.img``) in name order; a pattern with ``*``,
    ``?`` or ``[`` that names no existing file or folder gives its matches. An existing file is
    itself, whatever its name holds. Other arguments are kept as given (a missing file is
    reported when its scene is run).
    """
    scenes: dict[Scene, None] = {}
    for arg in args:
        for path in _expand(arg, None, asset, download_whole):
            scenes.setdefault(path, None)
    return list(scenes)


def _expand(arg: str, base: Path | None, asset: str | None, download_whole: bool,
            lists: tuple[Path, ...] = ()) -> list[Scene]:
    """One argument (``base``: the folder of the list file it came from; ``lists``: the list files
    being read, outermost first)."""
    path = Path(arg) if base is None else base / arg
    if is_stac_item(arg):
        return [item_scene(arg if is_remote(arg) or base is None else str(base / arg), asset, download_whole)]
    if is_remote(arg):
        return [remote_scene(arg, download_whole)]
    if path.is_file():  # an existing file is that file, whatever its name holds (`@`, `*`, `?`, `[`)
        return [path]
    if arg.startswith("@"):
        listing = Path(arg[1:]) if base is None else base / arg[1:]
        if listing.resolve() in lists:
            raise RssegError(f"{listing}: the list of scenes includes itself")
        try:
            lines = listing.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            why = getattr(err, "strerror", None) or "not a text file"
            raise RssegError(f"{listing}: cannot read the list of scenes ({why})") from None
        paths = [line.strip() for line in lines]
        found = [p for line in paths if line and not line.startswith("#")
                 for p in _expand(line, listing.parent, asset, download_whole, (*lists, listing.resolve()))]
        if not found:
            raise RssegError(f"{listing}: the list of scenes names no scene")
        return found
    if any(c in arg for c in "*?[") and not path.exists():
        matches = sorted(glob.glob(str(path)))
        if not matches:
            raise RssegError(f"{arg}: no file matches this pattern")
        return [Path(m) for m in matches]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
        if not found:
            raise RssegError(f"{path}: folder holds no raster files ({', '.join(sorted(RASTER_SUFFIXES))})")
        return list(found)
    return [path]
