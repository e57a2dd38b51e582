"""The steps of a run as they happen: each timed and logged once, and handed on to whoever shows progress.

:class:`StepClock` watches one product's steps (core's ``StepObserver``): it logs one ``step``
event per step with its status and duration, then the step's notes, and hands ``planned``,
``started`` and ``ended`` events to this process's listener (:func:`report_to`): a live display in a single-process run,
or, in a worker process, a queue to the parent. In a worker, :func:`forward_to` sends both the
log records and those events through one queue, so the parent receives them in the order they
happened and :class:`QueueReader` hands them to its own logging and display.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from image2.core.provenance import SKIPPED

log = logging.getLogger("image2.run")

Event = tuple[Any, ...]
"""``("planned", input, steps)``, ``("started", input, step)``, ``("ended", input, step, status, seconds)``
or ``("finished", input)`` (everything about the input was sent); ``input`` is its path as given, as text."""

_listener: Callable[[Event], object] | None = None

FAILED = "FAILED"
"""The status of a step that raised (core records only COMPLETE and SKIPPED)."""


def report_to(listener: Callable[[Event], object] | None) -> None:
    """Hand this process's step events to ``listener`` from now on (None: to nobody)."""
    global _listener
    _listener = listener


def report(event: Event) -> None:
    """Hand ``event`` to this process's listener, if it has one."""
    if _listener is not None:
        _listener(event)


class StepClock:
    """Times, logs and reports the steps of one product of input ``source`` (a core ``StepObserver``).

    A cube runs every step once per chunk of integrations: the first chunk's steps are logged
    and reported, the later ones only logged at debug level.
    """

    def __init__(self, source: str, science: str) -> None:
        self.source = source
        self.science = science
        self._ended: set[str] = set()
        self._current: tuple[str, float] | None = None
        self._planned = False

    def planned(self, steps: Sequence[str]) -> None:
        """Report the steps that will end, once per product."""
        if not self._planned:
            self._planned = True
            report(("planned", self.source, tuple(steps)))

    def started(self, step: str) -> None:
        """Note the time ``step`` starts and report it."""
        self._current = (step, time.perf_counter())
        if step not in self._ended:
            report(("started", self.source, step))

    def ended(self, step: str, status: str, notes: Sequence[str] = ()) -> None:
        """Log and report ``step``'s status and duration (zero for a step skipped without running), then
        its notes (warnings when it was skipped)."""
        began = self._current[1] if self._current is not None and self._current[0] == step else None
        self._current = None
        seconds = 0.0 if began is None else time.perf_counter() - began
        first = step not in self._ended
        self._ended.add(step)
        level = logging.INFO if first else logging.DEBUG
        log.log(level, "step", extra={"file": self.science, "step": step, "status": status,
                                      "seconds": round(seconds, 3)})
        for note in notes:
            log.log(logging.WARNING if status == SKIPPED and first else level, "%s", note,
                    extra={"file": self.science, "step": step, "status": status})
        if first:
            report(("ended", self.source, step, status, seconds))

    def failed(self) -> None:
        """End the step that was running when the product failed (if one was) with status FAILED."""
        if self._current is not None:
            self.ended(self._current[0], FAILED)


class _RecordQueueHandler(logging.Handler):
    """Puts each record on a queue with its message rendered, its extra fields kept, and no traceback
    object (which does not cross processes; its text is appended to the message)."""

    def __init__(self, queue: Any) -> None:
        super().__init__()
        self.queue = queue

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sent = copy.copy(record)
            sent.msg = record.getMessage()
            if record.exc_info:
                sent.msg += "\n" + logging.Formatter().formatException(record.exc_info)
            sent.args, sent.exc_info, sent.exc_text = None, None, None
            self.queue.put(sent)
        except Exception:  # noqa: BLE001 - logging must never stop the work
            self.handleError(record)


def forward_to(queue: Any, level: str) -> None:
    """In a worker process: send image2's log records at ``level`` and above, and the step events, to ``queue``."""
    logger = logging.getLogger("image2")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(_RecordQueueHandler(queue))
    logger.setLevel(level.upper())
    logger.propagate = False
    report_to(queue.put)


class QueueReader:
    """In the parent: a thread that hands the records and events workers put on ``queue`` to this
    process's logging and to ``on_event``, in the order they arrive, until :meth:`close`."""

    def __init__(self, queue: Any, on_event: Callable[[Event], object]) -> None:
        self.queue = queue
        self.on_event = on_event
        self._finished: dict[str, threading.Event] = {}
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="image2-worker-events", daemon=True)

    def __enter__(self) -> QueueReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Hand on everything put so far, then stop (the workers must have stopped putting)."""
        if self._thread.is_alive():
            self.queue.put(None)
            self._thread.join()

    def _flag(self, name: str) -> threading.Event:
        with self._guard:
            return self._finished.setdefault(name, threading.Event())

    def wait_for(self, name: str, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until everything a worker sent about input ``name`` was handed on,
        so that what the caller logs next about it comes after."""
        self._flag(name).wait(timeout)
        with self._guard:
            self._finished.pop(name, None)

    def _read(self) -> None:
        while (item := self.queue.get()) is not None:
            try:
                if isinstance(item, logging.LogRecord):
                    logging.getLogger(item.name).handle(item)
                elif item[0] == "finished":
                    self._flag(item[1]).set()
                else:
                    self.on_event(item)
            except Exception:  # noqa: BLE001 - a display or handler error must not stop the events
                log.debug("worker event not handled: %r", item, exc_info=True)
