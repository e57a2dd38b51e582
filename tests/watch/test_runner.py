"""The runner alone: due rows to an executor the test runs by hand, outcomes settled, retries on a fake clock."""

from __future__ import annotations

import json
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import attrs
import pytest

from image2.run.options import RunOptions
from image2.run.process import process_input
from image2.watch import tasks
from image2.watch.config import WatchConfig
from image2.watch.failures import Failures
from image2.watch.identity import content_digest, stat_of
from image2.watch.ledger import DONE, EXPOSURE, FAILED, QUEUED, RUNNING, Item, Ledger
from image2.watch.runner import RETRY_CAP, Runner
from tests.watch.doubles import NO_SPACE, STALE, Executors, FakeClock, RecordingLog, calls, fake_process, rate, strict


@attrs.define
class Setup:
    inbox: Path
    output: Path
    clock: FakeClock
    log: RecordingLog
    ledger: Ledger
    executors: Executors
    runner: Runner

    def queue(self, path: Path) -> Item:
        """Record ``path`` queued, as intake does once it is complete."""
        return self.ledger.add(path, EXPOSURE, stat_of(path), content_digest(path), QUEUED, "event",
                               now=self.clock.wall())

    def row(self, item: Item) -> Item:
        return self.ledger.get(item.id)

    def turn(self) -> list[Path]:
        """Run whatever the executor holds, settle it, and start what is due."""
        self.executors.current.run()
        self.runner.collect()
        return self.runner.submit()


@pytest.fixture
def make(tmp_path: Path):
    ledgers = []

    def build(process: Any = fake_process, prepare: Any = None,
              **settings: Any) -> Setup:
        inbox, output = tmp_path / "in", tmp_path / "out"
        inbox.mkdir(exist_ok=True)
        output.mkdir(exist_ok=True)
        settings = {"workers": 2, "retry_delay": 10.0, "quarantine": tmp_path / "q", **settings}
        config = WatchConfig(roots=[inbox], output_dir=output, options=RunOptions(output_dir=output), **settings)
        clock, log, ledger, executors = FakeClock(), RecordingLog(), Ledger.in_folder(output), Executors()
        ledgers.append(ledger)
        runner = Runner(config, ledger, Failures(ledger, log, config.quarantine, clock), log, clock,
                        process=process, executor=executors, guard=strict, prepare=prepare)
        runner.start()
        return Setup(inbox, output, clock, log, ledger, executors, runner)

    yield build
    for ledger in ledgers:
        ledger.close()


def test_a_queued_row_runs_once_and_is_done_with_its_products(make) -> None:
    s = make()
    item = s.queue(rate(s.inbox, "a_rate.fits"))
    assert s.runner.submit() == []
    assert (s.row(item).state, s.row(item).attempts, len(s.runner)) == (RUNNING, 1, 1)
    assert s.runner.is_running(item.path)
    [task] = s.executors.current.tasks()
    assert (task.item_id, task.path, task.options.overwrite) == (item.id, item.path, False)
    s.turn()
    done = s.row(item)
    assert (done.state, done.products) == (DONE, (str(s.output / "a_cal.fits"),))
    assert (s.output / "a_cal.fits").read_bytes() == done.digest.encode()
    assert s.log.for_file(item.path) == ["running", "done"]
    assert calls(s.output) == ["a_rate.fits"] and len(s.runner) == 0


def test_the_workers_bound_the_runs_and_a_path_never_runs_twice_at_once(make) -> None:
    s = make(workers=2)
    a = s.queue(rate(s.inbox, "a_rate.fits"))
    s.runner.submit()
    newer = s.queue(rate(s.inbox, "a_rate.fits", seed=2))  # a new version lands while the first runs
    others = [s.queue(rate(s.inbox, f"{n}_rate.fits")) for n in "bc"]
    s.runner.submit()
    assert [s.row(i).state for i in (a, newer, *others)] == [RUNNING, QUEUED, RUNNING, QUEUED]
    s.turn()
    assert [s.row(i).state for i in (a, newer, *others)] == [DONE, RUNNING, DONE, RUNNING]


