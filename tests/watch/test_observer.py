"""The observer's side: hints that never block, a handler that survives anything, and the troubles that
make the daemon restart the observer and rescan."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from watchdog.events import FileClosedEvent, FileMovedEvent

from image2.watch.observer import Hint, HintHandler, Hints, Watcher


def test_hints_never_block_and_report_overflow() -> None:
    wake = threading.Event()
    hints = Hints(2, wake)
    for name in ("a", "b", "c"):
        hints.put(Hint(Path(name)))
    assert wake.is_set()
    assert hints.take_lost() == "too many events at once (hint queue full)"
    assert hints.take_lost() is None
    assert hints.drain(10) == {Path("a"): False, Path("b"): False}


def test_hint_handler_survives_errors() -> None:
    hints = Hints(10, threading.Event())

    def explode(path: Path) -> bool:
        raise RuntimeError("boom")

    HintHandler(hints, explode).dispatch(FileClosedEvent("/in/a_rate.fits"))
    assert "boom" in hints.take_lost()
    handler = HintHandler(hints, lambda p: p.name.endswith("_rate.fits"))
    handler.dispatch(FileMovedEvent("/in/.a_rate.fits.Xy12", "/in/a_rate.fits"))
    handler.dispatch(FileClosedEvent("/in/b_rate.fits.part"))
    handler.dispatch(FileClosedEvent("/in/c_rate.fits"))
    assert hints.drain(10) == {Path("/in/a_rate.fits"): True, Path("/in/c_rate.fits"): True}


def test_a_kernel_queue_overflow_asks_for_a_rescan(tmp_path: Path) -> None:
    hints = Hints(10, threading.Event())
    watcher = Watcher([tmp_path], recursive=False, poll=None, hints=hints, interesting=lambda p: True)
    watcher.start()
    try:
        assert watcher.trouble() is None
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost")
        assert hints.take_lost() == "the kernel's event queue overflowed"
    finally:
        watcher.stop()
    assert watcher.trouble() == "observer thread is not running"
    logging.getLogger("watchdog.observers.inotify_c").warning("Inotify queue overflowed")
    assert hints.take_lost() is None


def test_a_replaced_or_late_folder_is_trouble_until_the_observer_restarts(tmp_path: Path) -> None:
    inbox, late = tmp_path / "in", tmp_path / "late"
    inbox.mkdir()
    watcher = Watcher([inbox, late], recursive=False, poll=None, hints=Hints(10, threading.Event()),
                      interesting=lambda p: True)
    watcher.start()
    try:
        assert watcher.missing() == (late,) and watcher.trouble() is None
        os.rename(inbox, tmp_path / "old-in")
        inbox.mkdir()
        assert watcher.trouble() == f"watched folder {inbox} was removed or replaced"
        watcher.restart()
        assert watcher.trouble() is None
        late.mkdir()
        assert watcher.trouble() == f"watched folder {late} appeared"
        watcher.restart()
        assert watcher.trouble() is None and watcher.missing() == ()
    finally:
        watcher.stop()
