"""A Dask cluster as a ``concurrent.futures`` executor; imported only for ``--executor dask``.

Tasks carry paths and plain options, never arrays: inputs, reference files and the output
folder must be on storage every worker sees under the same paths.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from typing import Any

from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from image2.run.executors import ExecutorUnavailable

SETUP_PLUGIN = "image2-worker-setup"


class WorkerSetup(WorkerPlugin):
    """Run ``initializer(*initargs)`` once in every worker, present and future, as a pool's initializer does."""

    def __init__(self, initializer: Callable[..., object], initargs: tuple) -> None:
        self.initializer = initializer
        self.initargs = initargs

    def setup(self, worker: Any) -> None:
        self.initializer(*self.initargs)


class ClusterExecutor(Executor):
    """Tasks on a Dask cluster through its client; every submission is a task of its own.

    ``shutdown`` waits for this executor's tasks (or, with ``wait=False`` or ``cancel_futures``,
    cancels them: Dask cannot interrupt a running task, whose result is then dropped). The
    cluster stays up until the :func:`cluster_executor` block ends, and the executor takes
    work again after a shutdown, so a daemon replacing its executor can be handed the same one.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._tasks = client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._tasks.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        tasks, self._tasks = self._tasks, self.client.get_executor(pure=False)
        tasks.shutdown(wait=wait and not cancel_futures)

    def capacity(self) -> int:
        """The number of tasks the cluster runs at once now (its workers' threads; at least 1)."""
        return max(1, sum(self.client.nthreads().values()))


def _client(scheduler: str | None, workers: int | None, stack: contextlib.ExitStack) -> Client:
    if scheduler is None:
        cluster = stack.enter_context(LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                                   processes=True, dashboard_address=":0"))
        return stack.enter_context(Client(cluster))
    try:
        return stack.enter_context(Client(scheduler))
    except (OSError, ValueError) as error:
        raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


@contextlib.contextmanager
def cluster_executor(workers: int | None, scheduler: str | None = None,
                     initializer: Callable[..., object] | None = None, initargs: tuple = ()) -> Iterator[ClusterExecutor]:
    """Yield an executor on the cluster at ``scheduler``, or on a LocalCluster of ``workers`` processes.

    A LocalCluster (one single-threaded worker process per core unless ``workers`` says) is
    stopped at the end; a cluster given by address is only disconnected from.
    """
    with contextlib.ExitStack() as stack:
        client = _client(scheduler, workers, stack)
        if initializer is not None:
            client.register_plugin(WorkerSetup(initializer, initargs), name=SETUP_PLUGIN)
        executor = ClusterExecutor(client)
        try:
            yield executor
        except BaseException:
            executor.shutdown(wait=False)
            raise
        executor.shutdown(wait=True)
