"""The live display of a batch on a terminal: overall progress by step, elapsed and ETA, and one
line per input being calibrated with the step it is in.

It is driven by plain calls (``input_started``, ``input_planned``, ``step_started``,
``step_ended``, ``input_finished``), or by :meth:`BatchProgress.event` with the step events of
image2.run.events, made as events arrive, from this process or from workers. Inputs are named
by their paths as given; the display shows their file names. While it runs it owns the
terminal through rich: whatever is written to ``sys.stderr`` or ``sys.stdout`` meanwhile (log
lines included: image2.cli.logs writes to the current ``sys.stderr``) is printed above the
display, never through it. Off a terminal, or
when not wanted (``--quiet``), the same calls do nothing, so callers need no branches.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs


@attrs.define
class _Input:
    """One input of the batch and how far it got."""

    name: str
    started_at: float | None = None
    finished_at: float | None = None
    step: str | None = None
    steps_done: int = 0
    steps: int | None = None
    """How many steps this input goes through, once known (else the batch's default)."""


def eta_seconds(now: float, inputs: Sequence[_Input], steps: int, workers: int) -> float | None:
    """Return the estimated seconds until the batch ends, or None before anything can be said.

    An input's duration is the mean of the finished ones; while none has finished, it is
    extrapolated from the running inputs' elapsed time and fraction of steps done. The work
    left (inputs not started, and what running ones still need) is shared by ``workers``.
    """
    finished = [i.finished_at - i.started_at for i in inputs if i.finished_at is not None and i.started_at is not None]
    running = [i for i in inputs if i.started_at is not None and i.finished_at is None]
    if finished:
        typical = sum(finished) / len(finished)
    else:
        rates = [(now - i.started_at) * (i.steps or steps) / i.steps_done for i in running if i.steps_done]
        if not rates:
            return None
        typical = sum(rates) / len(rates)
    waiting = sum(i.started_at is None for i in inputs)
    left = waiting * typical + sum(max(typical - (now - i.started_at), 0.0) for i in running)
    return left / max(1, min(workers, waiting + len(running)))


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class BatchProgress:
    """A live display of ``inputs`` going through ``steps`` (names in order), ``workers`` at a time.

    Use as a context manager; ``enabled=None`` shows it only when ``stream`` is a terminal.
    """

    def __init__(self, inputs: Sequence[str], steps: Sequence[str], workers: int = 1,
                 stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.steps = tuple(steps)
        self.workers = workers
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = self._stream.isatty() if enabled is None else enabled
        self._inputs = {name: _Input(name) for name in inputs}
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._live: Any = None

    def __enter__(self) -> BatchProgress:
        self._started = time.monotonic()
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self._stream, force_terminal=True)
            self._live = Live(console=console, get_renderable=self._renderable, refresh_per_second=4,
                              redirect_stdout=True, redirect_stderr=True, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.__exit__(*exc)

    # -- events ----------------------------------------------------------------------------------

    def input_started(self, name: str) -> None:
        """``name`` was handed to a worker."""
        with self._lock:
            self._inputs[name].started_at = time.monotonic()

    def input_planned(self, name: str, steps: Sequence[str]) -> None:
        """``name`` goes through ``steps`` (for an association: each product's, added up)."""
        with self._lock:
            entry = self._inputs[name]
            entry.started_at = entry.started_at or time.monotonic()
            entry.steps = (entry.steps or 0) + len(steps)

    def event(self, event: tuple) -> None:
        """Take one step event of image2.run.events: planned, started or ended."""
        kind, name, *rest = event
        if name not in self._inputs:
            return
        if kind == "planned":
            self.input_planned(name, rest[0])
        elif kind == "started":
            self.step_started(name, rest[0])
        elif kind == "ended":
            self.step_ended(name, *rest)

    def step_started(self, name: str, step: str) -> None:
        """``name`` entered ``step``."""
        with self._lock:
            entry = self._inputs[name]
            entry.started_at = entry.started_at or time.monotonic()
            entry.step = step

    def step_ended(self, name: str, step: str, status: str, seconds: float) -> None:
        """``name`` left ``step`` with ``status`` (complete, skipped, failed) after ``seconds``."""
        with self._lock:
            entry = self._inputs[name]
            entry.steps_done = min(entry.steps_done + 1, self._steps_of(entry))
            entry.step = None

    def input_finished(self, name: str, status: str) -> None:
        """``name`` ended with ``status`` (done, skipped, failed); its line leaves the display."""
        with self._lock:
            entry = self._inputs[name]
            now = time.monotonic()
            entry.started_at = entry.started_at or now
            entry.finished_at = now
            entry.steps_done = self._steps_of(entry)

    def _steps_of(self, entry: _Input) -> int:
        return entry.steps if entry.steps is not None else len(self.steps)

    # -- display ---------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What the display shows, as numbers: inputs finished and total, steps done and total, elapsed, ETA."""
        with self._lock:
            now = time.monotonic()
            inputs = list(self._inputs.values())
            return {
                "finished": sum(i.finished_at is not None for i in inputs), "inputs": len(inputs),
                "steps_done": sum(i.steps_done for i in inputs), "steps": sum(self._steps_of(i) for i in inputs),
                "elapsed": now - self._started, "eta": eta_seconds(now, inputs, len(self.steps), self.workers),
                "running": [(i.name, i.step, i.steps_done, self._steps_of(i), now - i.started_at) for i in inputs
                            if i.started_at is not None and i.finished_at is None],
            }

    def _renderable(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        state = self.summary()
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_row(f"[bold]{state['finished']}/{state['inputs']} inputs",
                      ProgressBar(total=max(state["steps"], 1), completed=state["steps_done"], width=30),
                      f"elapsed {_clock(state['elapsed'])}  ETA {_clock(state['eta'])}")
        for name, step, done, total, seconds in state["running"]:
            now = step or ("starting" if done == 0 else "writing" if done >= total else "")
            table.add_row(f"  {Path(name).name}", ProgressBar(total=total or 1, completed=done, width=30),
                          f"{now} ({done}/{total})  {_clock(seconds)}")
        return table
