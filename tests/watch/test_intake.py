"""Intake alone: hints and scans, readiness on a fake clock, admission into the ledger, quarantine."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest

from image2.run.options import RunOptions
from image2.run.process import validate_input
from image2.synthetic.exposures import make_rate
from image2.watch.associations import Associations
from image2.watch.config import WatchConfig
from image2.watch.failures import Failures
from image2.watch.intake import EVENT, RECONCILE, STARTUP, Intake
from image2.watch.ledger import ASSOCIATION, DONE, FAILED, QUEUED, WAITING, Ledger
from image2.watch.observer import Hint, Hints
from tests.watch.doubles import FakeClock, RecordingLog, association, rate, strict

SETTLE = 5.0


@attrs.define
class Setup:
    inbox: Path
    output: Path
    clock: FakeClock
    log: RecordingLog
    ledger: Ledger
    hints: Hints
    running: set[Path]
    associations: Associations
    intake: Intake

    def see(self, path: Path, closed: bool = True) -> None:
        """An event for ``path`` (closed: a writer closed it or renamed it into place), judged when due."""
        self.intake.consider(path, closed, EVENT)
        self.intake.judge_due()

    def settle(self) -> None:
        """Let the settle interval pass and judge what is due."""
        self.clock.advance(SETTLE)
        self.intake.judge_due()

    def rows(self) -> dict[str, tuple[str, str]]:
        """Each path's newest row: (state, found_by)."""
        return {p.name: (r.state, r.found_by) for p in sorted(self.inbox.iterdir())
                if (r := self.ledger.latest(p)) is not None}

    def finish(self, path: Path) -> None:
        """Run ``path``'s row to done, as the runner would."""
        item = self.ledger.latest(path)
        self.ledger.finish(self.ledger.start(item.id).id, [])


@pytest.fixture
def make(tmp_path: Path):
    ledgers = []

    def build(**settings: Any) -> Setup:
        inbox, output = tmp_path / "in", tmp_path / "out"
        inbox.mkdir(exist_ok=True)
        output.mkdir(exist_ok=True)
        settings = {"settle": SETTLE, "reconcile": 60.0, "quarantine": tmp_path / "q", **settings}
        config = WatchConfig(roots=[inbox], output_dir=output, options=RunOptions(output_dir=output), **settings)
        clock, log, ledger = FakeClock(), RecordingLog(), Ledger.in_folder(output)
        ledgers.append(ledger)
        failures = Failures(ledger, log, config.quarantine, clock)
        associations = Associations(ledger, failures, log, clock, config.member_wait)
        hints = Hints(100, threading.Event())
        running: set[Path] = set()
        intake = Intake(config, ledger, associations, failures, hints, log, clock, validate=validate_input,
                        running=running.__contains__, guard=strict)
        return Setup(inbox, output, clock, log, ledger, hints, running, associations, intake)

    yield build
    for ledger in ledgers:
        ledger.close()


def test_a_closed_file_is_queued_at_once(make) -> None:
    s = make()
    path = rate(s.inbox, "a_rate.fits")
    s.see(path)
    assert s.rows() == {"a_rate.fits": (QUEUED, EVENT)}
    assert s.log.named("queued") == [{"file": str(path), "item": 1, "state": QUEUED, "found_by": EVENT,
                                      "replaces_products": False}]
    assert len(s.intake) == 0


def test_a_file_seen_without_a_close_waits_until_it_settled(make) -> None:
    s = make()
    path = rate(s.inbox, "a_rate.fits")
    s.see(path, closed=False)
    s.clock.advance(SETTLE - 0.1)
    s.intake.judge_due()
    assert s.rows() == {} and len(s.intake) == 1
    rate(s.inbox, "a_rate.fits", seed=2)  # written again: the interval starts over
    s.intake.consider(path, False, EVENT)
    s.clock.advance(0.1)
    s.intake.judge_due()
    assert s.rows() == {}
    s.settle()
    assert s.rows() == {"a_rate.fits": (QUEUED, EVENT)}


def test_hints_are_taken_and_lost_events_start_a_rescan(make) -> None:
    s = make()
    path = rate(s.inbox, "a_rate.fits")
    s.hints.put(Hint(path, closed=True))
    s.hints.lose("the kernel's event queue overflowed")
    s.intake.take_hints()
    s.intake.judge_due()
    assert s.rows() == {"a_rate.fits": (QUEUED, EVENT)}
    assert s.log.named("events-lost") == [{"reason": "the kernel's event queue overflowed"}]
    assert s.intake.scanning and s.log.named("scan") == [{"source": RECONCILE}]


