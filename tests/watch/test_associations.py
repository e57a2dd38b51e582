"""Association waits alone: members claimed, queued when complete, deadlines on a fake clock, releases."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from image2.watch.associations import CHECK_INTERVAL, Associations
from image2.watch.failures import Failures
from image2.watch.identity import stat_of
from image2.watch.ledger import ASSOCIATION, DONE, EXPOSURE, FAILED, QUEUED, WAITING, Item, Ledger
from tests.watch.doubles import FakeClock, RecordingLog


@attrs.define
class Setup:
    inbox: Path
    clock: FakeClock
    log: RecordingLog
    ledger: Ledger
    associations: Associations

    def file(self, name: str, content: bytes = b"x" * 10) -> Path:
        (self.inbox / name).write_bytes(content)
        return self.inbox / name

    def waiting(self, name: str, *members: str) -> tuple[Item, list[Path]]:
        """An association row waiting for ``members``, as intake admits it; return it and what to track."""
        path = self.file(name, b"{}")
        item = self.ledger.add(path, ASSOCIATION, stat_of(path), name, WAITING, "event", now=self.clock.wall())
        paths = tuple(self.inbox / m for m in members)
        self.ledger.claim_members(item.id, paths)
        return item, self.associations.wait(item, paths)

    def alone(self, name: str) -> Item:
        """A member taken as an input of its own before its association came."""
        path = self.inbox / name
        return self.ledger.add(path, EXPOSURE, stat_of(path), name, QUEUED, "event", now=self.clock.wall())

    def state(self, item: Item) -> str:
        return self.ledger.get(item.id).state


@pytest.fixture
def make(tmp_path: Path):
    ledgers = []

    def build(member_wait: float = 600.0, ledger: Ledger | None = None, clock: FakeClock | None = None) -> Setup:
        inbox = tmp_path / "in"
        inbox.mkdir(exist_ok=True)
        clock = clock or FakeClock()
        log = RecordingLog()
        if ledger is None:
            ledger = Ledger.in_folder(tmp_path)
            ledgers.append(ledger)
        associations = Associations(ledger, Failures(ledger, log, None, clock), log, clock, member_wait)
        return Setup(inbox, clock, log, ledger, associations)

    yield build
    for ledger in ledgers:
        ledger.close()


def test_members_are_held_and_handed_to_intake_until_complete(make) -> None:
    s = make()
    s.file("m1_rate.fits")
    item, track = s.waiting("o1_asn.json", "m1_rate.fits", "m2_rate.fits")
    assert track == [s.inbox / "m1_rate.fits", s.inbox / "m2_rate.fits"]
    assert s.associations.is_member(s.inbox / "m2_rate.fits") and len(s.associations) == 1
    assert s.associations.members == {s.inbox / "m1_rate.fits", s.inbox / "m2_rate.fits"}
    checked = s.associations.check()
    assert checked.queued == () and checked.track == (s.inbox / "m1_rate.fits",)  # m2 does not exist yet
    assert s.state(item) == WAITING


def test_an_association_is_queued_once_every_member_is_complete(make) -> None:
    s = make()
    item, _ = s.waiting("o1_asn.json", "m1_rate.fits", "m2_rate.fits")
    s.file("m1_rate.fits")
    s.associations.member_ready(s.inbox / "m1_rate.fits")
    assert s.associations.check().queued == ()
    s.file("m2_rate.fits")
    s.associations.member_ready(s.inbox / "m2_rate.fits")
    assert s.associations.next_due() == s.clock.monotonic()  # a judged member is looked at at once
    checked = s.associations.check()
    assert [i.id for i in checked.queued] == [item.id] and s.state(item) == QUEUED
    assert set(checked.released) == {s.inbox / "m1_rate.fits", s.inbox / "m2_rate.fits"}
    assert s.log.named("queued") == [{"file": str(item.path), "item": item.id, "state": QUEUED,
                                      "replaces_products": False}]
    assert s.associations.members == frozenset() and s.associations.next_due() is None


def test_a_member_already_complete_in_the_ledger_counts_at_once(make) -> None:
    s = make()
    s.file("m1_rate.fits")
    single = s.alone("m1_rate.fits")
    s.ledger.finish(s.ledger.start(single.id).id, ["/out/m1_cal.fits"])
    item, track = s.waiting("o1_asn.json", "m1_rate.fits")
    assert track == []
    checked = s.associations.check()
    assert [i.overwrite for i in checked.queued] == [True]  # it replaces what the member made alone
    assert s.log.named("queued")[0]["replaces_products"] is True


def test_a_member_running_alone_holds_the_association_until_it_ends(make) -> None:
    s = make()
    s.file("m1_rate.fits")
    single = s.ledger.start(s.alone("m1_rate.fits").id)
    item, _ = s.waiting("o1_asn.json", "m1_rate.fits")
    s.clock.advance(CHECK_INTERVAL)
    assert s.associations.check().queued == () and s.state(item) == WAITING
    s.ledger.finish(single.id, ["/out/m1_cal.fits"])
    s.clock.advance(CHECK_INTERVAL)
    assert [i.id for i in s.associations.check().queued] == [item.id]
    assert s.ledger.get(item.id).overwrite


def test_members_that_never_come_fail_the_association_after_the_wait(make) -> None:
    s = make(member_wait=10.0)
    s.file("m1_rate.fits")
    s.file("m3_rate.fits")
    s.ledger.start(s.alone("m3_rate.fits").id)
    item, _ = s.waiting("o2_asn.json", "m1_rate.fits", "absent_rate.fits", "m3_rate.fits")
    s.associations.member_ready(s.inbox / "m3_rate.fits")
    s.clock.advance(9.9)
    assert s.associations.check().failed == ()
    s.clock.advance(0.1)
    checked = s.associations.check()
    assert [i.id for i in checked.failed] == [item.id]
    row = s.ledger.get(item.id)
    assert (row.state, row.error) == (FAILED, "members not complete within 10 s; missing: absent_rate.fits; "
                                              "incomplete: m1_rate.fits; still processed alone: m3_rate.fits")
    assert set(checked.released) == {s.inbox / n for n in ("m1_rate.fits", "absent_rate.fits", "m3_rate.fits")}
    assert s.ledger.claimed_by(s.inbox / "m1_rate.fits") is None  # released: it may run alone now
    assert s.log.named("failed")[0]["invalid"] is False
    assert item.path.exists()


def test_an_invalid_member_fails_the_association_at_once(make) -> None:
    s = make()
    s.file("m1_rate.fits")
    item, _ = s.waiting("o1_asn.json", "m1_rate.fits", "m2_rate.fits")
    s.associations.member_invalid(s.inbox / "m1_rate.fits", "not a FITS file")
    checked = s.associations.check()
    assert [i.error for i in checked.failed] == ["member m1_rate.fits: not a FITS file"]
    assert s.state(item) == FAILED and len(s.associations) == 0


def test_the_deadline_counts_from_first_seen_across_restarts(make) -> None:
    first = make(member_wait=600.0)
    item, _ = first.waiting("o1_asn.json", "absent_rate.fits")
    first.clock.advance(500.0)
    again = make(member_wait=600.0, ledger=first.ledger, clock=first.clock)  # a new daemon on the same ledger
    assert again.associations.restore() == [first.inbox / "absent_rate.fits"]
    first.clock.advance(99.0)
    assert again.associations.check().failed == ()
    first.clock.advance(1.0)
    assert [i.id for i in again.associations.check().failed] == [item.id]


def test_a_member_held_by_two_associations_is_released_by_the_last(make) -> None:
    s = make()
    first, _ = s.waiting("o1_asn.json", "m1_rate.fits", "m2_rate.fits")
    second, _ = s.waiting("o2_asn.json", "m1_rate.fits")
    assert s.associations.release(first.id) == [s.inbox / "m2_rate.fits"]
    assert s.associations.is_member(s.inbox / "m1_rate.fits")
    assert s.associations.release(second.id) == [s.inbox / "m1_rate.fits"]
    assert s.associations.release(second.id) == []


def test_looks_are_spaced_unless_a_member_was_judged(make) -> None:
    s = make()
    assert s.associations.next_due() is None
    s.waiting("o1_asn.json", "m1_rate.fits")
    s.associations.check()
    assert s.associations.next_due() == s.clock.monotonic() + CHECK_INTERVAL
    s.associations.member_invalid(s.inbox / "elsewhere_rate.fits", "not ours")
    assert s.associations.next_due() == s.clock.monotonic() + CHECK_INTERVAL
    s.associations.member_invalid(s.inbox / "m1_rate.fits", "bad")
    assert s.associations.next_due() == s.clock.monotonic()


def test_a_done_association_is_not_waited_for_again(make) -> None:
    s = make()
    s.file("m1_rate.fits")
    item, _ = s.waiting("o1_asn.json", "m1_rate.fits")
    s.associations.member_ready(s.inbox / "m1_rate.fits")
    s.associations.check()
    s.ledger.finish(s.ledger.start(item.id).id, [])
    assert s.ledger.get(item.id).state == DONE
    assert s.associations.restore() == [] and len(s.associations) == 0
    assert s.ledger.claimed_by(s.inbox / "m1_rate.fits").id == item.id  # its members stay claimed
