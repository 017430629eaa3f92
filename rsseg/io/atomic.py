"""Write outputs under a temporary name and rename them only when complete."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

from rsseg.errors import RssegError


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``; check its folder exists."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise RssegError(f"{path}: output exists (use --overwrite to replace it)")
    if not path.parent.exists():
        raise RssegError(f"{path}: output folder {path.parent} does not exist")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it (and sidecars) to ``path`` on success.

    Sidecar files written next to the temporary file with the same stem (``.shx``,
    ``.dbf``, ``.prj`` of a Shapefile, ``.aux.xml``) are renamed along with it. On any
    error every temporary file is removed, so no half-written output is left behind.
    """
    final = check_output(path, overwrite)
    tmp_stem = f".{final.stem}.tmp-{uuid.uuid4().hex[:8]}"
    tmp = final.with_name(tmp_stem + final.suffix)

    def siblings() -> list[Path]:
        return [p for p in final.parent.glob(tmp_stem + ".*")]

    try:
        yield tmp
    except BaseException:
        for p in siblings():
            p.unlink(missing_ok=True)
        raise
    for p in siblings():
        target = final.with_name(final.stem + p.name[len(tmp_stem):])
        os.replace(p, target)
