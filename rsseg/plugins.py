"""Registries that plug-ins fill: a module registers its entries (models, datasets) when imported.

A registry imports, on first use, every public module of its built-in package and every module
that installed distributions name under its entry-point group, e.g. in a third-party
``pyproject.toml``::

    [project.entry-points."rsseg.models"]
    mynet = "mypackage.mynet"
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from rsseg.errors import RssegError, reason

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one ``kind`` by name, filled from ``package``'s modules and the ``group`` entry points."""

    def __init__(self, kind: str, package: str, group: str):
        self.kind, self.package, self.group = kind, package, group
        self._entries: dict[str, T] = {}
        self._loaded = False

    def add(self, name: str, entry: T) -> None:
        """Register ``entry`` under ``name`` (called by the modules' decorators)."""
        if name in self._entries:
            raise RssegError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = entry

    def __contains__(self, name: str) -> bool:
        """Whether ``name`` is registered so far (nothing is imported)."""
        return name in self._entries

    def get(self, name: str) -> T:
        """The entry of ``name``, or a clear error listing the known names."""
        self.load()
        try:
            return self._entries[name]
        except KeyError:
            raise RssegError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}") from None

    def entries(self) -> list[T]:
        """Every entry, sorted by name."""
        self.load()
        return [self._entries[name] for name in sorted(self._entries)]

    def load(self) -> None:
        """Import the built-in modules and the plug-ins once; they register themselves."""
        if self._loaded:
            return
        self._loaded = True  # before importing: a module may use the registry while it loads
        try:
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__, f"{self.package}."):
                if not module.name.rpartition(".")[2].startswith("_"):
                    importlib.import_module(module.name)
            for point in entry_points(group=self.group):
                try:
                    point.load()
                except Exception as err:  # noqa: BLE001 - whatever breaks in a plug-in is reported as its fault
                    raise RssegError(f"plug-in {point.name} = {point.value} ({self.group}): {reason(err)}") from err
        except BaseException:
            self._loaded = False
            raise