def test_transient_failures_are_retried_with_doubling_delays_and_overwrite(make) -> None:
    s = make(retry_delay=10.0)
    item = s.queue(rate(s.inbox, "x_transient_rate.fits"))
    s.runner.submit()
    s.turn()
    row = s.row(item)
    assert (row.state, row.attempts, row.retry_at) == (QUEUED, 1, s.clock.wall() + 10.0)
    assert STALE in row.error
    s.clock.advance(9.9)
    s.runner.submit()
    assert s.executors.current.tasks() == []
    s.clock.advance(0.1)
    s.runner.submit()
    assert [t.options.overwrite for t in s.executors.current.tasks()] == [True]  # attempt 1 may have published
    s.turn()
    assert s.row(item).retry_at == s.clock.wall() + 20.0
    s.clock.advance(20.0)
    s.runner.submit()
    s.turn()
    assert (s.row(item).state, s.row(item).attempts) == (DONE, 3)
    assert [(r["attempt"], r["delay"]) for r in s.log.named("retry")] == [(1, 10.0), (2, 20.0)]


def test_the_retry_delay_is_capped(make) -> None:
    s = make(retry_delay=1000.0, max_attempts=10)
    item = s.queue(rate(s.inbox, "a_rate.fits"))
    s.ledger.start(item.id)
    s.ledger.queue(item.id)
    s.ledger.start(item.id)
    s.ledger.queue(item.id)
    third = s.ledger.start(item.id)
    row = s.runner.settle(third, tasks.Outcome(item.id, tasks.TRANSIENT, (), "disk full"))
    assert 1000.0 * 2 ** (third.attempts - 1) > RETRY_CAP
    assert (row.state, row.retry_at) == (QUEUED, s.clock.wall() + RETRY_CAP)


def test_a_retry_replaces_what_an_interrupted_attempt_published(make) -> None:
    s = make(retry_delay=0.0)
    item = s.queue(rate(s.inbox, "x_partial_rate.fits"))
    s.runner.submit()
    s.turn()
    s.turn()
    assert (s.row(item).state, s.row(item).attempts) == (DONE, 2)
    assert sorted(p.name for p in s.output.glob("*.fits")) == ["x_partial_cal.fits", "x_partial_i2d.fits"]


def test_transient_failures_are_bounded_and_the_input_stays(make) -> None:
    s = make(max_attempts=2, retry_delay=0.0)
    item = s.queue(rate(s.inbox, "x_transient_rate.fits"))
    s.runner.submit()
    s.turn()
    s.turn()
    row = s.row(item)
    assert row.state == FAILED and row.error.startswith("gave up after 2 attempts:") and STALE in row.error
    assert row.quarantine is None and item.path.exists()


def _names(s: Setup) -> list[str]:
    return [t.path.name for t in s.executors.current.tasks()]


def test_a_full_disk_puts_the_run_back_uncounted_and_pauses_until_a_run_gets_through(make) -> None:
    s = make(workers=2)
    full = s.queue(rate(s.inbox, "x_nospace_rate.fits"))
    other = s.queue(rate(s.inbox, "y_rate.fits", seed=2))
    third = s.queue(rate(s.inbox, "z_rate.fits", seed=3))
    s.runner.submit()
    s.executors.current.run(3)  # the two warm-up calls, then x, which runs out of disk while y still runs
    s.runner.collect()
    row = s.row(full)
    assert (row.state, row.attempts, row.overwrite, row.retry_at) == (QUEUED, 0, True, None)
    assert NO_SPACE in row.error
    assert [e["retry_in"] for e in s.log.named("runs-paused")] == [1.0]
    s.runner.submit()
    assert _names(s) == ["y_rate.fits"]  # paused: nothing starts beside y
    s.turn()  # y is done: a run got through, the pause ends, x and z start
    assert (s.row(other).state, s.log.named("runs-resumed")[0]["after"]) == (DONE, row.error)
    assert _names(s) == ["x_nospace_rate.fits", "z_rate.fits"]
    assert s.row(third).state == RUNNING


