"""The ledger: one row per version of an input, states and their transitions, claims, heartbeat; survives
reopening."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from image2.watch.identity import FileStat
from image2.watch.ledger import (
    ASSOCIATION,
    DONE,
    EXPOSURE,
    FAILED,
    QUEUED,
    RUNNING,
    TRANSITIONS,
    WAITING,
    Ledger,
    TransitionError,
)

A = Path("/in/a_rate.fits")
STAT = FileStat(size=100, mtime_ns=5_000, inode=7)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened = Ledger.in_folder(tmp_path)
    yield opened
    opened.close()


def test_a_row_goes_through_its_states_and_is_kept_on_disk(tmp_path: Path, ledger: Ledger) -> None:
    item = ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event", now=10.0)
    assert (item.state, item.attempts, item.queued_at, item.found_by) == (QUEUED, 0, 10.0, "event")
    item = ledger.start(item.id, now=11.0)
    assert (item.state, item.attempts, item.started_at) == (RUNNING, 1, 11.0)
    item = ledger.finish(item.id, ["/out/a_i2d.fits", "/out/a_cal.fits"], now=12.5)
    assert (item.state, item.products, item.finished_at) == (DONE, ("/out/a_cal.fits", "/out/a_i2d.fits"), 12.5)
    ledger.close()
    again = Ledger.in_folder(tmp_path)
    assert again.latest(A) == item
    assert again.counts() == {WAITING: 0, QUEUED: 0, RUNNING: 0, DONE: 1, FAILED: 0}
    again.close()


def test_journal_is_wal(tmp_path: Path, ledger: Ledger) -> None:
    assert ledger._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_newest_row_of_a_path_counts(ledger: Ledger) -> None:
    first = ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event")
    ledger.finish(ledger.start(first.id).id, [])
    second = ledger.add(A, EXPOSURE, FileStat(120, 6_000, 7), "d2", QUEUED, "reconcile", overwrite=True)
    assert ledger.latest(A).id == second.id
    assert ledger.latest(A).overwrite
    assert ledger.has_done(A)
    assert not ledger.has_done(Path("/in/b_rate.fits"))
    assert [i.id for i in ledger.versions(A, (QUEUED,))] == [second.id]


def test_same_version_compares_size_and_mtime(ledger: Ledger) -> None:
    item = ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event")
    assert item.same_version(FileStat(100, 5_000, 99))
    assert not item.same_version(FileStat(100, 5_001, 7))
    refreshed = ledger.refresh(item.id, FileStat(100, 1_000, 8))
    assert (refreshed.size, refreshed.mtime_ns, refreshed.digest) == (100, 1_000, "d1")


def test_recover_requeues_what_was_running(ledger: Ledger) -> None:
    running = ledger.start(ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event").id)
    other = ledger.add(Path("/in/b_rate.fits"), EXPOSURE, STAT, "d2", QUEUED, "event")
    stranded = ledger.recover()
    assert [i.id for i in stranded] == [running.id]
    back = ledger.get(running.id)
    assert (back.state, back.attempts, back.overwrite, back.error) == (QUEUED, 0, True, None)
    assert ledger.get(other.id).state == QUEUED


def test_repeated_daemon_deaths_never_use_up_the_attempts(ledger: Ledger) -> None:
    item = ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event")
    for _ in range(10):
        ledger.start(item.id)
        ledger.recover()
    assert ledger.get(item.id).attempts == 0


def test_a_lost_worker_is_no_attempt_but_a_death_when_the_row_ran_alone(ledger: Ledger) -> None:
    item = ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event")
    ledger.start(item.id)
    shared = ledger.lost(item.id, "its worker process died", counted=False)
    assert (shared.state, shared.attempts, shared.deaths, shared.overwrite) == (QUEUED, 0, 0, True)
    ledger.start(item.id)
    alone = ledger.lost(item.id, "its worker process died (killed by SIGKILL)", counted=True)
    assert (alone.attempts, alone.deaths, alone.error) == (0, 1, "its worker process died (killed by SIGKILL)")
    with pytest.raises(TransitionError):
        ledger.lost(item.id, "again", counted=True)


def test_ids_are_never_reused_after_a_row_is_forgotten(ledger: Ledger) -> None:
    ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event")
    newest = ledger.add(Path("/in/b_rate.fits"), EXPOSURE, STAT, "d2", QUEUED, "event")
    ledger.forget(newest.id)
    assert ledger.add(Path("/in/c_rate.fits"), EXPOSURE, STAT, "d3", QUEUED, "event").id == newest.id + 1


def test_a_ledger_of_an_earlier_version_is_upgraded_keeping_rows_ids_and_members(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE items (id INTEGER PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, found_by TEXT NOT NULL, overwrite INTEGER NOT NULL DEFAULT 0,
            products TEXT NOT NULL DEFAULT '[]', error TEXT, quarantine TEXT, seen_at REAL NOT NULL,
            queued_at REAL, started_at REAL, finished_at REAL, retry_at REAL, updated_at REAL NOT NULL);
        CREATE TABLE members (item_id INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE, path TEXT NOT NULL);
        INSERT INTO items (id, path, kind, size, mtime_ns, digest, state, attempts, found_by, seen_at, updated_at)
            VALUES (7, '/in/x_asn.json', 'association', 10, 20, 'd', 'waiting', 2, 'event', 1.0, 1.0);
        INSERT INTO members VALUES (7, '/in/m_rate.fits');
    """)
    old.close()
    upgraded = Ledger(path)
    try:
        row = upgraded.get(7)
        assert (row.path, row.state, row.attempts, row.deaths) == (Path("/in/x_asn.json"), WAITING, 2, 0)
        assert upgraded.members(7) == (Path("/in/m_rate.fits"),)
        assert upgraded.add(A, EXPOSURE, STAT, "d1", QUEUED, "event").id == 8
    finally:
        upgraded.close()
    again = Ledger(path)  # opening an upgraded ledger changes nothing
    try:
        assert again.get(7).state == WAITING and again.members(7) == (Path("/in/m_rate.fits"),)
    finally:
        again.close()


