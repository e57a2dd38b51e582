"""Intake: files that land in the watched folders become ledger rows.

Hints from the observer and scans of the folders (at start-up, periodically, and whenever
events may have been lost) name candidates; readiness says when each is complete; admission
records it ``queued``, ``waiting`` for its members (an association), or ``failed`` at once (still
invalid once settled; quarantined when asked). A file the ledger already accounts for, an
exposure claimed by an association, and an input being run are left alone. Members of waiting
associations are tracked too, and their readiness is passed on to the association waits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from image2.errors import InvalidInputError
from image2.io.association import load_association
from image2.watch.associations import Associations
from image2.watch.clock import Clock
from image2.watch.config import WatchConfig
from image2.watch.failures import Failures, Guard
from image2.watch.identity import FileStat, content_digest, stat_of
from image2.watch.ledger import ASSOCIATION, EXPOSURE, FAILED, QUEUED, WAITING, Item, Ledger
from image2.watch.observer import Hints
from image2.watch.readiness import GONE, INVALID, READY, Readiness, Verdict, fits_problem, kind_of
from image2.watch.scanner import inputs_in, is_accounted

STARTUP, EVENT, RECONCILE = "startup", "event", "reconcile"
"""How a row was found (its ``found_by``): the scan at start-up, an event, or a later scan."""

HINTS_PER_CYCLE = 2_000
SCAN_PER_CYCLE = 2_000


class Intake:
    """Find candidate inputs, watch them until complete, and admit them into the ledger."""

    def __init__(self, config: WatchConfig, ledger: Ledger, associations: Associations, failures: Failures,
                 hints: Hints, log: Any, clock: Clock, *, validate: Callable[[Path], None],
                 running: Callable[[Path], bool], guard: Guard) -> None:
        self._config = config
        self._selector = config.selector
        self._ledger = ledger
        self._associations = associations
        self._failures = failures
        self._hints = hints
        self._log = log
        self._clock = clock
        self._validate = validate
        self._running = running
        self._guard = guard
        self.readiness = Readiness(config.settle, self._check, clock.monotonic)
        self._found_by: dict[Path, str] = {}
        self._scan: Iterator[Path] | None = None
        self._scan_source = RECONCILE
        self._rescan = False
        self._next_reconcile = clock.monotonic() + config.reconcile

    def __len__(self) -> int:
        """The number of files being watched until complete."""
        return len(self.readiness)

    def interesting(self, path: Path) -> bool:
        """Whether the observer should pass on events for ``path`` (runs on the observer thread)."""
        return self._associations.is_member(path) or self._selector.wants(path)

    # -- finding candidates -------------------------------------------------------------------

    def take_hints(self) -> None:
        """Consider what the observer reported; rescan when it says events were lost."""
        lost = self._hints.take_lost()
        if lost is not None:
            self._log.warning("events-lost", reason=lost)
            self.begin_scan(RECONCILE)
        for path, closed in self._hints.drain(HINTS_PER_CYCLE).items():
            self._guard("hint", lambda: self.consider(path, closed, EVENT))

    def begin_scan(self, source: str) -> None:
        """Start listing the watched folders (from the top, whatever scan was under way)."""
        self._scan = inputs_in(self._config.roots, self._selector, self._config.recursive)
        self._scan_source = source
        self._rescan = False
        self._next_reconcile = self._clock.monotonic() + self._config.reconcile
        self._log.info("scan", source=source)

    @property
    def scanning(self) -> bool:
        """True while a scan is under way."""
        return self._scan is not None

    def continue_scan(self) -> None:
        """Take the next slice of the running scan (a long listing never stalls the loop)."""
        if self._scan is None:
            return
        taken = 0
        for path in self._scan:
            if len(self.readiness) >= self._config.max_pending:
                self._rescan = True
                break
            self._guard("scan", lambda: self.consider(path, False, self._scan_source))
            taken += 1
            if taken >= SCAN_PER_CYCLE:
                return
        self._scan = None

    def rescan_due(self) -> bool:
        """True when a periodic reconcile is due, or a scan cut short by the tracking bound can go on."""
        return self._scan is None and (self._clock.monotonic() >= self._next_reconcile or (
            self._rescan and len(self.readiness) < self._config.max_pending // 2))

    def next_due(self) -> float | None:
        """The monotonic time at which intake has work next (now while a scan is under way)."""
        due = [self._next_reconcile]
        if self._scan is not None:
            due.append(self._clock.monotonic())
        readiness = self.readiness.next_due()
        if readiness is not None:
            due.append(readiness)
        return min(due)

    def consider(self, path: Path, closed: bool, source: str) -> None:
        """Start (or update) tracking of a possible input or member after an event or a scan."""
        if path in self.readiness or self._associations.is_member(path):
            self.readiness.note(path, closed)
            return
        if not self._selector.wants(path):
            return
        stat = stat_of(path)
        if stat is None or is_accounted(self._ledger.latest(path), stat):
            return
        if (kind_of(path) == EXPOSURE and not self._config.members_as_singletons
                and self._ledger.claimed_by(path) is not None):
            return
        if self._running(path):
            return
        if len(self.readiness) >= self._config.max_pending:
            self._rescan = True
            return
        self.readiness.note(path, closed)
        if path in self.readiness:
            self._found_by.setdefault(path, source)

    def track(self, paths: Iterable[Path]) -> None:
        """Watch association members until they are complete (members need not match the patterns)."""
        for path in paths:
            if path not in self.readiness:
                self.readiness.note(path)

    def untrack(self, paths: Iterable[Path]) -> None:
        """Stop watching released members, unless they are inputs in their own right."""
        for path in paths:
            if not self._selector.wants(path):
                self.readiness.forget(path)

    # -- judging and admitting ----------------------------------------------------------------

    def judge_due(self) -> None:
        """Judge every tracked file whose time has come."""
        for path in self.readiness.due():
            self._guard("readiness", lambda: self.judge(path))

    def judge(self, path: Path) -> Verdict:
        """Look at ``path`` now: a complete or invalid file is admitted (and its associations told)."""
        verdict = self.readiness.evaluate(path)
        source = self._found_by.get(path, EVENT)
        if verdict.kind in (READY, INVALID, GONE):
            self._found_by.pop(path, None)
        if verdict.kind == READY:
            self._associations.member_ready(path)
            if self._selector.wants(path):
                self.admit(path, verdict.stat, source)
        elif verdict.kind == INVALID:
            self._associations.member_invalid(path, verdict.problem)
            if self._selector.wants(path):
                self.reject(path, verdict.stat, verdict.problem, source)
        return verdict

    def _check(self, path: Path, settled: bool) -> str | None:
        """Return why ``path`` is not a whole, valid input (None when it is); OSError means wait. Before it
        settled, an exposure must also look finished (its writer may be appending HDUs)."""
        if kind_of(path) == ASSOCIATION:
            try:
                load_association(path, allow_outside=self._config.options.allow_outside)
            except InvalidInputError as error:
                return error.problem
            return None
        problem = fits_problem(path, finished=not settled)
        if problem is not None:
            return problem
        try:
            self._validate(path)
        except InvalidInputError as error:
            return error.problem
        except OSError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the validator trips on makes the input invalid
            return f"{type(error).__name__}: {error}"
        return None

    def admit(self, path: Path, stat: FileStat, source: str) -> Item | None:
        """Record a complete input in the ledger: queued, or waiting for members (an association); return
        its row (None when nothing was recorded: claimed, accounted for, or unreadable now)."""
        ledger = self._ledger
        now = self._clock.wall()
        latest = ledger.latest(path)
        if is_accounted(latest, stat):
            return None
        kind = kind_of(path)
        if kind == EXPOSURE and not self._config.members_as_singletons:
            claim = ledger.claimed_by(path)
            if claim is not None:
                self._log.info("claimed", file=str(path), association=str(claim.path), item=claim.id,
                               reason="member of an association; not processed alone")
                return None
        try:
            digest = content_digest(path)
        except OSError:
            return None
        if latest is not None and latest.quarantine is None and latest.digest == digest:
            if latest.state == FAILED:
                item = ledger.reopen(latest.id, stat, now=now)
                self._log.info("queued", file=str(path), item=item.id, state=QUEUED, found_by=source,
                               reason="failed input touched or dropped again: retrying")
                return item
            item = ledger.refresh(latest.id, stat, now=now)
            self._log.info("unchanged", file=str(path), item=latest.id, state=latest.state,
                           reason="same content with a new mtime; not processed again")
            return item
        for old in ledger.versions(path, (QUEUED, WAITING)):
            ledger.forget(old.id)
            self.untrack(self._associations.release(old.id))
            self._log.info("superseded", file=str(path), item=old.id, reason="a newer version arrived")
        overwrite = ledger.has_done(path)
        if kind == ASSOCIATION:
            try:
                association = load_association(path, allow_outside=self._config.options.allow_outside)
            except InvalidInputError as error:
                return self.reject(path, stat, error.problem, source)
            members = tuple(dict.fromkeys(m.path for p in association.products for m in p.members))
            item = ledger.add(path, ASSOCIATION, stat, digest, WAITING, source, overwrite, now=now)
            ledger.claim_members(item.id, members)
            self._log.info("waiting", file=str(path), item=item.id, state=WAITING, found_by=source,
                           members=[str(m) for m in members])
            self.track(self._associations.wait(item, members))
            return item
        item = ledger.add(path, EXPOSURE, stat, digest, QUEUED, source, overwrite, now=now)
        self._log.info("queued", file=str(path), item=item.id, state=QUEUED, found_by=source,
                       replaces_products=overwrite)
        return item

    def reject(self, path: Path, stat: FileStat, problem: str, source: str) -> Item | None:
        """Record an input that is not valid once settled: failed at once, quarantined when asked."""
        try:
            digest = content_digest(path)
        except OSError:
            return None
        latest = self._ledger.latest(path)
        moved = self._failures.quarantine(path, problem, {"size": stat.size, "sha256": digest})
        if latest is not None and latest.state == FAILED and latest.quarantine is None and latest.digest == digest:
            item = self._ledger.refresh(latest.id, stat, now=self._clock.wall())
        else:
            item = self._ledger.add(path, kind_of(path), stat, digest, FAILED, source, now=self._clock.wall())
        return self._failures.fail(item, problem, True, moved=moved)
