"""Calls run in order by one background thread, a bounded number waiting: the writer side of the pipeline."""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from typing import Any, Callable, Iterator

_STOP = None


class Background:
    """Runs submitted calls in order in one thread while the caller goes on; at most ``depth`` wait.

    A full queue makes :meth:`submit` wait, so what the calls hold (finished bands) stays
    bounded. The first call that raises stops the others; its exception is raised by the next
    :meth:`submit` or by :meth:`close`.
    """

    def __init__(self, depth: int = 2, name: str = "rsseg-write"):
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (call := self._queue.get()) is not _STOP:
            if self._error is None and not self._cancelled:
                try:
                    call()
                except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                    self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` (waiting while ``depth`` calls wait already)."""
        self._raise()
        self._queue.put(functools.partial(fn, *args))

    def close(self) -> None:
        """Wait for every queued call; raise the first error of one."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()

    def cancel(self) -> None:
        """Drop the calls still waiting and wait for the running one to end."""
        self._cancelled = True
        self._queue.put(_STOP)
        self._thread.join()


class Inline:
    """:class:`Background`'s interface, each call run at once in the caller's thread."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        fn(*args)

    def close(self) -> None:
        """Nothing waits."""

    def cancel(self) -> None:
        """Nothing waits."""


@contextlib.contextmanager
def calls_behind(enabled: bool = True, depth: int = 2) -> Iterator[Background | Inline]:
    """A :class:`Background` runner (an :class:`Inline` one unless ``enabled``), closed on exit.

    On an error in the block, the waiting calls are dropped and the running one is waited for,
    so nothing writes once the caller cleans up.
    """
    runner: Background | Inline = Background(depth) if enabled else Inline()
    try:
        yield runner
    except BaseException:
        runner.cancel()
        raise
    runner.close()