def test_a_scan_finds_the_backlog_and_says_so(make) -> None:
    s = make()
    for name in ("a_rate.fits", "b_rate.fits"):
        rate(s.inbox, name)
    s.intake.begin_scan(STARTUP)
    assert s.intake.next_due() == s.clock.monotonic()  # a scan under way is work to do now
    s.intake.continue_scan()
    assert not s.intake.scanning
    s.settle()
    assert s.rows() == {"a_rate.fits": (QUEUED, STARTUP), "b_rate.fits": (QUEUED, STARTUP)}


def test_a_reconcile_is_due_after_its_interval(make) -> None:
    s = make(reconcile=60.0)
    s.intake.begin_scan(STARTUP)
    s.intake.continue_scan()
    s.clock.advance(59.9)
    assert not s.intake.rescan_due()
    s.clock.advance(0.1)
    assert s.intake.rescan_due()


def test_the_tracking_bound_leaves_the_rest_to_a_later_scan(make) -> None:
    s = make(max_pending=4)
    names = [f"b{i}_rate.fits" for i in range(9)]
    for name in names:
        rate(s.inbox, name)
    s.intake.begin_scan(STARTUP)
    scans = 1
    while len(s.rows()) < len(names):
        s.intake.continue_scan()
        assert len(s.intake) <= 4
        assert not s.intake.rescan_due()  # not while half the bound is tracked
        s.settle()
        if s.intake.rescan_due():
            s.intake.begin_scan(RECONCILE)
            scans += 1
        assert scans <= 4
    assert sorted(s.rows()) == names and {state for state, _ in s.rows().values()} == {QUEUED}
    assert {found for _, found in s.rows().values()} == {STARTUP, RECONCILE}


def test_what_the_ledger_accounts_for_or_a_worker_runs_is_left_alone(make) -> None:
    s = make()
    path = rate(s.inbox, "a_rate.fits")
    s.see(path)
    s.see(path)
    busy = rate(s.inbox, "b_rate.fits")
    s.running.add(busy)
    s.see(busy)
    assert s.rows() == {"a_rate.fits": (QUEUED, EVENT)} and len(s.intake) == 0


def test_names_that_are_not_inputs_are_ignored(make, tmp_path: Path) -> None:
    s = make()
    names = [".a_rate.fits", "b_rate.fits.part", "c_rate.fits.tmp", "d_cal.fits", "notes.txt"]
    for name in names:
        (s.inbox / name).write_bytes(b"x")
    (s.output / "e_rate.fits").write_bytes(b"x")
    for path in [s.inbox / n for n in names] + [s.output / "e_rate.fits"]:
        assert not s.intake.interesting(path)
        s.see(path)
    assert len(s.intake) == 0 and s.ledger.counts() == {WAITING: 0, QUEUED: 0, "running": 0, DONE: 0, FAILED: 0}


def test_same_content_touched_is_not_taken_again_new_content_is(make) -> None:
    s = make()
    path = rate(s.inbox, "a_rate.fits")
    s.see(path)
    s.finish(path)
    os.utime(path, (1e9, 1e9))
    s.see(path)
    assert [e["reason"] for e in s.log.named("unchanged")] == ["same content with a new mtime; not processed again"]
    row = s.ledger.latest(path)
    assert (row.id, row.state, row.mtime_ns) == (1, DONE, 10**18)
    rate(s.inbox, "a_rate.fits", seed=2)
    s.see(path)
    row = s.ledger.latest(path)
    assert (row.id, row.state, row.overwrite) == (2, QUEUED, True)
    assert s.log.named("queued")[-1]["replaces_products"] is True


def test_a_newer_version_supersedes_a_queued_one(make) -> None:
    s = make()
    path = rate(s.inbox, "a_rate.fits")
    s.see(path)
    first = s.ledger.latest(path)
    rate(s.inbox, "a_rate.fits", seed=2)
    s.see(path)
    [newer] = s.ledger.versions(path, (QUEUED,))
    assert newer.digest != first.digest and not newer.overwrite
    assert s.log.named("superseded") == [{"file": str(path), "item": 1, "reason": "a newer version arrived"}]


