"""Test doubles for the watch daemon's parts: a clock the test sets, an executor that runs when told,
a process_input stand-in that returns only what the real one returns, a recording log, a watcher
without a thread, and input files made quickly."""

from __future__ import annotations

import concurrent.futures
import errno
import functools
import hashlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from image2.core.naming import product_root
from image2.io.association import load_input
from image2.io.atomic import ProductExistsError, atomic_write
from image2.run.options import RunOptions
from image2.run.results import Failure, FailureKind, ProductResult, failure_of
from image2.synthetic.exposures import make_rate, write_association
from image2.watch.observer import Hint, Hints

CALLS = "calls.log"
NO_SPACE = "[Errno 28] No space left on device"
STALE = "[Errno 116] Stale file handle"


class FakeClock:
    """Both clocks of the daemon, standing still until the test advances them."""

    def __init__(self, wall: float = 1_700_000_000.0, monotonic: float = 5_000.0) -> None:
        self._wall = wall
        self._monotonic = monotonic

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._monotonic += seconds


def strict(what: str, action: Callable[[], object]) -> None:
    """A guard that lets errors through: in unit tests a defect must fail the test, not be logged."""
    action()


class RecordingLog:
    """A structlog-like logger keeping (level, event, fields) for the assertions."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def _record(self, level: str, event: str, **fields: Any) -> None:
        with self._lock:
            self.events.append((level, event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self._record("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._record("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._record("error", event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._record("exception", event, **fields)

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [fields for _, name, fields in self.events if name == event]

    def for_file(self, path: Path) -> list[str]:
        with self._lock:
            return [name for _, name, fields in self.events if fields.get("file") == str(path)]


class ManualExecutor(concurrent.futures.Executor):
    """Keeps what is submitted until the test runs it, in the test's own thread."""

    def __init__(self) -> None:
        self.pending: list[tuple[concurrent.futures.Future, Callable[..., Any], tuple[Any, ...]]] = []
        self.closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        if self.closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.pending.append((future, functools.partial(fn, **kwargs), args))
        return future

    def run(self, count: int | None = None) -> list[Any]:
        """Run the oldest ``count`` pending calls (all when None); return their results."""
        taken = self.pending[:count] if count is not None else list(self.pending)
        del self.pending[:len(taken)]
        results = []
        for future, fn, args in taken:
            try:
                result = fn(*args)
            except Exception as error:  # noqa: BLE001 - handed to the future, as an executor does
                future.set_exception(error)
                continue
            future.set_result(result)
            results.append(result)
        return results

    def break_pool(self, error: BaseException) -> None:
        """Fail every pending call with ``error`` (as a pool whose worker died does)."""
        for future, _, _ in self.pending:
            future.set_exception(error)
        self.pending.clear()

    def tasks(self) -> list[Any]:
        """The tasks waiting to run (warm-up calls left out)."""
        return [args[0] for _, fn, args in self.pending if fn.func.__name__ == "run_task"]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.closed = True
        if cancel_futures:
            for future, _, _ in self.pending:
                future.cancel()
            self.pending.clear()


class Executors:
    """An executor factory for the runner that keeps every executor it made (the last is in use)."""

    def __init__(self) -> None:
        self.made: list[ManualExecutor] = []

    def __call__(self, workers: int) -> ManualExecutor:
        self.made.append(ManualExecutor())
        return self.made[-1]

    @property
    def current(self) -> ManualExecutor:
        return self.made[-1]


class FakeWatcher:
    """The observer without a thread: the test posts events and says when it is in trouble."""

    def __init__(self, roots: tuple[Path, ...], recursive: bool, poll: float | None, hints: Hints,
                 interesting: Callable[[Path], bool]) -> None:
        self.roots = roots
        self.fallback: str | None = None
        self.problem: str | None = None
        self.restarts = 0
        self.running = False
        self._hints = hints
        self._interesting = interesting

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def restart(self) -> None:
        self.restarts += 1
        self.problem = None

    def trouble(self) -> str | None:
        return self.problem

    def missing(self) -> tuple[Path, ...]:
        return tuple(root for root in self.roots if not root.is_dir())

    def post(self, path: Path, closed: bool = True) -> None:
        """An event for ``path``, passed on as the real handler does (only for interesting paths)."""
        if self._interesting(path):
            self._hints.put(Hint(path, closed))


