"""What runs in a worker: one input through the pipeline, and what the outcome means for the daemon.

Tasks go through a ``concurrent.futures.Executor``: by default the local worker processes of
:func:`image2.run.executors.process_pool`, but any executor will do (threads in tests, a Dask
client's executor). A task never raises; its outcome says whether the input is done, failed for
good, invalid (to quarantine), hit a transient problem (to retry, a bounded number of times), or
was blocked by its environment (to run again once the environment is back, without counting the
attempt: no input can succeed while it lasts). The verdict comes from the typed results of the run
(:class:`image2.run.results.Failure`): blocked when the output disk is full (or the quota is used
up) or when a folder every run needs is missing or not writable; transient when it is another
operating-system error of a transient kind or the input is not readable yet; invalid when the
input itself could not be processed; failed otherwise.
"""

from __future__ import annotations

import errno
import importlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from image2.errors import Image2Error
from image2.run.results import FAILED, Failure, FailureKind, ProductResult, failure_of

DONE, INVALID, TRANSIENT, BLOCKED = "done", "invalid", "transient", "blocked"

BLOCKING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""Operating-system errors that stop every run, not just this input's, until the operator acts."""

TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EBUSY, errno.ETXTBSY,
                              errno.EACCES, errno.ESTALE, errno.EIO, errno.EMFILE, errno.ENFILE,
                              errno.ENOMEM, errno.ETIMEDOUT})
"""Operating-system errors that a later attempt may not meet (locked file, lost mount, no memory now)."""

FREE_SPACE_FACTOR = 3
"""Output space below this many times the input's size counts as a full disk."""

Process = Callable[[Path, Any], Sequence[ProductResult]]


@attrs.frozen
class Task:
    """One ledger row's input to run, with the run options and the function to run it (picklable)."""

    item_id: int
    path: Path
    options: Any
    process: Process


@attrs.frozen
class Outcome:
    """What became of a task: its verdict, the products it made or found, the reason if any, and for a
    failure its kind."""

    item_id: int
    verdict: str
    products: tuple[str, ...] = ()
    error: str | None = None
    seconds: float = 0.0
    kind: FailureKind | None = None


def environment_problem(path: Path, options: Any) -> str | None:
    """Return why no run can succeed now (a folder missing, the output disk full), or None when none is seen."""
    for folder in getattr(options, "reference_dirs", ()):
        if not Path(folder).is_dir():
            return f"reference folder {folder} is missing"
    output = Path(options.output_dir)
    if not output.is_dir():
        return f"output folder {output} is missing"
    if not os.access(output, os.W_OK | os.X_OK):
        return f"output folder {output} is not writable"
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # the input's own problem (see input_problem): judge the output disk alone
    try:
        free = shutil.disk_usage(output).free
    except OSError as error:
        return f"cannot inspect the output folder ({error})"
    if free < FREE_SPACE_FACTOR * size:
        return f"output disk is full ({free} bytes free, {FREE_SPACE_FACTOR * size} wanted)"
    return None


def input_problem(path: Path) -> str | None:
    """Return why ``path`` cannot be read now (a transient reason), or None when it can."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as error:
        return f"input not readable ({error})"
    return None


def _transient(failure: Failure) -> bool:
    """True for an operating-system error that a later attempt may not meet."""
    return failure.kind is FailureKind.IO and failure.errno in TRANSIENT_ERRNOS


def _verdict(task: Task, failed: Sequence[ProductResult], started: float, products: tuple[str, ...] = ()) -> Outcome:
    """Classify failed products: blocked if a full disk or a broken environment explains them, transient
    if an OS error of that kind or an unreadable input does, invalid if the input could not be
    processed, failed otherwise (a reference, step or other problem)."""
    elapsed = time.perf_counter() - started
    failures = [result.failure or Failure(FailureKind.INTERNAL, result.error or "") for result in failed]
    error = "; ".join(f"{r.product}: {r.error}" if r.product else str(r.error) for r in failed)
    blocked = next((f for f in failures if f.kind is FailureKind.IO and f.errno in BLOCKING_ERRNOS), None)
    if blocked is not None:
        return Outcome(task.item_id, BLOCKED, products, error, elapsed, blocked.kind)
    problem = environment_problem(task.path, task.options)
    if problem is not None:
        return Outcome(task.item_id, BLOCKED, products, f"{error} ({problem})", elapsed, failures[0].kind)
    transient = next((f for f in failures if _transient(f)), None)
    if transient is not None:
        return Outcome(task.item_id, TRANSIENT, products, error, elapsed, transient.kind)
    unreadable = input_problem(task.path)
    if unreadable is not None:
        return Outcome(task.item_id, TRANSIENT, products, f"{error} ({unreadable})", elapsed, failures[0].kind)
    invalid = next((f for f in failures if f.kind is FailureKind.INVALID_INPUT), None)
    if invalid is not None:
        return Outcome(task.item_id, INVALID, products, invalid.problem, elapsed, invalid.kind)
    return Outcome(task.item_id, FAILED, products, error, elapsed, failures[0].kind)


def run_task(task: Task) -> Outcome:
    """Run one input through ``task.process``; never raises."""
    started = time.perf_counter()
    problem = environment_problem(task.path, task.options)
    if problem is not None:
        return Outcome(task.item_id, BLOCKED, (), problem, time.perf_counter() - started)
    problem = input_problem(task.path)
    if problem is not None:
        return Outcome(task.item_id, TRANSIENT, (), problem, time.perf_counter() - started)
    try:
        results = list(task.process(task.path, task.options))
    except Exception as error:  # noqa: BLE001 - process_input never raises; a bug in another run must not stop the daemon
        message = str(error) if isinstance(error, (Image2Error, OSError)) else f"{type(error).__name__}: {error}"
        return _verdict(task, [ProductResult(task.path, "", FAILED, (), message, 0.0, failure_of(error))], started)
    if not results:
        failure = Failure(FailureKind.INTERNAL, "the run produced no product")
        return _verdict(task, [ProductResult(task.path, "", FAILED, (), failure.problem, 0.0, failure)], started)
    products = tuple(str(p) for r in results for p in r.outputs)
    failed = [r for r in results if r.status == FAILED]
    if failed:
        return _verdict(task, failed, started, products)
    return Outcome(task.item_id, DONE, products, None, time.perf_counter() - started)


def warm_up(module: str) -> None:
    """Import ``module`` in a worker before real work arrives (the first input is not slowed by imports)."""
    importlib.import_module(module)
