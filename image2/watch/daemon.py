"""The watch daemon: every input that lands in the watched folders is calibrated exactly once.

One coordinating thread owns the ledger and all decisions, made by three parts:
intake (``watch/intake.py``: scans, hints, readiness, admission into the ledger), the
association waits (``watch/associations.py``) and the runner (``watch/runner.py``: the
executor, retries, quarantine). The watchdog observer only posts hints. This module is the
loop that wires them: the lock on the output folder, signals, the timers (rescans, observer
health, heartbeat), and the stop: on SIGINT/SIGTERM the daemon stops taking work, lets running
items finish within a grace period (or puts them back in the queue for the next start) and
exits 0; asked twice, it puts them back at once.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog

from image2._version import __version__
from image2.errors import Image2Error
from image2.io.atomic import remove_abandoned_staging
from image2.run.executors import process_pool
from image2.run.process import process_input, validate_input
from image2.watch.associations import Associations
from image2.watch.clock import Clock, SystemClock
from image2.watch.config import WatchConfig
from image2.watch.failures import Failures, Outage, survive
from image2.watch.intake import RECONCILE, STARTUP, Intake
from image2.watch.ledger import Ledger
from image2.watch.observer import Hints, Watcher
from image2.watch.runner import Runner
from image2.watch.wakeup import wake_on_signals

LOCK_NAME = "image2-watch.lock"

HINT_CAPACITY = 10_000
MAX_WAIT = 1.0
HEALTH_INTERVAL = 2.0


class DaemonBusy(Image2Error):
    """Another watch daemon already uses the output folder (its ledger has one writer)."""


class Daemon:
    """Run the watch loop until asked to stop; see the module documentation for the rules.

    ``run`` is the whole life of a daemon. Tests step it instead: ``start(ledger)``, then ``cycle()``
    as often as they like (with a fake clock and executor), then ``shutdown()``.
    """

    ledger: Ledger
    intake: Intake
    associations: Associations
    runner: Runner
    watcher: Watcher

    def __init__(
        self,
        config: WatchConfig,
        process: Callable[[Path, Any], Any] = process_input,
        validate: Callable[[Path], None] = validate_input,
        executor: Callable[[int], concurrent.futures.Executor] | None = None,
        log: Any = None,
        prepare: Callable[[Path, Any], Any] | None = None,
        clock: Clock | None = None,
        watcher: Callable[..., Watcher] = Watcher,
    ) -> None:
        self.config = config
        self.log = log if log is not None else structlog.get_logger("image2.watch")
        self.clock = clock if clock is not None else SystemClock()
        self.wake = threading.Event()
        self.hints = Hints(HINT_CAPACITY, self.wake)
        self.ledger_outage = Outage("ledger-unwritable", "ledger-writable", self.log, self.clock)
        self.guard = functools.partial(survive, self.log, outage=self.ledger_outage)
        self._process = process
        self._validate = validate
        self._new_executor = executor or process_pool
        self._prepare = prepare
        self._new_watcher = watcher
        self._stop_reason: str | None = None
        self._abandon = False
        self._reconcile_asked = False
        self._missing: tuple[Path, ...] = ()
        now = self.clock.monotonic()
        self._next_heartbeat = now
        self._next_health = now + HEALTH_INTERVAL

    # -- outside control -------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop (from any thread); asked twice, running items are abandoned at once."""
        self._on_stop_signal(reason)
        self.wake.set()

    def _on_stop_signal(self, reason: str) -> None:
        # Signal handlers only assign attributes (taking a lock here could deadlock the interrupted
        # thread); the loop wakes at least every MAX_WAIT seconds to notice.
        if self._stop_reason is not None:
            self._abandon = True
        else:
            self._stop_reason = reason

    def _on_reconcile_signal(self) -> None:
        self._reconcile_asked = True

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Watch until stopped; return the exit status (0 after a clean stop)."""
        with self._lock(), self._signals():
            ledger = Ledger(self.config.ledger_file)
            try:
                self.start(ledger)
                while self._stop_reason is None:
                    self.guard("cycle", self.cycle)
                    self.wake.wait(self.sleep_time())
                    self.wake.clear()
                self.shutdown()
            finally:
                ledger.close()
        return 0

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold the lock of the output folder, and of the ledger when it is kept elsewhere: one daemon each."""
        self.config.output_dir.mkdir(parents=True, exist_ok=True)
        ledger = self.config.ledger_file
        with contextlib.ExitStack() as locks:
            locks.enter_context(self._lock_file(self.config.output_dir / LOCK_NAME, self.config.output_dir))
            if ledger.parent != self.config.output_dir:
                ledger.parent.mkdir(parents=True, exist_ok=True)
                locks.enter_context(self._lock_file(ledger.with_name(ledger.name + ".lock"), ledger))
            yield

    @contextlib.contextmanager
    def _lock_file(self, path: Path, what: Path) -> Iterator[None]:
        handle = open(path, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                raise DaemonBusy(f"{what}: another image2 watch (pid {holder}) uses it") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            handle.close()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handlers = {
            signal.SIGINT: lambda *_: self._on_stop_signal("SIGINT"),
            signal.SIGTERM: lambda *_: self._on_stop_signal("SIGTERM"),
            signal.SIGHUP: lambda *_: self._on_reconcile_signal(),
        }
        previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
        try:
            with wake_on_signals(self.wake):
                yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def start(self, ledger: Ledger) -> None:
        """Wire the parts to ``ledger``, take back what the previous daemon left, start watching and scanning."""
        config = self.config
        self.ledger = ledger
        failures = Failures(ledger, self.log, config.quarantine, self.clock)
        self.associations = Associations(ledger, failures, self.log, self.clock, config.member_wait)
        self.runner = Runner(config, ledger, failures, self.log, self.clock, process=self._process,
                             executor=self._new_executor, guard=self.guard,
                             prepare=self._prepare, on_done=self.wake.set)
        self.intake = Intake(config, ledger, self.associations, failures, self.hints, self.log, self.clock,
                             validate=self._validate, running=self.runner.is_running, guard=self.guard)
        ledger.register_daemon(os.getpid(), [str(r) for r in config.roots], config.workers, __version__,
                               now=self.clock.wall())
        self.log.info("started", watching=[str(r) for r in config.roots], output_dir=str(config.output_dir),
                      workers=config.workers, observer="polling" if config.poll is not None else "native",
                      settle=config.settle, quarantine=str(config.quarantine) if config.quarantine else None,
                      pid=os.getpid())
        self.runner.recover()
        self.intake.track(self.associations.restore())
        self.watcher = self._new_watcher(config.roots, config.recursive, config.poll, self.hints,
                                         self.intake.interesting)
        self.watcher.start()
        if self.watcher.fallback:
            self.log.warning("observer-fallback", reason=self.watcher.fallback)
        self._note_missing()
        self.runner.start()
        self.intake.begin_scan(STARTUP)
        self._sweep_staging("left by the previous run, which is over (this daemon holds the lock)")

    def sleep_time(self) -> float:
        """Seconds the loop may sleep before something is due (events wake it sooner)."""
        if self.ledger_outage.waiting():  # the loop does nothing until then (a scan under way waits too)
            return min(MAX_WAIT, self.ledger_outage.remaining())
        now = self.clock.monotonic()
        due = [now + MAX_WAIT, self._next_heartbeat, self._next_health, self.intake.next_due()]
        waits = self.associations.next_due()
        if waits is not None:
            due.append(waits)
        return max(0.0, min(due) - now)

    def cycle(self) -> None:
        """One turn of the loop: hints, scan, readiness, outcomes, association waits, new runs, timers.

        While the ledger cannot be written, nothing is done but a small write now and then, after doubling
        delays; once it succeeds, a scan finds what could not be recorded meanwhile."""
        if self.ledger_outage.active:
            if self.ledger_outage.waiting():
                return
            self.guard("ledger", self._probe_ledger)
            if self.ledger_outage.waiting():
                return
            self.ledger_outage.clear()
            self.intake.begin_scan(RECONCILE)
        if self._reconcile_asked:
            self._reconcile_asked = False
            self.intake.begin_scan(RECONCILE)
        self.intake.take_hints()
        self.intake.continue_scan()
        self.intake.judge_due()
        self.runner.collect(replace_broken=self._stop_reason is None)
        waits = self.associations.next_due()
        if waits is not None and self.clock.monotonic() >= waits:
            checked = self.associations.check()
            self.intake.track(checked.track)
            self.intake.untrack(checked.released)
        for path in self.runner.submit():
            self.intake.consider(path, False, RECONCILE)
        self._timers()

    # -- housekeeping ---------------------------------------------------------------------------

    def _timers(self) -> None:
        now = self.clock.monotonic()
        if now >= self._next_health:
            self._next_health = now + HEALTH_INTERVAL
            self._check_observer()
        if self.intake.rescan_due():
            self.intake.begin_scan(RECONCILE)
            self._sweep_staging("left by a worker that was killed")
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat
            self._beat()

    def _check_observer(self) -> None:
        trouble = self.watcher.trouble()
        if trouble is None:
            return
        self.log.warning("observer-restart", reason=trouble)
        self.watcher.restart()
        self._note_missing()
        self.intake.begin_scan(RECONCILE)

    def _note_missing(self) -> None:
        missing = self.watcher.missing()
        if missing != self._missing:
            for root in missing:
                self.log.warning("folder-missing", folder=str(root), reason="watched folder does not exist; "
                                 "it is watched as soon as it appears")
        self._missing = missing

    def _sweep_staging(self, reason: str) -> None:
        """Remove staging files no writer will publish (their writer is gone, or they are long untouched)."""
        for path in remove_abandoned_staging(self.config.output_dir, now=self.clock.wall()):
            self.log.info("removed-temporary", file=str(path), reason=reason)

    def _probe_ledger(self) -> None:
        self.ledger.beat(len(self.runner), len(self.intake) + len(self.associations), now=self.clock.wall())

    def _beat(self) -> None:
        counts = self.ledger.counts()
        self._probe_ledger()
        self.log.info("heartbeat", in_flight=len(self.runner), tracked=len(self.intake), hints=len(self.hints),
                      paused=self.runner.pause.reason, **counts)

    # -- stopping -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop watching; give running items the grace period (unless asked twice), put back the rest."""
        self.log.info("stopping", reason=self._stop_reason, in_flight=len(self.runner), grace=self.config.grace)
        self.watcher.stop()
        deadline = self.clock.monotonic() + self.config.grace
        while len(self.runner) and not self._abandon and self.clock.monotonic() < deadline:
            self.runner.wait(min(0.5, max(0.0, deadline - self.clock.monotonic())))
            self.runner.collect(replace_broken=False)
        self.runner.stop()
        self.guard("stop", lambda: self.ledger.daemon_stopped(now=self.clock.wall()))
        self.log.info("stopped", reason=self._stop_reason, **self.ledger.counts())
