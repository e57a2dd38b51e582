"""The runner: queued ledger rows through an executor to their outcome.

Rows whose time has come go to the executor, ``workers`` at once, each as a ``tasks.Task``
(``running``, the attempt counted). An outcome makes the row ``done``; a transient problem
puts it back in the queue with exponential backoff, a bounded number of attempts; any other
failure is final, and an invalid input goes to quarantine. An input that vanished or changed
while queued is dropped (a changed one is handed back to intake). At a stop, rows still
running are put back in the queue for the next start.

A run blocked by its environment (the output disk full, a folder every run needs missing) goes
back to the queue uncounted and pauses all runs: said once, tried again with one run after
doubling delays, resumed when a run gets through. An outcome the ledger cannot record now is
kept and recorded later, never dropped.

A run whose worker process died is no attempt: its row goes back to the queue and the pool is
replaced. A process pool fails every run in flight when one worker dies, so which input killed
it is known only when it ran alone: each row in flight at a death is a suspect and runs next
with nothing beside it. An input whose worker died ``POISON_DEATHS`` times while it ran alone
is a poison pill (it crashes or exhausts whatever runs it): it fails, quarantined with that reason.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import attrs

from image2.run.executors import lost_worker, stop_executor, worker_exits
from image2.watch import tasks
from image2.watch.clock import Clock
from image2.watch.config import WatchConfig
from image2.watch.failures import Failures, Guard, Outage
from image2.watch.identity import stat_of
from image2.watch.ledger import DONE, QUEUED, RUNNING, Item, Ledger, LedgerUnwritable

RETRY_CAP = 3600.0
"""The longest wait before a retry, in seconds, however many attempts came before."""

POISON_DEATHS = 2
"""Worker deaths while an input ran alone after which it is quarantined as a poison pill."""

ExecutorFactory = Callable[[int], concurrent.futures.Executor]


def gave_up(attempts: int, error: str | None) -> str:
    """The reason an input failed after ``attempts`` transient failures, the last being ``error``."""
    return f"gave up after {attempts} attempts: {error or 'no reason recorded'}"


class Runner:
    """Run due rows on an executor and settle their outcomes in the ledger."""

    def __init__(self, config: WatchConfig, ledger: Ledger, failures: Failures, log: Any, clock: Clock, *,
                 process: Callable[[Path, Any], Sequence[Any]],
                 executor: ExecutorFactory, guard: Guard, prepare: Callable[[Path, Any], Any] | None = None,
                 on_done: Callable[[], None] = lambda: None) -> None:
        self._config = config
        self._ledger = ledger
        self._failures = failures
        self._log = log
        self._clock = clock
        self._process = process
        self._new_executor = executor
        self._guard = guard
        self._prepare = prepare
        self._on_done = on_done
        self._executor: concurrent.futures.Executor | None = None
        self._in_flight: dict[concurrent.futures.Future, Item] = {}
        self._shared: set[concurrent.futures.Future] = set()
        self._suspects: set[int] = set()
        self._unrecorded: dict[int, tuple[Item, Callable[[], object]]] = {}
        self.pause = Outage("runs-paused", "runs-resumed", log, clock)

    def __len__(self) -> int:
        """The number of rows running now."""
        return len(self._in_flight)

    def is_running(self, path: Path) -> bool:
        """True when some version of ``path`` is running now (or its end is not recorded yet)."""
        return any(item.path == path for item in [*self._in_flight.values(),
                                                  *(item for item, _ in self._unrecorded.values())])

    def recover(self) -> list[Item]:
        """Put rows left running by a daemon that died back in the queue; return them."""
        stranded = self._ledger.recover(now=self._clock.wall())
        for item in stranded:
            self._log.warning("requeued", file=str(item.path), item=item.id, state=QUEUED,
                              attempts=item.attempts, reason="was running when the previous daemon stopped")
        return stranded

    def start(self) -> None:
        """Start the executor, its workers importing the pipeline at once rather than on the first input."""
        self._executor = self._new_executor(self._config.workers)
        self._warm_up()

    def _warm_up(self) -> None:
        for _ in range(self._config.workers):
            self._executor.submit(tasks.warm_up, self._process.__module__)

    def _replace_executor(self, reason: str) -> None:
        self._log.error("executor-replaced", reason=reason)
        old, self._executor = self._executor, None
        if old is not None:
            with contextlib.suppress(Exception):
                stop_executor(old, abandon=True)
        self.start()

    def options_for(self, item: Item) -> Any:
        """The run options for ``item``: with overwrite when it replaces an earlier version's products or
        when an earlier attempt may have published part of its own (after a crash or a transient error);
        then completed by ``prepare(path, options)`` when given (e.g. references chosen here for a cluster)."""
        options = self._config.options
        if (item.overwrite or item.attempts > 1) and not options.overwrite:
            options = attrs.evolve(options, overwrite=True)
        return options if self._prepare is None else self._prepare(item.path, options)

    def submit(self) -> list[Path]:
        """Start due rows while workers are free; return the inputs that changed while queued (their rows
        are dropped: intake looks at them again)."""
        free = self._config.workers - len(self._in_flight)
        changed: list[Path] = []
        if free <= 0 or self._executor is None or self.pause.waiting():
            return changed
        if self.pause.active:  # time to try again: one run, alone
            if self._in_flight:
                return changed
            free = 1
        busy_ids = [item.id for item in self._in_flight.values()]
        busy_paths = {item.path for item in self._in_flight.values()}
        if self._suspects.intersection(busy_ids):
            return changed  # a suspect runs alone
        for item in self._ledger.due(self._clock.wall(), free + len(busy_paths) + 8, exclude=busy_ids):
            if free <= 0:
                break
            if item.path in busy_paths:
                continue
            if item.id in self._suspects and self._in_flight:
                break  # nothing more starts until the suspect can run alone
            stat = stat_of(item.path)
            if stat is None or not item.same_version(stat):
                self._ledger.forget(item.id)
                self._log.info("dropped", file=str(item.path), item=item.id,
                               reason="input vanished" if stat is None else "input changed after it was queued")
                if stat is not None:
                    changed.append(item.path)
                continue
            if item.attempts >= self._config.max_attempts:
                self._failures.fail(item, gave_up(item.attempts, item.error), invalid=False)
                continue
            item = self._ledger.start(item.id, now=self._clock.wall())
            task = tasks.Task(item.id, item.path, self.options_for(item), self._process)
            try:
                future = self._executor.submit(tasks.run_task, task)
            except (BrokenProcessPool, RuntimeError) as error:
                self._ledger.abandon(item.id, now=self._clock.wall())
                self._replace_executor(f"executor refused work ({error!r})")
                break
            future.add_done_callback(lambda _: self._on_done())
            if self._in_flight:
                self._shared.update(self._in_flight)
                self._shared.add(future)
            self._in_flight[future] = item
            busy_paths.add(item.path)
            free -= 1
            self._log.info("running", file=str(item.path), item=item.id, state=RUNNING, attempt=item.attempts)
            if item.id in self._suspects:
                break
        return changed

    def collect(self, replace_broken: bool = True) -> list[tasks.Outcome]:
        """Settle every finished run; replace the executor when a worker died (unless ``replace_broken`` is
        false: the daemon is stopping). Return the outcomes."""
        return self._collect(list(self._in_flight), replace_broken)

    def _record(self, item: Item, change: Callable[[], object]) -> None:
        """Make ``change`` (the ledger record of ``item``'s run ending) under the guard; when the ledger
        cannot be written, keep it to make later."""
        def attempt() -> None:
            try:
                change()
            except LedgerUnwritable:
                self._unrecorded[item.id] = (item, change)
                raise
            self._unrecorded.pop(item.id, None)

        self._guard("outcome", attempt)

    def _collect(self, futures: list[concurrent.futures.Future], replace_broken: bool) -> list[tasks.Outcome]:
        for item, change in list(self._unrecorded.values()):
            self._record(item, change)
        broken = False
        outcomes = []
        lost: list[tuple[Item, bool]] = []
        for future in [f for f in futures if f.done()]:
            item = self._in_flight.pop(future)
            alone = future not in self._shared
            self._shared.discard(future)
            try:
                outcome = future.result()
            except BrokenProcessPool:
                broken = True
                lost.append((item, alone))
                continue
            except Exception as error:  # noqa: BLE001 - executors other than ours may raise anything
                if lost_worker(error):
                    lost.append((item, alone))
                    continue
                outcome = tasks.Outcome(item.id, tasks.TRANSIENT, (), f"executor error: {error!r}")
            self._suspects.discard(item.id)
            self._record(item, functools.partial(self.settle, item, outcome))
            outcomes.append(outcome)
        if lost:
            ends = worker_exits(self._executor) if self._executor is not None else []
            reason = f"its worker process died ({', '.join(ends)})" if ends else "its worker process died"
            for item, alone in lost:
                self._record(item, functools.partial(self.worker_died, item, reason, alone))
                outcomes.append(tasks.Outcome(item.id, tasks.TRANSIENT, (), reason))
        if broken and replace_broken:
            self._replace_executor("a worker process died")
        return outcomes

    def worker_died(self, item: Item, reason: str, alone: bool) -> Item:
        """Record that ``item``'s worker died: back to the queue (no attempt counted), a suspect to run alone
        when others ran beside it; quarantined as a poison pill when it killed its worker too often alone."""
        item = self._ledger.lost(item.id, reason, counted=alone, now=self._clock.wall())
        if item.deaths >= POISON_DEATHS:
            self._suspects.discard(item.id)
            error = f"{reason}: its worker died {item.deaths} times while it ran alone (a poison pill)"
            moved = self._failures.quarantine(item.path, error, {"item": item.id, "size": item.size,
                                                                 "sha256": item.digest, "deaths": item.deaths})
            return self._failures.fail(item, error, True, (), moved)
        self._suspects.add(item.id)
        self._log.warning("worker-died", file=str(item.path), item=item.id, state=QUEUED, reason=reason,
                          alone=alone, deaths=item.deaths)
        return item

    def settle(self, item: Item, outcome: tasks.Outcome) -> Item:
        """Record the outcome of ``item``'s run: done, queued again after a delay, or failed (quarantined
        when invalid); return its row."""
        item = self._ledger.get(item.id)
        now = self._clock.wall()
        if outcome.verdict == tasks.BLOCKED:
            item = self._ledger.abandon(item.id, now=now, error=outcome.error)
            self.pause.hit(outcome.error or "blocked")
            return item
        self.pause.clear()
        if outcome.verdict == tasks.DONE:
            item = self._ledger.finish(item.id, outcome.products, now=now)
            self._log.info("done", file=str(item.path), item=item.id, state=DONE, products=list(item.products),
                           seconds=round(outcome.seconds, 3), attempt=item.attempts)
            return item
        if outcome.verdict == tasks.TRANSIENT:
            if item.attempts >= self._config.max_attempts:
                return self._failures.fail(item, gave_up(item.attempts, outcome.error), invalid=False)
            delay = min(self._config.retry_delay * 2 ** (item.attempts - 1), RETRY_CAP)
            item = self._ledger.queue(item.id, retry_at=now + delay, error=outcome.error, now=now)
            self._log.warning("retry", file=str(item.path), item=item.id, state=QUEUED, attempt=item.attempts,
                              delay=round(delay, 3), error=outcome.error)
            return item
        error = outcome.error or "failed"
        invalid = outcome.verdict == tasks.INVALID
        moved = self._failures.quarantine(item.path, error, {"item": item.id, "size": item.size,
                                                             "sha256": item.digest, "attempts": item.attempts}
                                          ) if invalid else None
        return self._failures.fail(item, error, invalid, outcome.products, moved)

    def _abandon(self, item: Item, abandoned: list[Item]) -> None:
        abandoned.append(self._ledger.abandon(item.id, now=self._clock.wall()))
        self._log.warning("abandoned", file=str(item.path), item=item.id, state=QUEUED,
                          reason="still running at shutdown; retried at the next start")

    def wait(self, timeout: float) -> None:
        """Block until a run finishes or ``timeout`` seconds pass (the one blocking call: a graceful stop)."""
        if self._in_flight:
            concurrent.futures.wait(list(self._in_flight), timeout=timeout,
                                    return_when=concurrent.futures.FIRST_COMPLETED)

    def stop(self) -> list[Item]:
        """Settle the runs that finished, put the others back in the queue (their next run replaces what
        they published), and shut the executor down; return the rows put back. A row whose end the
        ledger cannot record stays running there: the next start puts it back in the queue."""
        abandoned = []
        for future, item in list(self._in_flight.items()):
            if future.done():
                self._collect([future], replace_broken=False)
                continue
            self._record(item, functools.partial(self._abandon, item, abandoned))
        self._in_flight.clear()
        self._shared.clear()
        if self._executor is not None:  # every row is settled or back in the queue: nothing to wait for
            stop_executor(self._executor, abandon=True)
        return abandoned
