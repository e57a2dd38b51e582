"""How the daemon meets failure: an input failed for good (recorded, logged, quarantined when invalid),
and an error of its own, which it logs and survives."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from image2.watch.clock import Clock
from image2.watch.ledger import FAILED, Item, Ledger
from image2.watch.quarantine import quarantine

Guard = Callable[[str, Callable[[], object]], None]
"""Runs one action of the loop (``what`` names it in the log); the daemon's guard survives any error."""

PAUSE_AFTER_ERROR = 0.1


def survive(log: Any, what: str, action: Callable[[], object]) -> None:
    """Run ``action``; log and survive anything it raises (the daemon keeps running in every case),
    pausing a moment so that a persisting error does not spin."""
    try:
        action()
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