def test_abandon_returns_the_attempt(ledger: Ledger) -> None:
    item = ledger.start(ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event").id)
    item = ledger.abandon(item.id)
    assert (item.state, item.attempts, item.started_at, item.overwrite) == (QUEUED, 0, None, True)


def test_due_honours_retry_time_and_exclusions(ledger: Ledger) -> None:
    a = ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event")
    b = ledger.add(Path("/in/b_rate.fits"), EXPOSURE, STAT, "d2", QUEUED, "event")
    c = ledger.add(Path("/in/c_rate.fits"), EXPOSURE, STAT, "d3", QUEUED, "event")
    ledger.start(b.id)
    ledger.queue(b.id, retry_at=100.0, error="disk full")
    assert [i.id for i in ledger.due(50.0, 10)] == [a.id, c.id]
    assert [i.id for i in ledger.due(100.0, 10)] == [a.id, b.id, c.id]
    assert [i.id for i in ledger.due(100.0, 10, exclude=[a.id])] == [b.id, c.id]
    assert [i.id for i in ledger.due(100.0, 1)] == [a.id]
    assert ledger.get(b.id).error == "disk full"


def test_failed_rows_are_reopened_from_scratch(ledger: Ledger) -> None:
    item = ledger.start(ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event").id)
    ledger.fail(item.id, "no SCI extension", quarantine="/q/a_rate.fits")
    assert ledger.recent_failures(5)[0].quarantine == "/q/a_rate.fits"
    item = ledger.reopen(item.id, FileStat(100, 9_000, 3))
    assert (item.state, item.attempts, item.error, item.quarantine, item.mtime_ns) == (QUEUED, 0, None, None, 9_000)
    assert ledger.recent_failures(5) == []


def test_recent_failures_hide_versions_that_were_superseded(ledger: Ledger) -> None:
    old = ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event")
    ledger.fail(old.id, "bad")
    newer = ledger.add(A, EXPOSURE, FileStat(1, 2, 3), "d2", QUEUED, "event")
    ledger.finish(ledger.start(newer.id).id, [])
    bad = ledger.add(Path("/in/b_rate.fits"), EXPOSURE, STAT, "d3", QUEUED, "event")
    ledger.fail(bad.id, "worse")
    assert [i.error for i in ledger.recent_failures(10)] == ["worse"]


def test_members_are_claimed_while_the_association_is_alive(ledger: Ledger) -> None:
    asn = ledger.add(Path("/in/x_asn.json"), ASSOCIATION, STAT, "d9", WAITING, "event")
    members = (Path("/in/a_rate.fits"), Path("/in/bg_rate.fits"))
    ledger.claim_members(asn.id, members)
    assert ledger.members(asn.id) == members
    assert ledger.claimed_by(A).id == asn.id
    assert ledger.claimed_by(Path("/in/other_rate.fits")) is None
    ledger.queue(asn.id)
    ledger.start(asn.id)
    ledger.finish(asn.id, [])
    assert ledger.claimed_by(A).id == asn.id
    again = ledger.add(Path("/in/x_asn.json"), ASSOCIATION, FileStat(1, 2, 3), "d10", WAITING, "event")
    ledger.claim_members(again.id, members)
    ledger.fail(again.id, "members missing")
    assert ledger.claimed_by(A) is None


def test_forgetting_an_association_drops_its_claims(ledger: Ledger) -> None:
    asn = ledger.add(Path("/in/x_asn.json"), ASSOCIATION, STAT, "d9", WAITING, "event")
    ledger.claim_members(asn.id, [A])
    ledger.forget(asn.id)
    assert ledger.claimed_by(A) is None
    assert ledger.members(asn.id) == ()


def test_daemon_row_and_heartbeat(ledger: Ledger) -> None:
    assert ledger.daemon() is None
    ledger.register_daemon(4242, ["/in"], 2, "1.0", now=100.0)
    ledger.beat(2, 7, now=130.0)
    info = ledger.daemon()
    assert (info.pid, info.watching, info.workers, info.started_at, info.beat_at, info.in_flight, info.pending,
            info.stopped_at) == (4242, ("/in",), 2, 100.0, 130.0, 2, 7, None)
    ledger.daemon_stopped(now=140.0)
    assert ledger.daemon().stopped_at == 140.0


def test_readonly_reader_sees_the_writer(tmp_path: Path, ledger: Ledger) -> None:
    ledger.add(A, EXPOSURE, STAT, "d1", QUEUED, "event")
    reader = Ledger.in_folder(tmp_path, readonly=True)
    assert reader.counts()[QUEUED] == 1
    ledger.add(Path("/in/b_rate.fits"), EXPOSURE, STAT, "d2", QUEUED, "event")
    assert reader.counts()[QUEUED] == 2
    reader.close()


def test_readonly_needs_an_existing_ledger(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Ledger.in_folder(tmp_path / "nowhere", readonly=True)


LEGAL = {
    WAITING: {"queue", "fail", "forget"},
    QUEUED: {"start", "fail", "forget"},
    RUNNING: {"finish", "fail", "queue", "abandon"},
    FAILED: {"reopen", "fail"},
    DONE: set(),
}
"""The changes each state allows, written out independently of the ledger's own table."""

CHANGES = {
    "queue": lambda ledger, i: ledger.queue(i, retry_at=5.0, error="disk full"),
    "reopen": lambda ledger, i: ledger.reopen(i, FileStat(100, 9_000, 7)),
    "start": lambda ledger, i: ledger.start(i),
    "finish": lambda ledger, i: ledger.finish(i, ["/out/a_cal.fits"]),
    "fail": lambda ledger, i: ledger.fail(i, "bad"),
    "abandon": lambda ledger, i: ledger.abandon(i),
    "forget": lambda ledger, i: ledger.forget(i),
}


def _row_in(ledger: Ledger, state: str) -> int:
    """A row brought to ``state`` through legal changes only."""
    item = ledger.add(A, EXPOSURE, STAT, "d1", WAITING if state == WAITING else QUEUED, "event")
    if state in (RUNNING, DONE):
        ledger.start(item.id)
    if state == DONE:
        ledger.finish(item.id, [])
    if state == FAILED:
        ledger.fail(item.id, "bad")
    assert ledger.get(item.id).state == state
    return item.id


@pytest.mark.parametrize("state", sorted(LEGAL))
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_each_state_allows_only_its_changes(ledger: Ledger, state: str, change: str) -> None:
    item_id = _row_in(ledger, state)
    before = ledger.get(item_id)
    if change in LEGAL[state]:
        CHANGES[change](ledger, item_id)
        return
    with pytest.raises(TransitionError) as refused:
        CHANGES[change](ledger, item_id)
    assert refused.value.state == state
    assert f"cannot {change} item {item_id} ({A}): it is {state}" in str(refused.value)
    assert ledger.get(item_id) == before


def test_the_table_names_every_state_and_done_is_final() -> None:
    assert set(TRANSITIONS) == {"new", *LEGAL}
    assert set().union(*TRANSITIONS.values()) <= {*LEGAL, "gone"}
    assert TRANSITIONS[DONE] == frozenset()


@pytest.mark.parametrize("state", [RUNNING, DONE])
def test_a_new_row_cannot_start_running_or_done(ledger: Ledger, state: str) -> None:
    with pytest.raises(TransitionError, match=f"a new row of {A} cannot be {state}"):
        ledger.add(A, EXPOSURE, STAT, "d1", state, "event")
    assert ledger.latest(A) is None


def test_a_change_of_a_row_that_does_not_exist_is_a_key_error(ledger: Ledger) -> None:
    with pytest.raises(KeyError):
        ledger.start(99)
    with pytest.raises(KeyError):
        ledger.forget(99)


def test_recover_moves_only_running_rows(ledger: Ledger) -> None:
    done = _row_in(ledger, DONE)
    failed = ledger.fail(ledger.add(Path("/in/b_rate.fits"), EXPOSURE, STAT, "d2", QUEUED, "event").id, "bad")
    assert ledger.recover() == []
    assert (ledger.get(done).state, ledger.get(failed.id).state) == (DONE, FAILED)
