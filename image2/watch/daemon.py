"""The watch daemon: every input that lands in the watched folders is calibrated exactly once.

One coordinating thread owns the ledger and all decisions. The watchdog observer only posts
hints; scans at start-up, periodically and whenever events may have been lost find what
hints missed. A file is taken when readiness says it is complete, recorded in the ledger
(``queued``), run in a worker (``running``), and recorded ``done`` with its products or
``failed`` with the reason. Transient failures are retried with backoff a bounded number of
times; invalid inputs fail at once and go to quarantine. On SIGINT/SIGTERM the daemon stops
taking work, lets running items finish within a grace period (or puts them back in the
queue for the next start) and exits 0.

Associations: an association waits (``member_wait`` seconds at most, from when it was first
seen) until every member exists and is complete, then runs as one item. While it waits,
queues, runs, or once it is done, it claims its members: a member is not also processed as a
singleton (unless ``members_as_singletons``). A member that was already taken as a singleton
before its association was seen is not undone; the association then waits for that run to end
and replaces its products (it runs with overwrite). A failed association releases its members.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import attrs
import structlog

from image2._version import __version__
from image2.errors import Image2Error, InvalidInputError
from image2.io.association import load_association
from image2.io.process import process_input, validate_input
from image2.watch import tasks
from image2.watch.identity import FileStat, content_digest, stat_of
from image2.watch.ledger import (
    ASSOCIATION,
    DONE,
    EXPOSURE,
    FAILED,
    QUEUED,
    RUNNING,
    WAITING,
    Item,
    Ledger,
)
from image2.watch.observer import Hints, Watcher
from image2.watch.quarantine import quarantine
from image2.watch.readiness import (
    DEFAULT_PATTERNS,
    GONE,
    INVALID,
    READY,
    Readiness,
    Selector,
    fits_problem,
    kind_of,
)
from image2.watch.scanner import inputs_in, is_accounted, stale_temporaries
from image2.watch.wakeup import wake_on_signals

LOCK_NAME = "image2-watch.lock"
STARTUP, EVENT, RECONCILE = "startup", "event", "reconcile"

HINT_CAPACITY = 10_000
HINTS_PER_CYCLE = 2_000
SCAN_PER_CYCLE = 2_000
MAX_WAIT = 1.0
HEALTH_INTERVAL = 2.0
WAITING_INTERVAL = 0.5
RETRY_CAP = 3600.0
STALE_TEMPORARY_AGE = 900.0


class DaemonBusy(Image2Error):
    """Another watch daemon already uses the output folder (its ledger has one writer)."""


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

    @property
    def selector(self) -> Selector:
        """The input names, with the output and quarantine folders excluded from the watched trees."""
        excluded = tuple(p for p in (self.output_dir, self.quarantine) if p is not None)
        return Selector(tuple(self.patterns), excluded)


@attrs.define
class _Waiting:
    """An association waiting for its members."""

    item: Item
    members: tuple[Path, ...]
    deadline: float
    complete: set[Path] = attrs.Factory(set)
    invalid: dict[Path, str] = attrs.Factory(dict)


class Daemon:
    """Run the watch loop until asked to stop; see the module documentation for the rules."""

    def __init__(
        self,
        config: WatchConfig,
        process: tasks.Process = process_input,
        validate: tasks.Validate = validate_input,
        executor: Callable[[int], concurrent.futures.Executor] | None = None,
        log: Any = None,
        prepare: Callable[[Path, Any], Any] | None = None,
    ) -> None:
        self.config = config
        self._prepare = prepare
        self.selector = config.selector
        self._process = process
        self._validate = validate
        self._new_executor = executor or tasks.process_pool
        self.log = log if log is not None else structlog.get_logger("image2.watch")
        self.wake = threading.Event()
        self.hints = Hints(HINT_CAPACITY, self.wake)
        self.readiness = Readiness(config.settle, self._check)
        self._stop_reason: str | None = None
        self._abandon = False
        self._ledger: Ledger | None = None
        self._executor: concurrent.futures.Executor | None = None
        self._watcher: Watcher | None = None
        self._in_flight: dict[concurrent.futures.Future, Item] = {}
        self._waiting: dict[int, _Waiting] = {}
        self._member_of: dict[Path, set[int]] = {}
        self._member_view: frozenset[Path] = frozenset()
        self._found_by: dict[Path, str] = {}
        self._scan: Iterator[Path] | None = None
        self._scan_source = RECONCILE
        self._rescan = False
        self._reconcile_asked = False
        self._missing: tuple[Path, ...] = ()
        now = time.monotonic()
        self._next_reconcile = now + config.reconcile
        self._next_heartbeat = now
        self._next_health = now + HEALTH_INTERVAL
        self._next_waiting = now

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
            self._ledger = Ledger.in_folder(self.config.output_dir)
            try:
                self._start()
                while self._stop_reason is None:
                    self._guarded("cycle", self._cycle)
                    self.wake.wait(self._sleep_time())
                    self.wake.clear()
                self._shutdown()
            finally:
                self._ledger.close()
        return 0

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.config.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.config.output_dir / LOCK_NAME
        handle = open(path, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                raise DaemonBusy(f"{self.config.output_dir}: another image2 watch (pid {holder}) uses this "
                                 "output folder") from None
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

    def _guarded(self, what: str, action: Callable[[], object]) -> None:
        """Run ``action``; log and survive anything it raises (the daemon keeps running in every case)."""
        try:
            action()
        except Exception as error:  # noqa: BLE001
            self.log.exception("internal-error", during=what, error=repr(error))
            time.sleep(0.1)

    def _start(self) -> None:
        ledger = self._ledger
        config = self.config
        ledger.register_daemon(os.getpid(), [str(r) for r in config.roots], config.workers, __version__)
        self.log.info("started", watching=[str(r) for r in config.roots], output_dir=str(config.output_dir),
                      workers=config.workers, observer="polling" if config.poll is not None else "native",
                      settle=config.settle, quarantine=str(config.quarantine) if config.quarantine else None,
                      pid=os.getpid())
        for item in ledger.recover():
            self.log.warning("requeued", file=str(item.path), item=item.id, state=QUEUED,
                             attempts=item.attempts, reason="was running when the previous daemon stopped")
        for item in ledger.in_state(WAITING):
            self._wait_for(item, ledger.members(item.id))
        self._watcher = Watcher(config.roots, config.recursive, config.poll, self.hints, self._interesting)
        self._watcher.start()
        if self._watcher.fallback:
            self.log.warning("observer-fallback", reason=self._watcher.fallback)
        self._note_missing()
        self._executor = self._new_executor(config.workers)
        self._warm_up()
        self._begin_scan(STARTUP)
        self._sweep_temporaries()

    def _interesting(self, path: Path) -> bool:
        """Whether the observer should pass on events for ``path`` (runs on the observer thread)."""
        return path in self._member_view or self.selector.wants(path)

    def _sleep_time(self) -> float:
        now = time.monotonic()
        due = [now + MAX_WAIT, self._next_reconcile, self._next_heartbeat, self._next_health]
        if self._waiting:
            due.append(self._next_waiting)
        if self._scan is not None:
            due.append(now)
        readiness = self.readiness.next_due()
        if readiness is not None:
            due.append(readiness)
        return max(0.0, min(due) - now)

    def _cycle(self) -> None:
        lost = self.hints.take_lost()
        if lost is not None:
            self.log.warning("events-lost", reason=lost)
            self._begin_scan(RECONCILE)
        if self._reconcile_asked:
            self._reconcile_asked = False
            self._begin_scan(RECONCILE)
        for path, closed in self.hints.drain(HINTS_PER_CYCLE).items():
            self._guarded("hint", lambda: self._consider(path, closed, EVENT))
        self._continue_scan()
        for path in self.readiness.due():
            self._guarded("readiness", lambda: self._judge(path))
        self._collect()
        now = time.monotonic()
        if self._waiting and now >= self._next_waiting:
            self._next_waiting = now + WAITING_INTERVAL
            self._check_waiting()
        self._submit()
        self._timers()

    # -- discovery ---------------------------------------------------------------------------

    def _begin_scan(self, source: str) -> None:
        self._scan = inputs_in(self.config.roots, self.selector, self.config.recursive)
        self._scan_source = source
        self._rescan = False
        self._next_reconcile = time.monotonic() + self.config.reconcile
        self.log.info("scan", source=source)

    def _continue_scan(self) -> None:
        """Take the next slice of the running scan (a long listing never stalls the loop)."""
        if self._scan is None:
            return
        taken = 0
        for path in self._scan:
            if len(self.readiness) >= self.config.max_pending:
                self._rescan = True
                break
            self._guarded("scan", lambda: self._consider(path, False, self._scan_source))
            taken += 1
            if taken >= SCAN_PER_CYCLE:
                return
        self._scan = None

    def _consider(self, path: Path, closed: bool, source: str) -> None:
        """Start (or update) tracking of a possible input or member after an event or a scan."""
        if path in self.readiness:
            self.readiness.note(path, closed)
            return
        if path in self._member_of:
            self.readiness.note(path, closed)
            return
        if not self.selector.wants(path):
            return
        stat = stat_of(path)
        if stat is None or is_accounted(self._ledger.latest(path), stat):
            return
        if (kind_of(path) == EXPOSURE and not self.config.members_as_singletons
                and self._ledger.claimed_by(path) is not None):
            return
        if any(item.path == path for item in self._in_flight.values()):
            return
        if len(self.readiness) >= self.config.max_pending:
            self._rescan = True
            return
        self.readiness.note(path, closed)
        if path in self.readiness:
            self._found_by.setdefault(path, source)

    def _check(self, path: Path) -> str | None:
        """Return why ``path`` is not a whole, valid input (None when it is); OSError means wait."""
        if kind_of(path) == ASSOCIATION:
            try:
                load_association(path, allow_outside=self.config.options.allow_outside)
            except InvalidInputError as error:
                return error.problem
            return None
        problem = fits_problem(path)
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

    def _judge(self, path: Path) -> None:
        verdict = self.readiness.evaluate(path)
        source = self._found_by.get(path, EVENT)
        if verdict.kind in (READY, INVALID, GONE):
            self._found_by.pop(path, None)
        if verdict.kind == READY:
            for asn in self._member_of.get(path, ()):
                self._waiting[asn].complete.add(path)
                self._next_waiting = time.monotonic()
            if self.selector.wants(path):
                self._admit(path, verdict.stat, source)
        elif verdict.kind == INVALID:
            for asn in self._member_of.get(path, ()):
                self._waiting[asn].invalid[path] = verdict.problem
                self._next_waiting = time.monotonic()
            if self.selector.wants(path):
                self._reject_new(path, verdict.stat, verdict.problem, source)

    def _admit(self, path: Path, stat: FileStat, source: str) -> None:
        """Record a complete input in the ledger: queued, or waiting for members (an association)."""
        ledger = self._ledger
        latest = ledger.latest(path)
        if is_accounted(latest, stat):
            return
        kind = kind_of(path)
        if kind == EXPOSURE and not self.config.members_as_singletons:
            claim = ledger.claimed_by(path)
            if claim is not None:
                self.log.info("claimed", file=str(path), association=str(claim.path), item=claim.id,
                              reason="member of an association; not processed alone")
                return
        try:
            digest = content_digest(path)
        except OSError:
            return
        if latest is not None and latest.quarantine is None and latest.digest == digest:
            if latest.state == FAILED:
                item = ledger.reopen(latest.id, stat)
                self.log.info("queued", file=str(path), item=item.id, state=QUEUED, found_by=source,
                              reason="failed input touched or dropped again: retrying")
            else:
                ledger.refresh(latest.id, stat)
                self.log.info("unchanged", file=str(path), item=latest.id, state=latest.state,
                              reason="same content with a new mtime; not processed again")
            return
        for old in ledger.versions(path, (QUEUED, WAITING)):
            ledger.forget(old.id)
            self._unwait(old.id)
            self.log.info("superseded", file=str(path), item=old.id, reason="a newer version arrived")
        overwrite = ledger.has_done(path)
        if kind == ASSOCIATION:
            try:
                association = load_association(path, allow_outside=self.config.options.allow_outside)
            except InvalidInputError as error:
                self._reject_new(path, stat, error.problem, source)
                return
            members = tuple(dict.fromkeys(m.path for p in association.products for m in p.members))
            item = ledger.add(path, ASSOCIATION, stat, digest, WAITING, source, overwrite)
            ledger.claim_members(item.id, members)
            self.log.info("waiting", file=str(path), item=item.id, state=WAITING, found_by=source,
                          members=[str(m) for m in members])
            self._wait_for(item, members)
        else:
            item = ledger.add(path, EXPOSURE, stat, digest, QUEUED, source, overwrite)
            self.log.info("queued", file=str(path), item=item.id, state=QUEUED, found_by=source,
                          replaces_products=overwrite)

    def _reject_new(self, path: Path, stat: FileStat, problem: str, source: str) -> None:
        """Record an input that is not valid once settled: failed at once, quarantined when asked."""
        try:
            digest = content_digest(path)
        except OSError:
            return
        latest = self._ledger.latest(path)
        moved = self._quarantine(path, problem, {"size": stat.size, "sha256": digest})
        if latest is not None and latest.state == FAILED and latest.quarantine is None and latest.digest == digest:
            item = self._ledger.refresh(latest.id, stat)
        else:
            item = self._ledger.add(path, kind_of(path), stat, digest, FAILED, source)
        self._fail(item, problem, True, moved=moved)

    # -- associations --------------------------------------------------------------------------

    def _wait_for(self, item: Item, members: tuple[Path, ...]) -> None:
        waiting = _Waiting(item, tuple(members), item.seen_at + self.config.member_wait)
        self._waiting[item.id] = waiting
        for member in waiting.members:
            self._member_of.setdefault(member, set()).add(item.id)
            latest = self._ledger.latest(member)
            stat = stat_of(member)
            if stat is not None and latest is not None and latest.state != FAILED and is_accounted(latest, stat):
                waiting.complete.add(member)
            else:
                self.readiness.note(member)
        self._member_view = frozenset(self._member_of)

    def _unwait(self, item_id: int) -> None:
        waiting = self._waiting.pop(item_id, None)
        if waiting is None:
            return
        for member in waiting.members:
            holders = self._member_of.get(member, set())
            holders.discard(item_id)
            if not holders:
                self._member_of.pop(member, None)
                if not self.selector.wants(member):
                    self.readiness.forget(member)
        self._member_view = frozenset(self._member_of)

    def _check_waiting(self) -> None:
        now = time.time()
        for item_id, waiting in list(self._waiting.items()):
            if waiting.invalid:
                reasons = "; ".join(f"member {p.name}: {why}" for p, why in waiting.invalid.items())
                self._unwait(item_id)
                self._fail(self._ledger.get(item_id), reasons, invalid=False)
                continue
            pending = [m for m in waiting.members if m not in waiting.complete]
            for member in pending:
                if member not in self.readiness and stat_of(member) is not None:
                    self.readiness.note(member)
            singles = [self._ledger.latest(m) for m in waiting.members]
            busy = [s for s in singles if s is not None and s.kind == EXPOSURE and s.state in (QUEUED, RUNNING)]
            if not pending and not busy:
                replaces = any(self._ledger.has_done(m) for m in waiting.members)
                self._unwait(item_id)
                item = self._ledger.queue(item_id, overwrite=waiting.item.overwrite or replaces)
                self.log.info("queued", file=str(item.path), item=item.id, state=QUEUED,
                              replaces_products=item.overwrite)
            elif now >= waiting.deadline:
                missing = [m.name for m in pending if stat_of(m) is None]
                incomplete = [m.name for m in pending if stat_of(m) is not None]
                reason = (f"members not complete within {self.config.member_wait:g} s"
                          + (f"; missing: {', '.join(missing)}" if missing else "")
                          + (f"; incomplete: {', '.join(incomplete)}" if incomplete else "")
                          + (f"; still processed alone: {', '.join(s.path.name for s in busy)}" if busy else ""))
                self._unwait(item_id)
                self._fail(self._ledger.get(item_id), reason, invalid=False)

    # -- running -------------------------------------------------------------------------------

    def _options_for(self, item: Item) -> Any:
        """The run options for ``item``: with overwrite when it replaces an earlier version's products or
        when an earlier attempt may have published part of its own (after a crash or a transient error);
        then completed by ``prepare(path, options)`` when given (e.g. references chosen here for a cluster)."""
        options = self.config.options
        if (item.overwrite or item.attempts > 1) and not options.overwrite:
            options = attrs.evolve(options, overwrite=True)
        return options if self._prepare is None else self._prepare(item.path, options)

    def _submit(self) -> None:
        free = self.config.workers - len(self._in_flight)
        if free <= 0 or self._executor is None:
            return
        busy_ids = [item.id for item in self._in_flight.values()]
        busy_paths = {item.path for item in self._in_flight.values()}
        for item in self._ledger.due(time.time(), free + len(busy_paths) + 8, exclude=busy_ids):
            if free <= 0:
                return
            if item.path in busy_paths:
                continue
            stat = stat_of(item.path)
            if stat is None or not item.same_version(stat):
                self._ledger.forget(item.id)
                self.log.info("dropped", file=str(item.path), item=item.id,
                              reason="input vanished" if stat is None else "input changed after it was queued")
                if stat is not None:
                    self._consider(item.path, False, RECONCILE)
                continue
            if item.attempts >= self.config.max_attempts:
                self._fail(item, f"gave up after {item.attempts} attempts: {item.error}", invalid=False)
                continue
            item = self._ledger.start(item.id)
            task = tasks.Task(item.id, item.path, self._options_for(item), self._process, self._validate)
            try:
                future = self._executor.submit(tasks.run_task, task)
            except (BrokenProcessPool, RuntimeError) as error:
                self._ledger.abandon(item.id)
                self._replace_executor(f"executor refused work ({error!r})")
                return
            future.add_done_callback(lambda _: self.wake.set())
            self._in_flight[future] = item
            busy_paths.add(item.path)
            free -= 1
            self.log.info("running", file=str(item.path), item=item.id, state=RUNNING, attempt=item.attempts)

    def _warm_up(self) -> None:
        """Have every worker import the pipeline now rather than on the first input."""
        for _ in range(self.config.workers):
            self._executor.submit(tasks.warm_up, self._process.__module__)

    def _replace_executor(self, reason: str) -> None:
        self.log.error("executor-replaced", reason=reason)
        old, self._executor = self._executor, None
        if old is not None:
            with contextlib.suppress(Exception):
                tasks.stop_executor(old, abandon=True)
        self._executor = self._new_executor(self.config.workers)
        self._warm_up()

    def _collect(self, futures: Any = None) -> None:
        done = [f for f in (futures if futures is not None else list(self._in_flight)) if f.done()]
        broken = False
        for future in done:
            item = self._in_flight.pop(future)
            try:
                outcome = future.result()
            except BrokenProcessPool:
                broken = True
                outcome = tasks.Outcome(item.id, tasks.TRANSIENT, (), "worker process died")
            except Exception as error:  # noqa: BLE001 - executors other than ours may raise anything
                outcome = tasks.Outcome(item.id, tasks.TRANSIENT, (), f"executor error: {error!r}")
            self._guarded("outcome", lambda: self._settle(item, outcome))
        if broken and self._stop_reason is None:
            self._replace_executor("a worker process died")

    def _settle(self, item: Item, outcome: tasks.Outcome) -> None:
        item = self._ledger.get(item.id)
        if outcome.verdict == tasks.DONE:
            item = self._ledger.finish(item.id, outcome.products)
            self.log.info("done", file=str(item.path), item=item.id, state=DONE, products=list(item.products),
                          seconds=round(outcome.seconds, 3), attempt=item.attempts)
        elif outcome.verdict == tasks.TRANSIENT:
            if item.attempts >= self.config.max_attempts:
                self._fail(item, f"gave up after {item.attempts} attempts: {outcome.error}", invalid=False)
                return
            delay = min(self.config.retry_delay * 2 ** (item.attempts - 1), RETRY_CAP)
            item = self._ledger.queue(item.id, retry_at=time.time() + delay, error=outcome.error)
            self.log.warning("retry", file=str(item.path), item=item.id, state=QUEUED, attempt=item.attempts,
                             delay=round(delay, 3), error=outcome.error)
        else:
            error = outcome.error or "failed"
            invalid = outcome.verdict == tasks.INVALID
            moved = self._quarantine(item.path, error, {"item": item.id, "size": item.size, "sha256": item.digest,
                                                        "attempts": item.attempts}) if invalid else None
            self._fail(item, error, invalid, outcome.products, moved)

    def _quarantine(self, path: Path, error: str, details: dict[str, Any]) -> Path | None:
        """Move an invalid input to the quarantine folder, when one is set; return where it went."""
        folder = self.config.quarantine
        if folder is None or not path.exists():
            return None
        try:
            return quarantine(path, folder, error, details)
        except OSError as move_error:
            self.log.error("quarantine-failed", file=str(path), error=str(move_error))
            return None

    def _fail(self, item: Item, error: str, invalid: bool, products: tuple[str, ...] = (),
              moved: Path | None = None) -> None:
        """Record ``item`` failed (an invalid input was quarantined first, to ``moved``)."""
        item = self._ledger.fail(item.id, error, products, str(moved) if moved else None)
        self.log.error("failed", file=str(item.path), item=item.id, state=FAILED, error=error,
                       invalid=invalid, attempt=item.attempts)
        if moved is not None:
            self.log.warning("quarantined", file=str(item.path), item=item.id, to=str(moved), reason=error)

    # -- housekeeping ---------------------------------------------------------------------------

    def _timers(self) -> None:
        now = time.monotonic()
        if now >= self._next_health:
            self._next_health = now + HEALTH_INTERVAL
            self._check_observer()
        if self._scan is None and (now >= self._next_reconcile or (
                self._rescan and len(self.readiness) < self.config.max_pending // 2)):
            self._begin_scan(RECONCILE)
            self._sweep_temporaries()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat
            self._beat()

    def _check_observer(self) -> None:
        trouble = self._watcher.trouble()
        if trouble is None:
            return
        self.log.warning("observer-restart", reason=trouble)
        self._watcher.restart()
        self._note_missing()
        self._begin_scan(RECONCILE)

    def _note_missing(self) -> None:
        missing = self._watcher.missing()
        if missing != self._missing:
            for root in missing:
                self.log.warning("folder-missing", folder=str(root), reason="watched folder does not exist; "
                                 "it is watched as soon as it appears")
        self._missing = missing

    def _sweep_temporaries(self) -> None:
        for path in stale_temporaries(self.config.output_dir, STALE_TEMPORARY_AGE):
            with contextlib.suppress(OSError):
                path.unlink()
                self.log.info("removed-temporary", file=str(path), reason="left by a worker that was killed")

    def _beat(self) -> None:
        counts = self._ledger.counts()
        self._ledger.beat(len(self._in_flight), len(self.readiness) + len(self._waiting))
        self.log.info("heartbeat", in_flight=len(self._in_flight), tracked=len(self.readiness),
                      hints=len(self.hints), **counts)

    # -- stopping -------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.log.info("stopping", reason=self._stop_reason, in_flight=len(self._in_flight),
                      grace=self.config.grace)
        if self._watcher is not None:
            self._watcher.stop()
        deadline = time.monotonic() + self.config.grace
        while self._in_flight and not self._abandon and time.monotonic() < deadline:
            concurrent.futures.wait(list(self._in_flight), timeout=min(0.5, max(0.0, deadline - time.monotonic())),
                                    return_when=concurrent.futures.FIRST_COMPLETED)
            self._collect()
        for future, item in list(self._in_flight.items()):
            if future.done():
                self._collect([future])
                continue
            self._ledger.abandon(item.id)
            self.log.warning("abandoned", file=str(item.path), item=item.id, state=QUEUED,
                             reason="still running at shutdown; retried at the next start")
        self._in_flight.clear()
        if self._executor is not None:  # every item is settled or back in the queue: nothing to wait for
            tasks.stop_executor(self._executor, abandon=True)
        self._ledger.daemon_stopped()
        self.log.info("stopped", reason=self._stop_reason, **self._ledger.counts())
