"""Association waits: an association runs as one item once every member exists and is complete.

An association waits ``member_wait`` seconds at most, counted from when it was first seen (its
row's ``seen_at``), so the deadline holds across restarts. While it waits, queues, runs, or
once it is done, it claims its members (the ledger records them): a member is then not also
processed alone (unless ``members_as_singletons``). A member already taken alone before its
association was seen is not undone: the association waits for that run to end and then
replaces its products (it runs with overwrite). A member judged invalid, or the deadline
passing, fails the association, which releases its members.

This part decides; it never looks at a member's content. Intake says when a member is complete
or invalid, and tracks the members this part hands back (``wait``, ``restore``, ``check``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from image2.watch.clock import Clock
from image2.watch.failures import Failures
from image2.watch.identity import stat_of
from image2.watch.ledger import EXPOSURE, FAILED, QUEUED, RUNNING, WAITING, Item, Ledger
from image2.watch.scanner import is_accounted

CHECK_INTERVAL = 0.5
"""Seconds between looks at the waiting associations (sooner when a member's readiness was judged)."""


@attrs.define
class _Wait:
    """One association waiting for its members."""

    item: Item
    members: tuple[Path, ...]
    deadline: float
    complete: set[Path] = attrs.Factory(set)
    invalid: dict[Path, str] = attrs.Factory(dict)


@attrs.frozen
class Checked:
    """What one look at the waiting associations did: rows queued and failed, the pending members
    intake should track, and the members no association waits for any more (track, then release)."""

    queued: tuple[Item, ...] = ()
    failed: tuple[Item, ...] = ()
    track: tuple[Path, ...] = ()
    released: tuple[Path, ...] = ()


class Associations:
    """The associations waiting for their members, and the members they hold."""

    def __init__(self, ledger: Ledger, failures: Failures, log: Any, clock: Clock, member_wait: float) -> None:
        self._ledger = ledger
        self._failures = failures
        self._log = log
        self._clock = clock
        self._member_wait = member_wait
        self._waits: dict[int, _Wait] = {}
        self._holders: dict[Path, set[int]] = {}
        self._next_check = clock.monotonic()
        self.members: frozenset[Path] = frozenset()
        """Every member some waiting association holds (replaced, never changed: the observer thread reads it)."""

    def __len__(self) -> int:
        return len(self._waits)

    def is_member(self, path: Path) -> bool:
        """True when a waiting association holds ``path``."""
        return path in self.members

    def restore(self) -> list[Path]:
        """Wait again for every association the ledger has waiting (after a restart); return the members
        to track."""
        track = []
        for item in self._ledger.in_state(WAITING):
            track += self.wait(item, self._ledger.members(item.id))
        return track

    def wait(self, item: Item, members: tuple[Path, ...]) -> list[Path]:
        """Start waiting for the members of association row ``item``; return those not already complete,
        which intake must track until they are."""
        wait = _Wait(item, tuple(members), item.seen_at + self._member_wait)
        self._waits[item.id] = wait
        track = []
        for member in wait.members:
            self._holders.setdefault(member, set()).add(item.id)
            latest = self._ledger.latest(member)
            stat = stat_of(member)
            if stat is not None and latest is not None and latest.state != FAILED and is_accounted(latest, stat):
                wait.complete.add(member)
            else:
                track.append(member)
        self.members = frozenset(self._holders)
        return track

    def release(self, item_id: int) -> list[Path]:
        """Stop waiting for association row ``item_id``; return its members that no association holds now."""
        wait = self._waits.pop(item_id, None)
        if wait is None:
            return []
        released = []
        for member in wait.members:
            holders = self._holders.get(member, set())
            holders.discard(item_id)
            if not holders:
                self._holders.pop(member, None)
                released.append(member)
        self.members = frozenset(self._holders)
        return released

    def member_ready(self, path: Path) -> None:
        """Note that member ``path`` is complete (look at its associations at once)."""
        for item_id in self._holders.get(path, ()):
            self._waits[item_id].complete.add(path)
            self._next_check = self._clock.monotonic()

    def member_invalid(self, path: Path, problem: str) -> None:
        """Note that member ``path`` is not a valid input (its associations fail at the next look)."""
        for item_id in self._holders.get(path, ()):
            self._waits[item_id].invalid[path] = problem
            self._next_check = self._clock.monotonic()

    def next_due(self) -> float | None:
        """The monotonic time of the next look, or None when no association waits."""
        return self._next_check if self._waits else None

    def check(self) -> Checked:
        """Queue each association whose members are all complete (and none runs alone), fail those with an
        invalid member or past their deadline; return what was done."""
        now = self._clock.wall()
        self._next_check = self._clock.monotonic() + CHECK_INTERVAL
        queued, failed, track, released = [], [], [], []
        for item_id, wait in list(self._waits.items()):
            if wait.invalid:
                reasons = "; ".join(f"member {p.name}: {why}" for p, why in wait.invalid.items())
                released += self.release(item_id)
                failed.append(self._failures.fail(self._ledger.get(item_id), reasons, invalid=False))
                continue
            pending = [m for m in wait.members if m not in wait.complete]
            track += [m for m in pending if stat_of(m) is not None]
            singles = [self._ledger.latest(m) for m in wait.members]
            busy = [s for s in singles if s is not None and s.kind == EXPOSURE and s.state in (QUEUED, RUNNING)]
            if not pending and not busy:
                replaces = any(self._ledger.has_done(m) for m in wait.members)
                released += self.release(item_id)
                item = self._ledger.queue(item_id, overwrite=wait.item.overwrite or replaces, now=now)
                self._log.info("queued", file=str(item.path), item=item.id, state=QUEUED,
                               replaces_products=item.overwrite)
                queued.append(item)
            elif now >= wait.deadline:
                missing = [m.name for m in pending if stat_of(m) is None]
                incomplete = [m.name for m in pending if stat_of(m) is not None]
                reason = (f"members not complete within {self._member_wait:g} s"
                          + (f"; missing: {', '.join(missing)}" if missing else "")
                          + (f"; incomplete: {', '.join(incomplete)}" if incomplete else "")
                          + (f"; still processed alone: {', '.join(s.path.name for s in busy)}" if busy else ""))
                released += self.release(item_id)
                failed.append(self._failures.fail(self._ledger.get(item_id), reason, invalid=False))
        return Checked(tuple(queued), tuple(failed), tuple(track), tuple(released))