def test_a_full_disk_is_said_once_and_tried_again_with_one_run_after_doubling_delays(make) -> None:
    s = make(workers=2)
    a, b, c = (s.queue(rate(s.inbox, f"{n}_nospace_rate.fits", seed=i + 1)) for i, n in enumerate("abc"))
    s.runner.submit()
    s.turn()  # a and b run out of disk: paused for 1 s
    assert _names(s) == []
    for delay in (1.0, 2.0):
        s.clock.advance(delay - 0.1)
        s.runner.submit()
        assert _names(s) == []
        s.clock.advance(0.1)
        s.runner.submit()
        assert _names(s) == ["a_nospace_rate.fits"]  # one run, alone
        s.turn()
    assert s.row(a).state == DONE  # its third call got through
    assert _names(s) == ["b_nospace_rate.fits", "c_nospace_rate.fits"]
    s.turn()  # both out of disk again, a moment after the end: not said again
    assert [e["retry_in"] for e in s.log.named("runs-paused")] == [1.0]
    assert len(s.log.named("runs-resumed")) == 1
    assert [(s.row(i).state, s.row(i).attempts) for i in (a, b, c)] == [(DONE, 1), (QUEUED, 0), (QUEUED, 0)]


def test_a_row_already_at_its_attempt_limit_fails_before_running(make) -> None:
    s = make(max_attempts=1)
    item = s.queue(rate(s.inbox, "a_rate.fits"))
    s.ledger.start(item.id)
    s.ledger.queue(item.id, error="output disk is full")
    s.runner.submit()
    assert s.executors.current.tasks() == []
    assert s.row(item).error == "gave up after 1 attempts: output disk is full"


def test_a_failure_of_a_valid_input_is_final_and_not_quarantined(make, tmp_path: Path) -> None:
    s = make()
    item = s.queue(rate(s.inbox, "x_broken_rate.fits"))
    s.runner.submit()
    s.turn()
    row = s.row(item)
    assert (row.state, row.error, row.quarantine) == (FAILED, "x_broken: photom: no conversion factor", None)
    assert item.path.exists() and not (tmp_path / "q").exists()
    assert s.log.named("failed")[0]["invalid"] is False


def test_an_invalid_input_is_quarantined_with_its_reason(make, tmp_path: Path) -> None:
    s = make(process=process_input)
    junk = s.inbox / "junk_rate.fits"
    junk.write_text("not a FITS file at all" * 200)
    item = s.queue(junk)
    s.runner.submit()
    s.turn()
    row = s.row(item)
    assert row.state == FAILED and row.quarantine == str(tmp_path / "q" / "junk_rate.fits")
    assert not junk.exists() and (tmp_path / "q" / "junk_rate.fits").exists()
    document = json.loads((tmp_path / "q" / "junk_rate.fits.reason.json").read_text())
    assert (document["reason"], document["item"], document["attempts"]) == (row.error, item.id, 1)
    assert s.log.for_file(junk) == ["running", "failed", "quarantined"]


def test_a_dead_worker_pool_is_replaced_and_its_rows_retried(make) -> None:
    s = make(retry_delay=0.0)
    item = s.queue(rate(s.inbox, "a_rate.fits"))
    s.runner.submit()
    s.executors.current.break_pool(BrokenProcessPool("a worker died"))
    [outcome] = s.runner.collect()
    assert (outcome.verdict, outcome.error) == (tasks.TRANSIENT, "its worker process died")
    assert len(s.executors.made) == 2 and s.executors.made[0].closed
    assert s.log.named("executor-replaced")[0]["reason"] == "a worker process died"
    row = s.row(item)
    assert (row.state, row.error, row.attempts, row.deaths) == (QUEUED, "its worker process died", 0, 1)
    s.runner.submit()
    s.turn()
    assert (s.row(item).state, s.row(item).attempts) == (DONE, 1)


