"""What ``image2 watch`` was asked to do: the one configuration every part of the daemon reads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs

from image2.watch.ledger import ledger_file
from image2.watch.readiness import DEFAULT_PATTERNS, Selector


@attrs.frozen
class WatchConfig:
    """Everything ``image2 watch`` was asked to do; ``options`` is the RunOptions handed to every run."""

    roots: tuple[Path, ...] = attrs.field(converter=lambda v: tuple(Path(os.path.abspath(p)) for p in v))
    output_dir: Path = attrs.field(converter=lambda p: Path(os.path.abspath(p)))
    options: Any
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    recursive: bool = False
    workers: int = 1
    poll: float | None = None
    settle: float = 5.0
    quarantine: Path | None = attrs.field(default=None, converter=lambda p: None if p is None else Path(
        os.path.abspath(p)))
    reconcile: float = 60.0
    heartbeat: float = 30.0
    grace: float = 30.0
    member_wait: float = 600.0
    members_as_singletons: bool = False
    max_attempts: int = 5
    retry_delay: float = 10.0
    max_pending: int = 10_000
    ledger: Path | None = attrs.field(default=None, converter=lambda p: None if p is None else Path(
        os.path.abspath(p)))

    @property
    def ledger_file(self) -> Path:
        """Where the ledger is: ``ledger`` when given, else beside the products."""
        return ledger_file(self.output_dir, self.ledger)

    @property
    def selector(self) -> Selector:
        """The input names, with the output and quarantine folders excluded from the watched trees."""
        excluded = tuple(p for p in (self.output_dir, self.quarantine) if p is not None)
        return Selector(tuple(self.patterns), excluded)