def calls(output: Path) -> list[str]:
    """The inputs the process double was called with, in order."""
    path = output / CALLS
    return path.read_text().split() if path.exists() else []


def no_space(path: Path) -> ProductResult:
    """The failed result the real process_input returns when the output disk is full."""
    return ProductResult(path, product_root(path.name), "failed", (), f"{path}: {NO_SPACE}",
                         failure=Failure(FailureKind.IO, NO_SPACE, errno.ENOSPC))


def stale(path: Path) -> ProductResult:
    """The failed result the real process_input returns when a network mount lost a file's handle."""
    return ProductResult(path, product_root(path.name), "failed", (), f"{path}: {STALE}",
                         failure=Failure(FailureKind.IO, STALE, errno.ESTALE))


def fake_process(path: Path, options: RunOptions) -> list[ProductResult]:
    """process_input's double: one ``<root>_cal.fits`` per product holding the input's SHA-256.

    It returns only what the real one returns (never raises). Names steer it: ``transient`` meets a stale
    file handle on the first two calls, ``nospace`` runs out of disk on them, ``broken`` fails, ``partial``
    publishes an ``_i2d`` and meets a stale handle before its ``_cal`` on the first call (an existing
    product is never replaced without overwrite).
    """
    with open(options.output_dir / CALLS, "a") as log:
        log.write(path.name + "\n")
    name = path.name
    count = calls(options.output_dir).count(name)
    if "transient" in name and count <= 2:
        return [stale(path)]
    if "nospace" in name and count <= 2:
        return [no_space(path)]
    if "partial" in name:
        i2d = options.output_dir / name.replace("_rate.fits", "_i2d.fits")
        try:
            with atomic_write(i2d, overwrite=options.overwrite) as handle:
                handle.write(b"i2d")
        except ProductExistsError as error:
            return [ProductResult(path, product_root(name), "failed", (), str(error), failure=failure_of(error))]
        if count == 1:
            return [stale(path)]
    digest = hashlib.sha256(path.read_bytes()).hexdigest().encode()
    results = []
    for product in load_input(path).products:
        root = product_root(product.name)
        if "broken" in name:
            results.append(ProductResult(path, root, "failed", (), "photom: no conversion factor",
                                         failure=Failure(FailureKind.STEP, "photom: no conversion factor")))
            continue
        target = options.output_dir / f"{root}_cal.fits"
        try:
            with atomic_write(target, overwrite=options.overwrite) as handle:
                handle.write(digest)
        except ProductExistsError:
            results.append(ProductResult(path, root, "skipped", (target,), "exists already"))
            continue
        results.append(ProductResult(path, root, "done", (target,)))
    return results


def killed_by_poison(path: Path, options: RunOptions) -> list[ProductResult]:
    """fake_process, except that an input named ``poison`` kills the worker running it with SIGKILL, as the
    kernel's out-of-memory killer does (run it in worker processes only)."""
    if "poison" in path.name:
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_process(path, options)


@functools.lru_cache(maxsize=None)
def _rate_bytes(seed: int) -> bytes:
    """The bytes of a tiny valid rate file (made once per seed: making one takes a while)."""
    with tempfile.TemporaryDirectory() as folder:
        return make_rate(Path(folder) / "a_rate.fits", shape=(16, 16), seed=seed).read_bytes()


def rate(folder: Path, name: str, seed: int = 1) -> Path:
    """A tiny valid rate file, written beside ``folder`` and renamed into it (one close-and-rename)."""
    staging = folder.parent / "staging"
    staging.mkdir(exist_ok=True)
    (staging / name).write_bytes(_rate_bytes(seed))
    os.replace(staging / name, folder / name)
    return folder / name


def association(folder: Path, name: str, members: list[str]) -> Path:
    """An association with one science member per product, renamed into ``folder``."""
    products = [{"name": m.replace("_rate.fits", ""), "members": [{"expname": m, "exptype": "science"}]}
                for m in members]
    staging = folder.parent / "staging"
    staging.mkdir(exist_ok=True)
    write_association(staging / name, products)
    os.replace(staging / name, folder / name)
    return folder / name
