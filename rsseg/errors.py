"""The exception types the CLI turns into a one-line error and a non-zero exit."""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

GENERIC = ("see previous exception", "read or write failed", "read failed", "write failed")


class RssegError(Exception):
    """A user-facing error: the message names the file and what is wrong with it."""


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The first line of ``err``'s message (its type name when empty), at most ``limit`` characters."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]


def reason(err: BaseException, limit: int = 160) -> str:
    """The most telling one-line cause of ``err``: GDAL's own message rather than rasterio's
    "Read failed. See previous exception for details." (followed through ``__cause__``/``__context__``)."""
    seen: set[int] = set()
    lines = []
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if str(link).strip():
            lines.append(first_line(link))
        link = link.__cause__ or link.__context__
    specific = [line for line in lines if not any(g in line.lower() for g in GENERIC)]
    return (specific[-1] if specific else lines[0] if lines else "unknown error")[:limit]


@contextlib.contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect the messages of the user warnings raised inside, every one (filled on exit)."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield messages
    messages.extend(str(w.message) for w in caught)


class OptionError(RssegError):
    """A parameter value the library refuses: ``option`` is its keyword (``tile``, ``tta``, ...).

    The library message reads ``tile=100: must be a multiple of 32``; the CLI, which knows the
    flag, reports ``--tile 100: must be a multiple of 32`` (:func:`rsseg.cli.flags.cli_message`).
    """

    def __init__(self, option: str, value: object, problem: str):
        super().__init__(f"{option}={value}: {problem}")
        self.option, self.value, self.problem = option, value, problem
