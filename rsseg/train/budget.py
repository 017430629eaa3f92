"""The time budget of a run (``train.max_minutes``), counted across resumed sessions."""

from __future__ import annotations

import time


class TimeBudget:
    """Training time against ``minutes`` (``None``: no budget), ``spent`` in earlier sessions.

    ``reserve`` is kept free at the end (the last validation's duration), so that the final
    validation and checkpoints still fit in the budget.
    """

    clock = staticmethod(time.perf_counter)

    def __init__(self, minutes: float | None, spent: float = 0.0):
        self.seconds = 60.0 * float(minutes) if minutes else None
        self.spent = spent
        self.reserve = 0.0
        self.started = self.clock()

    def elapsed(self) -> float:
        """Seconds used so far, earlier sessions included."""
        return self.spent + self.clock() - self.started

    def fraction(self) -> float:
        """Share of the budget used (0 without a budget), the reserve counted as used."""
        if not self.seconds:
            return 0.0
        return min(1.0, (self.elapsed() + self.reserve) / self.seconds)

    def exhausted(self) -> bool:
        """Whether training must stop now to end within the budget."""
        return self.seconds is not None and self.fraction() >= 1.0
