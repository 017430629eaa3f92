"""The dataset registry: ``@register_dataset`` on a prepare function makes ``rsseg prepare NAME``.

Every public module of :mod:`rsseg.data.datasets` is imported on first use of the registry, and so
is every module named under the ``rsseg.datasets`` entry-point group (see :mod:`rsseg.plugins`).
A prepare function takes ``(src, out, patch, stride, *parameters, overwrite, progress)`` and
returns a :class:`~rsseg.data.prepare.PrepareResult`; the defaults of its signature are the
command's defaults.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from rsseg.data.prepare import PrepareResult
from rsseg.errors import RssegError
from rsseg.plugins import Registry

COMMON = ("src", "out", "patch", "stride", "overwrite", "progress")  # what every prepare function takes


@dataclass(frozen=True)
class DatasetParameter:
    """A keyword of one dataset's prepare function, offered as ``--NAME`` by its command."""

    name: str
    help: str  # noqa: A003 - click's word
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetEntry:
    """What the registry knows about a dataset: its name, a title, the source layout it reads and
    its prepare function with the dataset's own parameters."""

    name: str
    title: str
    layout: str
    prepare: Callable[..., PrepareResult]
    parameters: tuple[DatasetParameter, ...] = ()

    @property
    def help(self) -> str:  # noqa: A003 - click's word
        """One line: the title and the source layout."""
        return f"{self.title} ({self.layout})."

    def default(self, name: str) -> Any:
        """The default of the prepare function's parameter ``name``."""
        return inspect.signature(self.prepare).parameters[name].default


DATASETS: Registry[DatasetEntry] = Registry("dataset", "rsseg.data.datasets", "rsseg.datasets")


def register_dataset(name: str, *, title: str, layout: str, parameters: tuple[DatasetParameter, ...] = ()
                     ) -> Callable:
    """Decorator registering a prepare function under ``name``.

    ``layout`` describes the source folder as downloaded; ``parameters`` are the function's
    keywords beyond the common ones (:data:`COMMON`), each with a default in its signature.
    """

    def wrap(prepare: Callable[..., PrepareResult]) -> Callable[..., PrepareResult]:
        signature = inspect.signature(prepare).parameters
        missing = [p for p in (*COMMON, *(q.name for q in parameters)) if p not in signature]
        undefaulted = [q.name for q in parameters if q.name in signature
                       and signature[q.name].default is inspect.Parameter.empty]
        if missing or undefaulted:
            raise RssegError(f"dataset {name!r}: {prepare.__qualname__} must take {', '.join(missing)}"
                             if missing else f"dataset {name!r}: give {', '.join(undefaulted)} a default")
        DATASETS.add(name, DatasetEntry(name, title, layout, prepare, tuple(parameters)))
        return prepare

    return wrap


def list_datasets() -> list[DatasetEntry]:
    """All registered datasets, sorted by name."""
    return DATASETS.entries()


def get_dataset(name: str) -> DatasetEntry:
    """The registry entry of ``name``, or a clear error listing the known names."""
    return DATASETS.get(name)
