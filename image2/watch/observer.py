"""The watchdog observer over the watched folders: it only turns events into hints, and is replaced when it dies.

The event callback runs on watchdog's thread. It never blocks and never raises: it puts a
hint (a path, and whether a writer has just closed it or renamed it into place) in a bounded
mailbox. When the mailbox is full, the kernel's queue overflowed, or the callback failed,
it flags events as lost so the coordinator rescans.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
from watchdog.events import (
    EVENT_TYPE_ATTRIB,
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    DirDeletedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from image2.watch.readiness import is_temporary_name

EVENT_TYPES = [FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent, FileMovedEvent,
               FileDeletedEvent, DirDeletedEvent]
"""The only events asked of the observer (directory creation is watched anyway when recursive)."""

_CHANGED = (EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_ATTRIB, EVENT_TYPE_DELETED)


@attrs.frozen
class Hint:
    """Something may have happened to ``path``; ``closed`` when a writer closed it or renamed it into place."""

    path: Path
    closed: bool = False


class Hints:
    """A bounded, never-blocking mailbox of hints from the observer thread to the coordinator."""

    def __init__(self, capacity: int, wake: threading.Event) -> None:
        self._queue: queue.Queue[Hint] = queue.Queue(capacity)
        self._wake = wake
        self._lock = threading.Lock()
        self._lost: str | None = None

    def put(self, hint: Hint) -> None:
        """Post a hint; when the mailbox is full, note that events were lost instead."""
        try:
            self._queue.put_nowait(hint)
        except queue.Full:
            self.lose("too many events at once (hint queue full)")
        self._wake.set()

    def lose(self, reason: str) -> None:
        """Note that events were lost (the first reason until the coordinator takes it)."""
        with self._lock:
            if self._lost is None:
                self._lost = reason
        self._wake.set()

    def take_lost(self) -> str | None:
        """Return (and clear) why events were lost since the last call, or None."""
        with self._lock:
            reason, self._lost = self._lost, None
        return reason

    def drain(self, limit: int) -> dict[Path, bool]:
        """Return up to ``limit`` pending hints, merged per path (closed if any hint said so)."""
        merged: dict[Path, bool] = {}
        for _ in range(limit):
            try:
                hint = self._queue.get_nowait()
            except queue.Empty:
                break
            merged[hint.path] = merged.get(hint.path, False) or hint.closed
        return merged

    def __len__(self) -> int:
        return self._queue.qsize()


class HintHandler(FileSystemEventHandler):
    """The watchdog callback: turns file events for interesting paths into hints; never raises."""

    def __init__(self, hints: Hints, interesting: Callable[[Path], bool]) -> None:
        self._hints = hints
        self._interesting = interesting

    def _post(self, raw: bytes | str, closed: bool) -> None:
        if not raw:
            return
        path = Path(os.fsdecode(raw))
        if not is_temporary_name(path.name) and self._interesting(path):
            self._hints.put(Hint(path, closed))

    def dispatch(self, event: FileSystemEvent) -> None:
        """Post hints for ``event`` (overrides watchdog's dispatch: one place, wrapped against errors)."""
        try:
            if event.is_directory:
                if event.event_type == EVENT_TYPE_DELETED:
                    self._hints.lose(f"folder {os.fsdecode(event.src_path)} was deleted")
                return
            if event.event_type == EVENT_TYPE_MOVED:
                self._post(event.src_path, False)
                self._post(event.dest_path, True)
            elif event.event_type == EVENT_TYPE_CLOSED:
                self._post(event.src_path, True)
            elif event.event_type in _CHANGED:
                self._post(event.src_path, False)
        except Exception as error:  # noqa: BLE001 - the observer thread must survive anything
            self._hints.lose(f"event handler error: {error!r}")


class _OverflowAlarm(logging.Handler):
    """Hears watchdog's warning that the kernel's event queue overflowed (it drops those events)."""

    def __init__(self, hints: Hints) -> None:
        super().__init__(logging.WARNING)
        self._hints = hints

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "overflow" in record.getMessage().lower():
                self._hints.lose("the kernel's event queue overflowed")
        except Exception:  # noqa: BLE001 - logging must never fail the observer
            return


_WATCHDOG_LOGGERS = ("watchdog.observers.inotify_c", "watchdog.observers.inotify")


def _native_observer() -> BaseObserver:
    """The platform's observer; on Linux one that reports a rename into a watched folder from outside
    it as a move (a writer's final rename), not as a creation."""
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    return Observer()


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Watcher:
    """One watchdog observer (native, or polling every ``poll`` seconds) scheduled on the watched folders."""

    def __init__(self, roots: Iterable[Path], recursive: bool, poll: float | None, hints: Hints,
                 interesting: Callable[[Path], bool]) -> None:
        self.roots = tuple(roots)
        self.recursive = recursive
        self.poll = poll
        self.fallback: str | None = None
        self._hints = hints
        self._handler = HintHandler(hints, interesting)
        self._alarm = _OverflowAlarm(hints)
        self._observer: BaseObserver | None = None
        self._scheduled: dict[Path, tuple[int, int] | None] = {}

    def start(self) -> None:
        """Start a fresh observer on every watched folder that exists now (polling if native fails)."""
        if self.poll is None and self.fallback is None:
            try:
                self._start(_native_observer())
                return
            except OSError as error:
                self.fallback = f"native observer unavailable ({error}); polling every second instead"
        self._start(PollingObserver(timeout=self.poll if self.poll is not None else 1.0))

    def _start(self, observer: BaseObserver) -> None:
        self._scheduled = {}
        for root in self.roots:
            identity = _identity(root)
            if identity is None:
                continue
            try:
                observer.schedule(self._handler, str(root), recursive=self.recursive, event_filter=EVENT_TYPES)
            except OSError:
                continue
            self._scheduled[root] = identity
        for name in _WATCHDOG_LOGGERS:
            logging.getLogger(name).addHandler(self._alarm)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def trouble(self) -> str | None:
        """Return why the observer no longer covers every watched folder, or None when it does."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return "observer thread is not running"
        if not all(emitter.is_alive() for emitter in list(observer.emitters)):
            return "an observer emitter thread died"
        for root in self.roots:
            identity = _identity(root)
            if root in self._scheduled:
                if identity != self._scheduled[root]:
                    return f"watched folder {root} was removed or replaced"
            elif identity is not None:
                return f"watched folder {root} appeared"
        return None

    def missing(self) -> tuple[Path, ...]:
        """The watched folders the observer could not watch (they did not exist)."""
        return tuple(root for root in self.roots if root not in self._scheduled)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the observer (waiting at most ``timeout`` seconds for its threads)."""
        for name in _WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._alarm)
        observer, self._observer = self._observer, None
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout)
        except Exception:  # noqa: BLE001 - a broken observer is being discarded anyway
            return

    def restart(self) -> None:
        """Replace the observer with a fresh one (after a failure, or when a folder came back)."""
        self.stop()
        self.start()
