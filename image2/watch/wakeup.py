"""Wake the daemon's loop the moment a signal arrives.

A Python signal handler runs on the main thread only, and only once that thread gets back to
the interpreter: while it sleeps in ``Event.wait`` a signal delivered to another thread (the
observer's, a pool's) is noticed when the wait times out. The handler also must not take the
event's lock (the thread it interrupted may hold it). So the signal's arrival is relayed:
the C-level handler writes a byte to a pipe (``signal.set_wakeup_fd``), and a small thread
reading that pipe sets the event.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator


def _relay(read_end: int, event: threading.Event, done: threading.Event) -> None:
    """Set ``event`` for every batch of bytes on ``read_end``, until ``done``."""
    while not done.is_set():
        os.read(read_end, 512)
        event.set()


@contextlib.contextmanager
def wake_on_signals(event: threading.Event) -> Iterator[None]:
    """Set ``event`` whenever a signal with a Python handler arrives, for the duration of the block.

    Only the main thread may do this (as for installing signal handlers); elsewhere the block runs
    without it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    done = threading.Event()
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    relay = threading.Thread(target=_relay, args=(read_end, event, done), name="image2-signal-relay", daemon=True)
    relay.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        done.set()
        with contextlib.suppress(BlockingIOError):  # a full pipe wakes the relay as well
            os.write(write_end, b"\0")
        relay.join()
        os.close(write_end)
        os.close(read_end)
