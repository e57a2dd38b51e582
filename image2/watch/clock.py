"""The daemon's two clocks, passed to its parts so that tests set the time instead of sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall time for what the ledger records (it outlives the process); monotonic time for intervals."""

    def wall(self) -> float:
        """Seconds since the epoch: ledger times, retry times, association deadlines across restarts."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: settling, timers of this run."""


class SystemClock:
    """The real clocks: ``time.time`` and ``time.monotonic``."""

    def wall(self) -> float:
        """``time.time()``."""
        return time.time()

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()
