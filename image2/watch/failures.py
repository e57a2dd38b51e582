"""How the daemon meets failure: an input failed for good (recorded, logged, quarantined when invalid),
an outage of its environment (the ledger cannot be written, the output disk is full), said once
and retried after doubling delays, and an error of its own, which it logs and survives."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from image2.watch.clock import Clock
from image2.watch.ledger import FAILED, Item, Ledger, LedgerUnwritable
from image2.watch.quarantine import quarantine

Guard = Callable[[str, Callable[[], object]], None]
"""Runs one action of the loop (``what`` names it in the log); the daemon's guard survives any error."""

PAUSE_AFTER_ERROR = 0.1

FIRST_RETRY = 1.0
LONGEST_RETRY = 60.0
"""Seconds before work stopped by an outage is tried again: doubling from the first to the longest."""


class Outage:
    """A condition of the environment that stops some work for a while: said in one line when it begins
    and one when it ends, the work tried again after doubling delays (never in a tight loop).

    An outage that comes back soon after it ended goes on from the delay it had reached, and is said
    only once it lasts: a condition that flickers (a probe passes while real work still fails) is not
    said again and again.
    """

    def __init__(self, event: str, end_event: str, log: Any, clock: Clock, first: float = FIRST_RETRY,
                 longest: float = LONGEST_RETRY) -> None:
        self._event = event
        self._end_event = end_event
        self._log = log
        self._clock = clock
        self._first = first
        self._longest = longest
        self.reason: str | None = None
        self._delay = first
        self._until = 0.0
        self._since = 0.0
        self._ended: float | None = None
        self._said = False
        self.hits = 0

    @property
    def active(self) -> bool:
        """True while the condition lasts (from its first hit until ``clear``)."""
        return self.reason is not None

    def waiting(self) -> bool:
        """True while the work must not be tried again yet."""
        return self.active and self._clock.monotonic() < self._until

    def remaining(self) -> float:
        """Seconds until the work may be tried again (0 when it may be now)."""
        return max(0.0, self._until - self._clock.monotonic()) if self.active else 0.0

    def hit(self, reason: str) -> None:
        """Note that the work met the condition (again); the first hit of an outage is said."""
        now = self._clock.monotonic()
        self.hits += 1
        if self.reason is None:
            flickers = self._ended is not None and now - self._ended < self._longest
            self._delay = min(self._delay * 2, self._longest) if flickers else self._first
            self._since = now
            self.reason = reason
            self._until = now + self._delay
            self._said = False
            if not flickers:
                self._say()
            return
        self.reason = reason
        if now >= self._until:  # a retry failed: wait longer (hits while waiting change nothing)
            self._delay = min(self._delay * 2, self._longest)
            self._until = now + self._delay
            if not self._said and now - self._since >= self._longest:
                self._say()

    def _say(self) -> None:
        self._said = True
        self._log.warning(self._event, reason=self.reason, retry_in=self._delay)

    def clear(self) -> bool:
        """End the outage (the work succeeded); return whether one was under way."""
        if self.reason is None:
            return False
        now = self._clock.monotonic()
        if self._said:
            self._log.info(self._end_event, after=self.reason, seconds=round(now - self._since, 1))
        self.reason = None
        self._ended = now
        return True


def survive(log: Any, what: str, action: Callable[[], object], outage: Outage | None = None) -> None:
    """Run ``action``; log and survive anything it raises (the daemon keeps running in every case),
    pausing a moment so that a persisting error does not spin. A ledger that cannot be written is
    no error of the daemon: it is a hit of ``outage`` (said once, no traceback)."""
    try:
        action()
    except LedgerUnwritable as error:
        if outage is None:
            log.error("ledger-unwritable", during=what, reason=str(error))
            time.sleep(PAUSE_AFTER_ERROR)
        else:
            outage.hit(str(error))
    except Exception as error:  # noqa: BLE001
        log.exception("internal-error", during=what, error=repr(error))
        time.sleep(PAUSE_AFTER_ERROR)


class Failures:
    """Record inputs that failed for good: the ledger row with its reason, the log, and the move of an
    invalid input to the quarantine folder (when one is set)."""

    def __init__(self, ledger: Ledger, log: Any, folder: Path | None, clock: Clock) -> None:
        self._ledger = ledger
        self._log = log
        self._folder = folder
        self._clock = clock

    def quarantine(self, path: Path, error: str, details: Mapping[str, Any]) -> Path | None:
        """Move an invalid input to the quarantine folder, when one is set; return where it went."""
        if self._folder is None or not path.exists():
            return None
        try:
            return quarantine(path, self._folder, error, details)
        except OSError as move_error:
            self._log.error("quarantine-failed", file=str(path), error=str(move_error))
            return None

    def fail(self, item: Item, error: str, invalid: bool, products: tuple[str, ...] = (),
             moved: Path | None = None) -> Item:
        """Record ``item`` failed (an invalid input was quarantined first, to ``moved``); return its row."""
        item = self._ledger.fail(item.id, error, products, str(moved) if moved else None, now=self._clock.wall())
        self._log.error("failed", file=str(item.path), item=item.id, state=FAILED, error=error,
                        invalid=invalid, attempt=item.attempts)
        if moved is not None:
            self._log.warning("quarantined", file=str(item.path), item=item.id, to=str(moved), reason=error)
        return item
