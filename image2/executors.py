"""Where inputs are calibrated: local worker processes, or a Dask cluster (the ``image2[dask]`` extra).

Both are ``concurrent.futures`` executors, so ``image2 process`` and the watch daemon drive
them alike. Dask is imported only when it is asked for. On a cluster, a task whose worker
died (or became unreachable) is submitted again a bounded number of times: the runner's
products are published atomically under fixed names, so a repeated task never duplicates one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future
from typing import Any

import attrs

from image2.errors import Image2Error

EXECUTORS = ("local", "dask")
LOCAL_START_METHOD = "forkserver"
"""Start method of local worker processes, chosen explicitly; the global default is never changed."""

LOST_WORKER_RETRIES = 2
"""Times a task is submitted again after its worker was lost (Dask itself already reruns a task
whose worker died, up to ``distributed.scheduler.allowed-failures`` times, before reporting it)."""


class ExecutorUnavailable(Image2Error):
    """An executor that cannot be used here: unknown, or its optional packages are not installed."""


def _local(workers: int | None, initializer: Callable[..., object] | None,
           initargs: tuple) -> concurrent.futures.ProcessPoolExecutor:
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1, mp_context=multiprocessing.get_context(LOCAL_START_METHOD),
        initializer=initializer, initargs=initargs)


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
        with _local(workers, initializer, initargs) as pool:
            yield pool
    elif kind == "dask":
        try:
            from image2.dask_cluster import cluster_executor
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