def test_a_failed_input_touched_again_is_queued_again_from_scratch(make) -> None:
    s = make()
    path = rate(s.inbox, "a_rate.fits")
    s.see(path)
    item = s.ledger.latest(path)
    s.ledger.fail(s.ledger.start(item.id).id, "photom: no conversion factor")
    os.utime(path, (2e9, 2e9))
    s.see(path)
    row = s.ledger.latest(path)
    assert (row.id, row.state, row.attempts, row.error) == (item.id, QUEUED, 0, None)
    assert s.log.named("queued")[-1]["reason"] == "failed input touched or dropped again: retrying"


def test_corrupt_files_fail_once_settled_and_go_to_quarantine(make, tmp_path: Path) -> None:
    s = make()
    staging = tmp_path / "staging"
    good = rate(s.inbox, "good_rate.fits")
    (staging / "junk_rate.fits").write_text("not a FITS file at all" * 200)
    data = good.read_bytes()
    (staging / "cut_rate.fits").write_bytes(data[: len(data) // 2])
    make_rate(staging / "nosci_rate.fits", shape=(16, 16), arrays={"SCI": None})
    make_rate(staging / "nokey_rate.fits", shape=(16, 16), drop=("EXP_TYPE",))
    bad = ["junk_rate.fits", "cut_rate.fits", "nosci_rate.fits", "nokey_rate.fits"]
    for name in bad:
        os.replace(staging / name, s.inbox / name)
        s.see(s.inbox / name)
    s.see(good)
    assert s.rows() == {"good_rate.fits": (QUEUED, EVENT)}  # a closed but invalid file may still be written
    s.settle()
    quarantine = tmp_path / "q"
    reasons = {}
    for name in bad:
        row = s.ledger.latest(s.inbox / name)
        assert (row.state, row.quarantine) == (FAILED, str(quarantine / name))
        assert not (s.inbox / name).exists() and (quarantine / name).exists()
        document = json.loads((quarantine / (name + ".reason.json")).read_text())
        assert document["file"] == str(s.inbox / name) and document["reason"] == row.error
        reasons[name] = row.error
        assert s.log.for_file(s.inbox / name) == ["failed", "quarantined"]
    assert reasons["junk_rate.fits"] == "not a readable FITS file (no SIMPLE card)"
    assert reasons["cut_rate.fits"].startswith("truncated or corrupt FITS file")
    assert "SCI" in reasons["nosci_rate.fits"]
    assert "EXP_TYPE" in reasons["nokey_rate.fits"]


def test_an_association_waits_and_claims_its_members(make) -> None:
    s = make()
    asn = association(s.inbox, "o1_asn.json", ["m1_rate.fits", "m2_rate.fits"])
    s.see(asn)
    row = s.ledger.latest(asn)
    assert (row.state, row.kind) == (WAITING, ASSOCIATION)
    assert s.log.named("waiting")[0]["members"] == [str(s.inbox / "m1_rate.fits"), str(s.inbox / "m2_rate.fits")]
    m1 = rate(s.inbox, "m1_rate.fits")
    assert s.intake.interesting(m1)
    s.see(m1)
    assert s.ledger.latest(m1) is None  # complete, but claimed: not run alone
    assert s.log.named("claimed") == [{"file": str(m1), "association": str(asn), "item": row.id,
                                       "reason": "member of an association; not processed alone"}]
    assert s.associations.check().queued == ()  # m2 is still missing
    s.see(rate(s.inbox, "m2_rate.fits"))
    assert [i.id for i in s.associations.check().queued] == [row.id]


def test_members_that_are_not_inputs_themselves_are_tracked_for_their_association(make) -> None:
    s = make(patterns=("*_asn.json",))
    asn = association(s.inbox, "o1_asn.json", ["m1_rate.fits"])
    s.see(asn)
    member = rate(s.inbox, "m1_rate.fits")
    assert s.intake.interesting(member)
    s.see(member)
    assert s.ledger.latest(member) is None
    checked = s.associations.check()
    assert [i.path for i in checked.queued] == [asn]
    s.intake.untrack(checked.released)
    assert not s.intake.interesting(member)


def test_members_as_singletons_when_asked(make) -> None:
    s = make(members_as_singletons=True)
    s.see(association(s.inbox, "o3_asn.json", ["m1_rate.fits"]))
    s.see(rate(s.inbox, "m1_rate.fits"))
    assert s.rows() == {"m1_rate.fits": (QUEUED, EVENT), "o3_asn.json": (WAITING, EVENT)}
