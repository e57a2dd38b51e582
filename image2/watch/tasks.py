"""What runs in a worker: one input through the pipeline, and what the outcome means for the daemon.

Tasks go through a ``concurrent.futures.Executor``: by default a pool of worker processes
started with the ``spawn`` method (no fork of a threaded daemon), but any executor will do
(threads in tests, a Dask client's executor). A task never raises; its outcome says whether
the input is done, failed for good, invalid (to quarantine), or hit a transient problem (to
retry): a failure counts as transient when the environment is broken in a way that explains
it (a reference folder or the output folder missing, the output disk full, the input not
readable yet) or when the error is an operating-system error of that kind.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import errno
import importlib
import multiprocessing
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from image2.errors import Image2Error, InvalidInputError

DONE, FAILED, INVALID, TRANSIENT = "done", "failed", "invalid", "transient"

TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EBUSY, errno.ETXTBSY,
                              errno.EACCES, errno.ESTALE, errno.EIO, errno.EMFILE, errno.ENFILE,
                              errno.ENOMEM, errno.ETIMEDOUT})
"""Operating-system errors that a later attempt may not meet (full disk, locked file, lost mount)."""

_ERRNO = re.compile(r"\[Errno (\d+)\]")

FREE_SPACE_FACTOR = 3
"""Output space below this many times the input's size counts as a full disk."""

Process = Callable[[Path, Any], Sequence[Any]]
Validate = Callable[[Path], None]


@attrs.frozen
class Task:
    """One ledger row's input to run, with the run options and the functions to run it (picklable)."""

    item_id: int
    path: Path
    options: Any
    process: Process
    validate: Validate


@attrs.frozen
class Outcome:
    """What became of a task: its verdict, the products it made or found, and the reason if any."""

    item_id: int
    verdict: str
    products: tuple[str, ...] = ()
    error: str | None = None
    seconds: float = 0.0


def environment_problem(path: Path, options: Any) -> str | None:
    """Return a transient reason a run of ``path`` cannot succeed now, or None when none is seen."""
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
        free = shutil.disk_usage(output).free
    except OSError as error:
        return f"cannot inspect input or output folder ({error})"
    if free < FREE_SPACE_FACTOR * size:
        return f"output disk is full ({free} bytes free, {FREE_SPACE_FACTOR * size} wanted)"
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as error:
        return f"input not readable ({error})"
    return None


def _transient_errno(error: str) -> bool:
    """True when a failure's text carries an operating-system error number of the transient kind."""
    return any(int(number) in TRANSIENT_ERRNOS for number in _ERRNO.findall(error))


def _failure(task: Task, error: str, started: float, products: tuple[str, ...] = ()) -> Outcome:
    """Classify a failure: transient if the environment or the OS error explains it, invalid if the
    input itself does not validate, failed otherwise (a reference or step problem)."""
    elapsed = time.perf_counter() - started
    problem = environment_problem(task.path, task.options)
    if problem is not None:
        return Outcome(task.item_id, TRANSIENT, products, f"{error} ({problem})", elapsed)
    if _transient_errno(error):
        return Outcome(task.item_id, TRANSIENT, products, error, elapsed)
    try:
        task.validate(task.path)
    except InvalidInputError as invalid:
        return Outcome(task.item_id, INVALID, products, invalid.problem, elapsed)
    except Exception:  # noqa: BLE001 - the validator's own trouble does not make the input invalid
        return Outcome(task.item_id, FAILED, products, error, elapsed)
    return Outcome(task.item_id, FAILED, products, error, elapsed)


def run_task(task: Task) -> Outcome:
    """Run one input through ``task.process``; never raises."""
    started = time.perf_counter()
    problem = environment_problem(task.path, task.options)
    if problem is not None:
        return Outcome(task.item_id, TRANSIENT, (), problem, time.perf_counter() - started)
    try:
        results = list(task.process(task.path, task.options))
    except Image2Error as error:
        return _failure(task, str(error), started)
    except Exception as error:  # noqa: BLE001 - a bug in one input's run must not take the daemon down
        return _failure(task, f"{type(error).__name__}: {error}", started)
    products = tuple(str(p) for r in results for p in r.outputs)
    failed = [r for r in results if r.status == "failed"]
    if not results:
        return _failure(task, "the run produced no product", started)
    if failed:
        reasons = "; ".join(f"{r.product}: {r.error}" for r in failed)
        return _failure(task, reasons, started, products)
    return Outcome(task.item_id, DONE, products, None, time.perf_counter() - started)


def warm_up(module: str) -> None:
    """Import ``module`` in a worker before real work arrives (the first input is not slowed by imports)."""
    importlib.import_module(module)


PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """Ask Linux to kill this worker when the daemon dies (``kill -9`` included), so no orphan keeps writing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def worker_setup(parent: int, setup: Callable[..., None] | None = None, args: tuple = ()) -> None:
    """Start a worker process: leave SIGINT/SIGTERM to the daemon, die with it, then run ``setup(*args)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with(parent)
    if setup is not None:
        setup(*args)


START_METHOD = "spawn"


def process_pool(workers: int, setup: Callable[..., None] | None = None,
                 args: tuple = ()) -> concurrent.futures.ProcessPoolExecutor:
    """Return a pool of ``workers`` processes started with ``spawn``, each prepared by ``worker_setup``."""
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context(START_METHOD),
        initializer=worker_setup, initargs=(os.getpid(), setup, args))


def stop_executor(executor: concurrent.futures.Executor, abandon: bool) -> None:
    """Shut ``executor`` down; when ``abandon``, kill worker processes still running tasks."""
    if abandon and isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        terminate = getattr(executor, "terminate_workers", None)
        if terminate is not None:
            terminate()
        else:
            for process in list((getattr(executor, "_processes", None) or {}).values()):
                process.kill()
    executor.shutdown(wait=not abandon or isinstance(executor, concurrent.futures.ProcessPoolExecutor),
                      cancel_futures=True)