def test_a_worker_death_makes_suspects_that_run_alone_and_a_poison_pill_is_quarantined(make, tmp_path: Path) -> None:
    s = make(retry_delay=0.0)
    poison = s.queue(rate(s.inbox, "a_rate.fits"))
    innocent = s.queue(rate(s.inbox, "b_rate.fits", seed=2))
    s.runner.submit()
    assert len(s.runner) == 2
    s.executors.current.break_pool(BrokenProcessPool("a worker died"))
    s.runner.collect()
    assert {(s.row(i).state, s.row(i).deaths, s.row(i).attempts) for i in (poison, innocent)} == {(QUEUED, 0, 0)}
    assert [e["alone"] for e in s.log.named("worker-died")] == [False, False]
    for deaths in (1, 2):
        s.runner.submit()
        assert [t.path.name for t in s.executors.current.tasks()] == ["a_rate.fits"]  # alone, nothing beside it
        s.executors.current.break_pool(BrokenProcessPool("a worker died"))
        s.runner.collect()
        assert s.row(poison).deaths == deaths
    row = s.row(poison)
    assert (row.state, row.quarantine) == (FAILED, str(tmp_path / "q" / "a_rate.fits"))
    assert row.error == "its worker process died: its worker died 2 times while it ran alone (a poison pill)"
    document = json.loads((tmp_path / "q" / "a_rate.fits.reason.json").read_text())
    assert (document["reason"], document["deaths"]) == (row.error, 2)
    s.runner.submit()
    assert [t.path.name for t in s.executors.current.tasks()] == ["b_rate.fits"]
    s.turn()
    assert (s.row(innocent).state, s.row(innocent).attempts, s.row(innocent).deaths) == (DONE, 1, 0)


def test_a_dead_pool_is_not_replaced_while_stopping(make) -> None:
    s = make()
    s.queue(rate(s.inbox, "a_rate.fits"))
    s.runner.submit()
    s.executors.current.break_pool(BrokenProcessPool("a worker died"))
    s.runner.collect(replace_broken=False)
    assert len(s.executors.made) == 1


def test_an_executor_that_refuses_work_is_replaced_and_the_attempt_not_counted(make) -> None:
    s = make()
    item = s.queue(rate(s.inbox, "a_rate.fits"))
    s.executors.current.closed = True
    s.runner.submit()
    row = s.row(item)
    assert (row.state, row.attempts, row.overwrite) == (QUEUED, 0, True)
    assert "executor refused work" in s.log.named("executor-replaced")[0]["reason"]
    s.runner.submit()
    s.turn()
    assert s.row(item).state == DONE


def test_an_input_that_vanished_or_changed_while_queued_is_dropped(make) -> None:
    s = make()
    gone = s.queue(rate(s.inbox, "gone_rate.fits"))
    changed = s.queue(rate(s.inbox, "changed_rate.fits"))
    gone.path.unlink()
    with open(changed.path, "ab") as handle:
        handle.write(b"more")
    assert s.runner.submit() == [changed.path]
    assert s.ledger.latest(gone.path) is None and s.ledger.latest(changed.path) is None
    assert [e["reason"] for e in s.log.named("dropped")] == ["input vanished", "input changed after it was queued"]
    assert s.executors.current.tasks() == []


def test_stop_settles_finished_runs_and_puts_the_others_back(make) -> None:
    s = make(workers=2)
    first, second = (s.queue(rate(s.inbox, f"{n}_rate.fits")) for n in "ab")
    s.runner.submit()
    s.executors.current.run(count=3)  # two warm-ups and the first run
    abandoned = s.runner.stop()
    assert s.row(first).state == DONE
    assert [i.id for i in abandoned] == [second.id]
    row = s.row(second)
    assert (row.state, row.attempts, row.overwrite, row.started_at) == (QUEUED, 0, True, None)
    assert s.log.for_file(second.path) == ["running", "abandoned"]
    assert s.executors.current.closed and s.executors.current.pending == []
    assert len(s.runner) == 0


def test_rows_left_running_by_a_dead_daemon_are_requeued(make) -> None:
    s = make()
    item = s.queue(rate(s.inbox, "a_rate.fits"))
    s.ledger.start(item.id)
    assert [i.id for i in s.runner.recover()] == [item.id]
    assert s.row(item).state == QUEUED
    assert s.log.named("requeued")[0]["reason"] == "was running when the previous daemon stopped"


def test_prepare_completes_each_runs_options(make) -> None:
    seen = []

    def prepare(path: Path, options: RunOptions) -> RunOptions:
        seen.append(path)
        return attrs.evolve(options, strict=True)

    s = make(prepare=prepare)
    item = s.queue(rate(s.inbox, "a_rate.fits"))
    s.runner.submit()
    assert [t.options.strict for t in s.executors.current.tasks()] == [True]
    assert seen == [item.path]

