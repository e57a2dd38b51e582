"""The daemon's loop wiring the three parts: stepped one cycle at a time on a fake clock with an executor
run by hand (no threads, no sleeps), then a few in-process runs with real events and threads.

The parts have their own tests (test_intake, test_associations, test_runner); the acceptance tests
(test_acceptance.py) run the real command as a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest

from image2.run.options import RunOptions
from image2.run.process import validate_input
from image2.run.results import ProductResult
from image2.watch import failures
from image2.watch.daemon import MAX_WAIT, Daemon, DaemonBusy, WatchConfig
from image2.watch.ledger import ASSOCIATION, DONE, QUEUED, RUNNING, WAITING, Item, Ledger
from tests.watch.doubles import (
    Executors,
    FakeClock,
    FakeWatcher,
    RecordingLog,
    association,
    calls,
    fake_process,
    rate,
    strict,
)


class Stepped:
    """A daemon over ``tmp/in`` → ``tmp/out`` that the test drives: ``turn`` runs one cycle after moving the
    clock, ``work`` runs what the executor holds first. Errors are not survived: they fail the test (with
    ``guard=None``, the daemon's own guard survives them as in production)."""

    def __init__(self, tmp: Path, process: Callable = fake_process, guard: Any = strict, **settings: Any) -> None:
        self.inbox = tmp / "in"
        self.output = tmp / "out"
        self.inbox.mkdir(exist_ok=True)
        self.output.mkdir(exist_ok=True)
        defaults = dict(settle=5.0, reconcile=60.0, heartbeat=30.0, grace=0.0, retry_delay=10.0, workers=2)
        self.config = WatchConfig(roots=[self.inbox], output_dir=self.output,
                                  options=RunOptions(output_dir=self.output), **{**defaults, **settings})
        self.clock = FakeClock()
        self.log = RecordingLog()
        self.executors = Executors()
        self.daemon = Daemon(self.config, process=process, validate=validate_input, executor=self.executors,
                             log=self.log, clock=self.clock, watcher=FakeWatcher)
        if guard is not None:
            self.daemon.guard = guard
        self.ledger = Ledger.in_folder(self.output)
        self.daemon.start(self.ledger)
        self.watcher: FakeWatcher = self.daemon.watcher

    def __enter__(self) -> Stepped:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.ledger is None:
            return
        self.daemon.request_stop("test")
        self.daemon.shutdown()
        self.kill()

    def kill(self) -> None:
        """The daemon ends here, recording nothing more (as after ``kill -9``)."""
        self.ledger.close()
        self.ledger = None

    def turn(self, seconds: float = 0.0) -> None:
        self.clock.advance(seconds)
        self.daemon.cycle()

    def work(self) -> None:
        self.executors.current.run()
        self.daemon.cycle()

    def until(self, condition: Callable[[], bool], turns: int = 30, step: float = 1.0) -> None:
        """Work and turn (``step`` seconds each) until ``condition`` holds; fail after ``turns``."""
        for _ in range(turns):
            if condition():
                return
            self.work()
            self.turn(step)
        raise AssertionError("condition not met")

    def drop(self, name: str, seed: int = 1, seen: bool = True) -> Path:
        """A file renamed into the inbox; ``seen``: the observer reports it."""
        path = rate(self.inbox, name, seed)
        if seen:
            self.watcher.post(path)
        return path

    def rows(self) -> list[Item]:
        """Every row, read as ``image2 status`` does (also after the daemon stopped)."""
        ledger = Ledger.in_folder(self.output, readonly=True)
        try:
            return [ledger.get(r[0]) for r in ledger._db.execute("SELECT id FROM items ORDER BY id")]
        finally:
            ledger.close()

    def states(self) -> dict[str, str]:
        return {r.path.name: r.state for r in self.rows()}

    def settled(self, *names: str, state: str = DONE) -> Callable[[], bool]:
        return lambda: all(self.states().get(n) == state for n in names)


def test_each_file_is_processed_once_and_every_state_change_is_logged(tmp_path: Path) -> None:
    names = [f"jw0{i}_rate.fits" for i in range(5)]
    with Stepped(tmp_path, workers=2) as h:
        paths = [h.drop(name, seed=i + 1) for i, name in enumerate(names)]
        h.turn()
        assert sorted(h.states().values()) == [QUEUED] * 3 + [RUNNING] * 2
        h.until(h.settled(*names))
        assert sorted(calls(h.output)) == sorted(names)
        for path in paths:
            product = h.output / path.name.replace("_rate.fits", "_cal.fits")
            assert product.read_bytes() == hashlib.sha256(path.read_bytes()).hexdigest().encode()
            assert h.log.for_file(path) == ["queued", "running", "done"]
        assert {(r.attempts, r.found_by) for r in h.rows()} == {(1, "event")}
    assert h.log.named("stopped")[0]["done"] == 5


def test_the_backlog_is_found_at_start_and_a_restart_does_not_redo_it(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    rate(inbox, "a_rate.fits")
    rate(inbox, "b_rate.fits", seed=2)
    with Stepped(tmp_path) as h:
        h.until(h.settled("a_rate.fits", "b_rate.fits"))
        assert {r.found_by for r in h.rows()} == {"startup"}
    with Stepped(tmp_path) as h:
        h.drop("c_rate.fits", seed=3)
        h.until(h.settled("c_rate.fits"))
        h.turn(h.config.reconcile)
        h.work()
    assert sorted(calls(h.output)) == ["a_rate.fits", "b_rate.fits", "c_rate.fits"]


def test_an_association_waits_for_its_members_which_are_not_run_alone(tmp_path: Path) -> None:
    with Stepped(tmp_path) as h:
        asn = association(h.inbox, "o1_asn.json", ["m1_rate.fits", "m2_rate.fits"])
        h.watcher.post(asn)
        h.turn()
        assert h.states() == {"o1_asn.json": WAITING}
        h.drop("m1_rate.fits")
        h.turn(1.0)
        h.turn(1.0)
        assert h.states() == {"o1_asn.json": WAITING}
        h.drop("m2_rate.fits", seed=2)
        h.until(h.settled("o1_asn.json"))
        assert calls(h.output) == ["o1_asn.json"]
        assert h.states() == {"o1_asn.json": DONE} and h.rows()[0].kind == ASSOCIATION
        assert sorted(Path(p).name for p in h.rows()[0].products) == ["m1_cal.fits", "m2_cal.fits"]
        assert {e["file"] for e in h.log.named("claimed")} == {str(h.inbox / "m1_rate.fits"),
                                                               str(h.inbox / "m2_rate.fits")}
        assert h.log.for_file(asn) == ["waiting", "queued", "running", "done"]
    with Stepped(tmp_path, reconcile=1.0) as h:  # after a restart, members of a done association stay claimed
        for _ in range(3):
            h.turn(h.config.reconcile)
            h.turn(h.config.settle)
            h.work()
        assert len(h.log.named("scan")) >= 3
    assert calls(h.output) == ["o1_asn.json"]


def test_an_association_after_its_member_ran_alone_replaces_its_products(tmp_path: Path) -> None:
    with Stepped(tmp_path) as h:
        h.drop("m1_rate.fits")
        h.until(h.settled("m1_rate.fits"))
        h.watcher.post(association(h.inbox, "o4_asn.json", ["m1_rate.fits"]))
        h.until(h.settled("o4_asn.json"))
        assert calls(h.output) == ["m1_rate.fits", "o4_asn.json"]
        assert h.rows()[-1].overwrite
        assert [e["replaces_products"] for e in h.log.named("queued") if e["file"].endswith("asn.json")] == [True]


def test_an_association_whose_members_never_come_fails_and_releases_them(tmp_path: Path) -> None:
    with Stepped(tmp_path, member_wait=10.0) as h:
        h.watcher.post(association(h.inbox, "o2_asn.json", ["m1_rate.fits", "absent_rate.fits"]))
        h.drop("m1_rate.fits")
        h.until(h.settled("o2_asn.json", state="failed"), turns=15)
        assert h.rows()[0].error == "members not complete within 10 s; missing: absent_rate.fits"
        h.turn(h.config.reconcile)  # released: the member is now an input of its own
        h.until(h.settled("m1_rate.fits"))
        assert calls(h.output) == ["m1_rate.fits"]


def test_a_rescan_finds_what_a_troubled_observer_missed(tmp_path: Path) -> None:
    with Stepped(tmp_path) as h:
        h.turn()
        h.watcher.problem = "observer thread is not running"
        h.drop("lost_rate.fits", seen=False)
        h.turn(2.0)
        assert h.log.named("observer-restart") == [{"reason": "observer thread is not running"}]
        assert h.watcher.restarts == 1 and h.log.named("scan")[-1] == {"source": "reconcile"}
        h.until(h.settled("lost_rate.fits"))
        assert h.rows()[0].found_by == "reconcile"


def test_periodic_reconcile_and_sighup_find_what_events_missed(tmp_path: Path) -> None:
    with Stepped(tmp_path, reconcile=60.0) as h:
        h.turn()
        h.drop("quiet_rate.fits", seen=False)
        h.turn(59.0)
        h.turn(h.config.settle)
        assert h.states() == {}
        h.turn(1.0)
        h.until(h.settled("quiet_rate.fits"))
        h.drop("hup_rate.fits", seen=False)
        h.daemon._on_reconcile_signal()
        h.turn()
        h.until(h.settled("hup_rate.fits"))
        assert {r.found_by for r in h.rows()} == {"reconcile"}


def test_an_input_changed_while_queued_is_taken_again_as_its_new_version(tmp_path: Path) -> None:
    with Stepped(tmp_path, workers=1) as h:
        h.drop("a_rate.fits")
        h.drop("b_rate.fits")
        h.turn()  # a runs, b waits for the worker
        rate(h.inbox, "b_rate.fits", seed=2)  # rewritten without an event reaching the daemon
        h.work()
        assert h.log.named("dropped")[0]["reason"] == "input changed after it was queued"
        h.until(h.settled("a_rate.fits", "b_rate.fits"))
        b = h.ledger.latest(h.inbox / "b_rate.fits")
        assert b.digest == hashlib.sha256((h.inbox / "b_rate.fits").read_bytes()).hexdigest()
        assert calls(h.output) == ["a_rate.fits", "b_rate.fits"]


def test_stop_puts_running_items_back_and_the_next_start_runs_them(tmp_path: Path) -> None:
    with Stepped(tmp_path, grace=0.0) as h:
        path = h.drop("a_rate.fits")
        h.turn()
        assert h.states() == {"a_rate.fits": RUNNING}
    item = h.rows()[0]
    assert (item.state, item.attempts, item.overwrite) == (QUEUED, 0, True)
    assert h.log.for_file(path)[-1] == "abandoned"
    assert h.executors.current.closed
    with Stepped(tmp_path) as again:
        again.turn()
        assert [t.options.overwrite for t in again.executors.current.tasks()] == [True]
        again.until(again.settled("a_rate.fits"))
        assert again.log.named("requeued") == []


def test_rows_left_running_by_a_killed_daemon_run_again(tmp_path: Path) -> None:
    with Stepped(tmp_path) as h:
        path = h.drop("a_rate.fits")
        h.turn()
        h.kill()
    with Stepped(tmp_path) as again:
        assert again.log.named("requeued")[0]["file"] == str(path)
        again.until(again.settled("a_rate.fits"))
        assert (again.rows()[0].attempts, again.rows()[0].overwrite) == (1, True)


def test_heartbeat_reaches_log_and_ledger(tmp_path: Path) -> None:
    with Stepped(tmp_path, heartbeat=30.0) as h:
        h.turn()
        h.turn(29.0)
        assert len(h.log.named("heartbeat")) == 1
        h.turn(1.0)
        assert len(h.log.named("heartbeat")) == 2
        info = h.ledger.daemon()
        assert info.pid == os.getpid() and info.beat_at == info.started_at + 30.0 and info.stopped_at is None
    ledger = Ledger.in_folder(h.output, readonly=True)
    try:
        assert ledger.daemon().stopped_at == h.clock.wall()
    finally:
        ledger.close()


def test_the_loop_sleeps_until_the_next_thing_is_due(tmp_path: Path) -> None:
    with Stepped(tmp_path, settle=0.25) as h:
        assert h.daemon.sleep_time() == 0.0  # the start-up scan is under way
        h.turn()
        assert h.daemon.sleep_time() == MAX_WAIT
        h.drop("a_rate.fits", seen=False)
        h.watcher.post(h.inbox / "a_rate.fits", closed=False)
        h.turn()
        assert h.daemon.sleep_time() == 0.25


def test_an_impossible_ledger_change_is_refused_and_the_loop_goes_on(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(failures, "PAUSE_AFTER_ERROR", 0.0)
    log = RecordingLog()
    with Stepped(tmp_path, guard=lambda what, action: failures.survive(log, what, action)) as h:
        path = h.drop("a_rate.fits")
        h.turn()
        item = h.ledger.latest(path)
        h.ledger.fail(item.id, "failed behind the daemon's back")
        h.work()  # the run ends well, but a failed row cannot become done
        [error] = log.named("internal-error")
        assert error["during"] == "outcome" and "cannot finish item" in error["error"]
        h.drop("b_rate.fits")
        h.until(h.settled("b_rate.fits"))
        assert h.states()["a_rate.fits"] == "failed"


class FullDisk:
    """The ledger's SQLite connection, whose writes fail as on a full disk while ``full`` (a fault injected
    at the write layer); it counts the writes it refused."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.full = False
        self.refused = 0

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        if self.full and sql.split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "BEGIN"):
            self.refused += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_ledger_that_cannot_be_written_is_said_once_retried_after_doubling_delays_and_nothing_is_lost(
        tmp_path: Path) -> None:
    with Stepped(tmp_path, guard=None, workers=1) as h:
        disk = FullDisk(h.ledger._db)
        h.ledger._db = disk
        running = h.drop("a_rate.fits")
        h.turn()
        assert h.states() == {"a_rate.fits": RUNNING}
        disk.full = True
        h.work()  # a is done, but the ledger cannot say so: kept, not lost
        late = h.drop("b_rate.fits", seed=2)  # arrives during the outage
        h.daemon.intake.begin_scan("reconcile")  # a scan under way does not make the loop spin
        assert h.daemon.sleep_time() == pytest.approx(1.0)
        for _ in range(60):  # 30 s
            h.turn(0.5)
        assert disk.refused <= 8  # a few retries after doubling delays, no tight loop
        [said] = h.log.named("ledger-unwritable")
        assert "database or disk is full" in said["reason"] and h.log.named("internal-error") == []
        assert h.states() == {"a_rate.fits": RUNNING}
        disk.full = False
        h.until(h.settled("a_rate.fits", "b_rate.fits"), step=5.0)
        assert len(h.log.named("ledger-writable")) == 1
        assert calls(h.output) == ["a_rate.fits", "b_rate.fits"]  # a ran once: its outcome was kept
        assert h.log.for_file(running)[-1] == "done" and h.log.for_file(late)[-1] == "done"


def test_survive_logs_an_error_and_carries_on(monkeypatch) -> None:
    monkeypatch.setattr(failures, "PAUSE_AFTER_ERROR", 0.0)
    log = RecordingLog()
    failures.survive(log, "cycle", lambda: 1 / 0)
    assert log.named("internal-error") == [{"during": "cycle", "error": "ZeroDivisionError('division by zero')"}]


# -- in process, with real events and threads --------------------------------------------------


def wait_until(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll ``condition`` until true (the daemon runs on its own thread); fail the test if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class Running:
    """A daemon running on a thread over ``tmp/in`` → ``tmp/out`` with the real observer and a thread pool."""

    def __init__(self, tmp: Path, process: Callable = fake_process, **settings: Any) -> None:
        self.inbox = tmp / "in"
        self.output = tmp / "out"
        self.inbox.mkdir(exist_ok=True)
        self.output.mkdir(exist_ok=True)
        defaults = dict(settle=0.3, reconcile=60.0, heartbeat=0.5, grace=10.0, retry_delay=0.1, workers=2)
        self.config = WatchConfig(roots=[self.inbox], output_dir=self.output,
                                  options=RunOptions(output_dir=self.output), **{**defaults, **settings})
        self.log = RecordingLog()
        self.daemon = Daemon(self.config, process=process, validate=validate_input,
                             executor=lambda n: ThreadPoolExecutor(n), log=self.log)
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        wait_until(lambda: self.log.named("scan"))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.daemon.request_stop("test")
        self.thread.join(30)
        assert not self.thread.is_alive()
        assert self.log.named("internal-error") == []

    def states(self) -> dict[str, str]:
        ledger = Ledger.in_folder(self.output, readonly=True)
        try:
            return {Path(p).name: s for p, s in ledger._db.execute("SELECT path, state FROM items ORDER BY id")}
        finally:
            ledger.close()

    def settled(self, *names: str, state: str = DONE) -> Callable[[], bool]:
        return lambda: all(self.states().get(n) == state for n in names)


def test_in_process_each_file_is_done_once_and_a_restart_does_not_redo(tmp_path: Path) -> None:
    names = ["a_rate.fits", "b_rate.fits", "c_rate.fits"]
    with Running(tmp_path) as h:
        for number, name in enumerate(names):
            rate(h.inbox, name, seed=number + 1)
        wait_until(h.settled(*names))
        for name in names:
            assert h.log.for_file(h.inbox / name) == ["queued", "running", "done"]
    with Running(tmp_path) as h:
        rate(h.inbox, "d_rate.fits", seed=4)
        wait_until(h.settled("d_rate.fits"))
    assert sorted(calls(h.output)) == [*names, "d_rate.fits"]
    assert h.log.named("stopped")[0]["done"] == 4


def test_in_process_an_association_runs_once_when_its_members_are_complete(tmp_path: Path) -> None:
    with Running(tmp_path) as h:
        association(h.inbox, "o1_asn.json", ["m1_rate.fits", "m2_rate.fits"])
        wait_until(h.settled("o1_asn.json", state=WAITING))
        rate(h.inbox, "m1_rate.fits")
        rate(h.inbox, "m2_rate.fits", seed=2)
        wait_until(h.settled("o1_asn.json"))
    assert calls(h.output) == ["o1_asn.json"] and h.states() == {"o1_asn.json": DONE}


def test_graceful_stop_lets_running_items_finish(tmp_path: Path) -> None:
    gate = threading.Event()

    def gated(path: Path, options: RunOptions) -> list[ProductResult]:
        gate.wait(30)
        return fake_process(path, options)

    h = Running(tmp_path, process=gated, grace=30.0)
    with h:
        rate(h.inbox, "a_rate.fits")
        wait_until(h.settled("a_rate.fits", state=RUNNING))
        h.daemon.request_stop("test")
        wait_until(lambda: h.log.named("stopping"))
        gate.set()
        wait_until(lambda: h.log.named("stopped"))  # leaving the block asks to stop again: abandon at once
    assert h.states() == {"a_rate.fits": DONE}
    assert h.log.named("stopped")[0]["done"] == 1 and h.log.named("abandoned") == []


def test_one_daemon_per_output_folder(tmp_path: Path) -> None:
    config = WatchConfig(roots=[tmp_path / "in"], output_dir=tmp_path / "out",
                         options=RunOptions(output_dir=tmp_path / "out"))
    first = Daemon(config, log=RecordingLog())
    second = Daemon(config, log=RecordingLog())
    with first._lock():
        with pytest.raises(DaemonBusy, match=rf"another image2 watch \(pid {os.getpid()}\)"):
            second.run()
    assert not (tmp_path / "out" / "image2-watch.sqlite").exists()


def test_the_ledger_lives_where_the_operator_says_and_status_reads_it_there(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from image2.cli.main import cli

    elsewhere = tmp_path / "state" / "ledger.sqlite"
    with Running(tmp_path, ledger=elsewhere) as h:
        rate(h.inbox, "a_rate.fits")
        wait_until(lambda: elsewhere.exists() and _states_in(elsewhere) == {"a_rate.fits": DONE})
        with pytest.raises(DaemonBusy, match="ledger.sqlite: another image2 watch"):
            Daemon(attrs.evolve(h.config, output_dir=tmp_path / "other"), process=fake_process).run()
    assert not (h.output / "image2-watch.sqlite").exists()
    result = CliRunner().invoke(cli, ["status", str(h.output), "--ledger", str(elsewhere), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"]["done"] == 1


def _states_in(ledger_path: Path) -> dict[str, str]:
    ledger = Ledger(ledger_path, readonly=True)
    try:
        return {Path(p).name: s for p, s in ledger._db.execute("SELECT path, state FROM items ORDER BY id")}
    finally:
        ledger.close()


def test_watch_command_builds_its_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from image2.cli.main import cli
    from image2.watch import daemon as daemon_module

    seen = {}

    class Recorder:
        def __init__(self, config: WatchConfig, **kwargs: Any) -> None:
            seen["config"] = config

        def run(self) -> int:
            return 0

    monkeypatch.setattr(daemon_module, "Daemon", Recorder)
    runner = CliRunner()
    result = runner.invoke(cli, ["watch", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "out"),
                                 "--poll", "--recursive", "--workers", "3", "--settle", "4", "--pattern", "*.fits",
                                 "--refs", str(tmp_path / "refs"), "--quarantine", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.roots == (tmp_path / "a", tmp_path / "b")
    assert (config.poll, config.recursive, config.workers, config.settle, config.patterns) == (
        1.0, True, 3, 4.0, ("*.fits",))
    assert config.options.reference_dirs == (tmp_path / "refs",)
    assert config.options.output_dir == tmp_path / "out" and config.quarantine == tmp_path / "q"
    assert config.ledger_file == tmp_path / "out" / "image2-watch.sqlite"
    result = runner.invoke(cli, ["watch", str(tmp_path / "a"), "-o", str(tmp_path / "out"), "--poll=2.5",
                                 "--ledger", str(tmp_path / "state" / "l.sqlite")])
    assert result.exit_code == 0, result.output
    assert seen["config"].ledger_file == tmp_path / "state" / "l.sqlite"
    assert seen["config"].poll == 2.5 and seen["config"].patterns == (
        "*_rate.fits", "*_rateints.fits", "*_Liger_*_SCI_LVL1_*.fits", "*_IRIS_*_SCI_LVL1_*.fits", "*_asn.json")
    result = runner.invoke(cli, ["watch", str(tmp_path / "a"), "-o", str(tmp_path / "out"), "--step", "nonsense"])
    assert result.exit_code == 2
