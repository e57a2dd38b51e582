"""Where inputs are calibrated: local worker processes, or a Dask cluster (the ``image2[dask]`` extra).

:func:`process_pool` is the one factory of local worker processes (``image2 process --jobs`` and the
watch daemon). Both kinds are ``concurrent.futures`` executors, so ``image2 process`` and the watch
daemon drive them alike. Dask is imported only when it is asked for. On a cluster, a task whose worker
died (or became unreachable) is submitted again a bounded number of times: the runner's
products are published atomically under fixed names, so a repeated task never duplicates one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future
from typing import Any

import attrs

from image2.core.parallel import CORES_VARIABLE, usable_cores
from image2.errors import Image2Error

EXECUTORS = ("local", "dask")
START_METHOD = "spawn"
"""Start method of local worker processes, chosen explicitly (the global default is never changed):
a fresh interpreter, never a fork of a parent that may run threads, whose parent is the process
that made the pool (so it can die with it)."""

LOST_WORKER_RETRIES = 2
"""Times a task is submitted again after its worker was lost (Dask itself already reruns a task
whose worker died, up to ``distributed.scheduler.allowed-failures`` times, before reporting it)."""

PR_SET_PDEATHSIG = 1


class ExecutorUnavailable(Image2Error):
    """An executor that cannot be used here: unknown, or its optional packages are not installed."""


def _die_with(parent: int) -> None:
    """Ask Linux to kill this worker when its parent dies (``kill -9`` included), so no orphan keeps writing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def worker_setup(parent: int, interruptible: bool, setup: Callable[..., object] | None = None,
                 args: tuple = (), cores: int = 1) -> None:
    """Start a worker process: die with its parent, leave SIGINT/SIGTERM to the parent unless
    ``interruptible``, use ``cores`` cores (its share), load what every task needs, then run ``setup(*args)``.

    The worker stays warm between tasks: its imports, asdf's extensions and the reference
    files it read (image2.io.refs.readers) serve every later task.
    """
    if not interruptible:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with(parent)
    os.environ[CORES_VARIABLE] = str(cores)
    from image2.io.asdf_manifests import use_libyaml_for_manifests

    use_libyaml_for_manifests()
    if setup is not None:
        setup(*args)


def process_pool(workers: int | None = None, setup: Callable[..., object] | None = None, args: tuple = (), *,
                 interruptible: bool = False) -> concurrent.futures.ProcessPoolExecutor:
    """Return the pool of local worker processes: ``workers`` of them (default one per core), started
    with ``spawn`` and prepared by :func:`worker_setup`, which gives each its share of the cores
    and runs ``setup(*args)`` in it.

    ``interruptible`` workers take SIGINT/SIGTERM as their parent does (``image2 process``: Ctrl-C
    stops everything, each worker removing its temporary files); the others ignore them and are
    stopped by their parent (the watch daemon, which lets running items finish).
    """
    workers = workers or usable_cores()
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context(START_METHOD),
        initializer=worker_setup, initargs=(os.getpid(), interruptible, setup, args,
                                            max(1, usable_cores() // workers)))


def worker_exits(executor: Executor, wait: float = 1.0) -> list[str]:
    """Say how the local worker processes of ``executor`` that are gone ended ("killed by SIGKILL", "exit
    status 1"), waiting up to ``wait`` seconds for a dead one to be reaped; empty for other executors, or
    when every worker still runs."""
    if not isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        return []
    processes = list((getattr(executor, "_processes", None) or {}).values())
    deadline = time.monotonic() + wait
    codes = [p.exitcode for p in processes]
    while processes and all(code is None for code in codes) and time.monotonic() < deadline:
        time.sleep(0.02)
        codes = [p.exitcode for p in processes]
    ends = []
    for code in codes:
        if code is None:
            continue
        if code < 0:
            try:
                ends.append(f"killed by {signal.Signals(-code).name}")
            except ValueError:
                ends.append(f"killed by signal {-code}")
        else:
            ends.append(f"exit status {code}")
    return ends


def stop_executor(executor: Executor, abandon: bool) -> None:
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


@contextlib.contextmanager
def make_executor(kind: str, workers: int | None, scheduler: str | None = None, *,
                  initializer: Callable[..., object] | None = None, initargs: tuple = ()) -> Iterator[Executor]:
    """Yield an executor of ``kind`` and shut it (and any cluster it started) down afterwards.

    ``local``: ``workers`` processes (default: one per core). ``dask``: the cluster whose
    scheduler is at ``scheduler``, else a LocalCluster of ``workers`` single-threaded worker
    processes (default: one per core). ``initializer(*initargs)`` runs once in every worker.
    """
    if kind == "local":
        if scheduler is not None:
            raise ExecutorUnavailable("--scheduler needs --executor dask")
        with process_pool(workers, initializer, initargs, interruptible=True) as pool:
            yield pool
    elif kind == "dask":
        try:
            from image2.run.dask_cluster import cluster_executor
        except ImportError as error:
            raise ExecutorUnavailable(f"--executor dask needs Dask distributed, which is not installed ({error}); "
                                      "install the extra: pip install 'image2[dask]'") from None
        with cluster_executor(workers, scheduler, initializer, initargs) as executor:
            yield executor
    else:
        raise ExecutorUnavailable(f"unknown executor {kind!r} (known: {', '.join(EXECUTORS)})")


def lost_worker(error: BaseException) -> bool:
    """Whether ``error`` says that the task's worker died or could not be reached, not that the task failed."""
    if isinstance(error, concurrent.futures.CancelledError):
        return True  # image2 never cancels a task it waits for; a cluster does when it loses track of it
    if "distributed" not in sys.modules:
        return False
    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    return isinstance(error, (KilledWorker, CommClosedError))


@attrs.frozen
class Finished:
    """One call's end: its arguments, and its result or the error it ended with, after ``attempts`` runs."""

    args: tuple
    result: Any = None
    error: BaseException | None = None
    attempts: int = 1


def finished(executor: Executor, fn: Callable[..., Any], calls: Iterable[tuple],
             retries: int = LOST_WORKER_RETRIES) -> Iterator[Finished]:
    """Yield ``fn(*args)`` for every ``args`` of ``calls`` as each ends, running them on ``executor``.

    A call whose worker was lost is submitted again, at most ``retries`` times; any other
    error, or a loss beyond that, ends the call with the error (the others go on).
    """
    pending: dict[Future, tuple[tuple, int]] = {executor.submit(fn, *args): (args, 1) for args in calls}
    while pending:
        done, _ = concurrent.futures.wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            args, attempts = pending.pop(future)
            error = concurrent.futures.CancelledError() if future.cancelled() else future.exception()
            if error is None:
                yield Finished(args, future.result(), None, attempts)
                continue
            if lost_worker(error) and attempts <= retries:
                try:
                    pending[executor.submit(fn, *args)] = (args, attempts + 1)
                    continue
                except Exception as refused:  # noqa: BLE001 - an executor that takes no more work ends the call
                    error = refused
            yield Finished(args, None, error, attempts)
