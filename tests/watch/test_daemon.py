"""The daemon's rules, run in-process on real folders with a test double of process_input and threads.

The acceptance tests (test_acceptance.py) run the real command as a subprocess; these pin the
decisions: exactly once, versions, retries, quarantine, associations, lost events, shutdown.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from image2.core.naming import product_root
from image2.io.association import load_input
from image2.io.atomic import ProductExistsError, atomic_write
from image2.io.process import ProductResult, RunOptions, validate_input
from image2.watch.daemon import Daemon, DaemonBusy, WatchConfig
from image2.watch.ledger import ASSOCIATION, DONE, FAILED, QUEUED, RUNNING, WAITING, Ledger
from image2.watch.observer import Hint, HintHandler, Hints
from image2.synthetic.exposures import make_rate, write_association

CALLS = "calls.log"


def calls(output: Path) -> list[str]:
    """The inputs the double was called with, in order (one line per call)."""
    path = output / CALLS
    return path.read_text().split() if path.exists() else []


def fake_process(path: Path, options: RunOptions) -> list[ProductResult]:
    """Test double of process_input: one ``<root>_cal.fits`` per product holding the input's SHA-256.

    Names steer it: ``transient`` raises ENOSPC on the first two calls, ``broken`` fails,
    ``slow`` takes 1.5 s, ``partial`` publishes an ``_i2d`` first and runs out of disk before its ``_cal``
    on the first call (like the real runner, an existing product is never replaced without overwrite).
    """
    with open(options.output_dir / CALLS, "a") as log:
        log.write(path.name + "\n")
    name = path.name
    if "transient" in name and calls(options.output_dir).count(name) <= 2:
        raise OSError(errno.ENOSPC, "No space left on device")
    if "slow" in name:
        time.sleep(1.5)
    if "partial" in name:
        i2d = options.output_dir / name.replace("_rate.fits", "_i2d.fits")
        try:
            with atomic_write(i2d, overwrite=options.overwrite) as handle:
                handle.write(b"i2d")
        except ProductExistsError as error:
            return [ProductResult(path, name, "failed", (), str(error))]
        if calls(options.output_dir).count(name) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
    digest = hashlib.sha256(path.read_bytes()).hexdigest().encode()
    results = []
    for product in load_input(path).products:
        root = product_root(product.name)
        if "broken" in name:
            results.append(ProductResult(path, root, "failed", (), "photom: no conversion factor"))
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


def wait_until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll ``condition`` until true; fail the test if it never becomes true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class Harness:
    """A daemon running on a thread over ``tmp/in`` → ``tmp/out``."""

    def __init__(self, tmp: Path, process: Callable = fake_process, **settings: Any) -> None:
        self.inbox = tmp / "in"
        self.output = tmp / "out"
        self.inbox.mkdir(exist_ok=True)
        self.output.mkdir(exist_ok=True)
        defaults = dict(settle=0.3, reconcile=60.0, heartbeat=0.5, grace=10.0, retry_delay=0.1, workers=2)
        defaults.update(settings)
        self.config = WatchConfig(roots=[self.inbox], output_dir=self.output,
                                  options=RunOptions(output_dir=self.output), **defaults)
        self.log = RecordingLog()
        self.daemon = Daemon(self.config, process=process, validate=validate_input,
                             executor=lambda n: ThreadPoolExecutor(n), log=self.log)
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def __enter__(self) -> Harness:
        self.thread.start()
        wait_until(lambda: self.log.named("scan"))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.daemon.request_stop("test")
        self.thread.join(30)
        assert not self.thread.is_alive()

    def states(self) -> dict[str, str]:
        ledger = Ledger.in_folder(self.output, readonly=True)
        try:
            rows = ledger._db.execute("SELECT path, state FROM items ORDER BY id").fetchall()
        finally:
            ledger.close()
        return {Path(p).name: s for p, s in rows}

    def rows(self) -> list[Any]:
        ledger = Ledger.in_folder(self.output, readonly=True)
        try:
            return [ledger.get(r[0]) for r in ledger._db.execute("SELECT id FROM items ORDER BY id")]
        finally:
            ledger.close()

    def settled(self, *names: str, state: str = DONE) -> Callable[[], bool]:
        return lambda: all(self.states().get(n) == state for n in names)


def rate(folder: Path, name: str, seed: int = 1) -> Path:
    """A tiny valid rate file written elsewhere and renamed into ``folder`` (one close-and-rename)."""
    staging = folder.parent / "staging"
    staging.mkdir(exist_ok=True)
    path = make_rate(staging / name, shape=(16, 16), seed=seed)
    return Path(os.replace(path, folder / name) or folder / name)


def test_each_file_is_processed_once_and_every_state_change_is_logged(tmp_path: Path) -> None:
    names = [f"jw0{i}_rate.fits" for i in range(6)]
    with Harness(tmp_path) as h:
        for name in names:
            rate(h.inbox, name)
        wait_until(h.settled(*names))
        assert sorted(calls(h.output)) == sorted(names)
        for name in names:
            product = h.output / name.replace("_rate.fits", "_cal.fits")
            assert product.read_bytes() == hashlib.sha256((h.inbox / name).read_bytes()).hexdigest().encode()
            assert h.log.for_file(h.inbox / name) == ["queued", "running", "done"]
        for row in h.rows():
            assert row.products == (str(h.output / row.path.name.replace("_rate", "_cal")),)
            assert (row.attempts, row.found_by) == (1, "event")
    assert sorted(calls(h.output)) == sorted(names)


@pytest.mark.slow
def test_a_burst_beyond_the_tracking_bound_is_taken_in_slices(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    staged = [make_rate(staging / f"b{i:03d}_rate.fits", shape=(16, 16), seed=i + 1) for i in range(120)]
    with Harness(tmp_path, max_pending=20, workers=2) as h:
        for path in staged:
            os.replace(path, h.inbox / path.name)
        wait_until(lambda: sum(s == DONE for s in h.states().values()) == 120, 120)
        assert sorted(calls(h.output)) == sorted(p.name for p in staged)
        assert len(h.rows()) == 120
        assert {r.found_by for r in h.rows()} >= {"event", "reconcile"}


def test_backlog_at_start_and_restart_does_not_redo(tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    rate(inbox, "a_rate.fits")
    rate(inbox, "b_rate.fits", seed=2)
    with Harness(tmp_path) as h:
        wait_until(h.settled("a_rate.fits", "b_rate.fits"))
        assert {r.found_by for r in h.rows()} == {"startup"}
    with Harness(tmp_path) as h:
        rate(h.inbox, "c_rate.fits", seed=3)
        wait_until(h.settled("c_rate.fits"))
    assert sorted(calls(h.output)) == ["a_rate.fits", "b_rate.fits", "c_rate.fits"]


def test_new_content_is_processed_again_same_content_is_not(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        path = rate(h.inbox, "a_rate.fits", seed=1)
        wait_until(h.settled("a_rate.fits"))
        os.utime(path, (1e9, 1e9))  # same bytes, an old mtime: not done again
        wait_until(lambda: h.log.named("unchanged"))
        rate(h.inbox, "a_rate.fits", seed=2)  # new bytes: done again, replacing the product
        wait_until(lambda: len(h.rows()) == 2 and h.rows()[-1].state == DONE)
        first, second = h.rows()
        assert first.digest != second.digest and second.overwrite
        assert (h.output / "a_cal.fits").read_bytes() == second.digest.encode()
    assert calls(h.output) == ["a_rate.fits", "a_rate.fits"]


def test_transient_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        rate(h.inbox, "x_transient_rate.fits")
        wait_until(h.settled("x_transient_rate.fits"))
        retries = h.log.named("retry")
        assert [r["attempt"] for r in retries] == [1, 2]
        assert [r["delay"] for r in retries] == [0.1, 0.2]
        assert "No space left on device" in retries[0]["error"]
        assert h.rows()[0].attempts == 3


def test_a_retry_replaces_what_an_interrupted_attempt_published(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        rate(h.inbox, "x_partial_rate.fits")
        wait_until(h.settled("x_partial_rate.fits"))
        assert h.rows()[0].attempts == 2
        assert sorted(p.name for p in h.output.glob("*.fits")) == ["x_partial_cal.fits", "x_partial_i2d.fits"]


def test_transient_errors_are_bounded(tmp_path: Path) -> None:
    with Harness(tmp_path, max_attempts=2) as h:
        rate(h.inbox, "x_transient_rate.fits")
        wait_until(h.settled("x_transient_rate.fits", state=FAILED))
        item = h.rows()[0]
        assert item.error.startswith("gave up after 2 attempts:") and item.quarantine is None
        assert (h.inbox / "x_transient_rate.fits").exists()


def test_a_processing_failure_stays_failed_until_the_file_is_touched(tmp_path: Path) -> None:
    with Harness(tmp_path, quarantine=tmp_path / "q") as h:
        path = rate(h.inbox, "x_broken_rate.fits")
        wait_until(h.settled("x_broken_rate.fits", state=FAILED))
        item = h.rows()[0]
        assert item.error == "x_broken: photom: no conversion factor"
        assert item.quarantine is None and path.exists()
        os.utime(path, (2e9, 2e9))
        wait_until(lambda: calls(h.output).count("x_broken_rate.fits") == 2)
        wait_until(h.settled("x_broken_rate.fits", state=FAILED))
        assert len(h.rows()) == 1


def test_corrupt_files_are_quarantined_beside_good_ones(tmp_path: Path) -> None:
    quarantine = tmp_path / "q"
    staging = tmp_path / "staging"
    staging.mkdir()
    with Harness(tmp_path, quarantine=quarantine) as h:
        good = rate(h.inbox, "good_rate.fits")
        (staging / "junk_rate.fits").write_text("not a FITS file at all" * 200)
        data = good.read_bytes()
        (staging / "cut_rate.fits").write_bytes(data[: len(data) // 2])
        make_rate(staging / "nosci_rate.fits", shape=(16, 16), arrays={"SCI": None})
        make_rate(staging / "nokey_rate.fits", shape=(16, 16), drop=("EXP_TYPE",))
        bad = ["junk_rate.fits", "cut_rate.fits", "nosci_rate.fits", "nokey_rate.fits"]
        for name in bad:
            os.replace(staging / name, h.inbox / name)
        wait_until(h.settled(*bad, state=FAILED))
        wait_until(h.settled("good_rate.fits"))
        assert calls(h.output) == ["good_rate.fits"]
        reasons = {}
        for name in bad:
            assert not (h.inbox / name).exists()
            assert (quarantine / name).exists()
            document = json.loads((quarantine / (name + ".reason.json")).read_text())
            assert document["file"] == str(h.inbox / name)
            reasons[name] = document["reason"]
        assert reasons["junk_rate.fits"] == "not a FITS file"
        assert reasons["cut_rate.fits"].startswith("truncated FITS file")
        assert "SCI" in reasons["nosci_rate.fits"]
        assert "EXP_TYPE" in reasons["nokey_rate.fits"]
        assert {r.path.name: r.quarantine for r in h.rows() if r.state == FAILED} == {
            n: str(quarantine / n) for n in bad}


def _association(folder: Path, name: str, members: list[str]) -> Path:
    products = [{"name": m.replace("_rate.fits", ""), "members": [{"expname": m, "exptype": "science"}]}
                for m in members]
    staging = folder.parent / "staging"
    staging.mkdir(exist_ok=True)
    write_association(staging / name, products)
    os.replace(staging / name, folder / name)
    return folder / name


def test_an_association_waits_for_its_members_which_are_not_run_alone(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        asn = _association(h.inbox, "o1_asn.json", ["m1_rate.fits", "m2_rate.fits"])
        wait_until(h.settled("o1_asn.json", state=WAITING))
        rate(h.inbox, "m1_rate.fits")
        time.sleep(1.0)
        assert h.states()["o1_asn.json"] == WAITING
        rate(h.inbox, "m2_rate.fits", seed=2)
        wait_until(h.settled("o1_asn.json"))
        assert calls(h.output) == ["o1_asn.json"]
        assert h.states() == {"o1_asn.json": DONE}
        assert sorted(Path(p).name for p in h.rows()[0].products) == ["m1_cal.fits", "m2_cal.fits"]
        assert h.rows()[0].kind == ASSOCIATION
        assert {e["file"] for e in h.log.named("claimed")} >= {str(h.inbox / "m1_rate.fits"),
                                                                str(h.inbox / "m2_rate.fits")}
        assert h.log.for_file(asn) == ["waiting", "queued", "running", "done"]
    with Harness(tmp_path, reconcile=0.5) as h:  # after a restart, members of a done association stay claimed
        wait_until(lambda: len(h.log.named("scan")) >= 3)
        assert calls(h.output) == ["o1_asn.json"]


def test_an_association_whose_members_never_come_fails_and_releases_them(tmp_path: Path) -> None:
    with Harness(tmp_path, member_wait=1.0) as h:
        _association(h.inbox, "o2_asn.json", ["m1_rate.fits", "absent_rate.fits"])
        rate(h.inbox, "m1_rate.fits")
        wait_until(h.settled("o2_asn.json", state=FAILED))
        error = h.rows()[0].error
        assert error == "members not complete within 1 s; missing: absent_rate.fits"
        assert (h.inbox / "o2_asn.json").exists()


def test_members_as_singletons_when_asked(tmp_path: Path) -> None:
    with Harness(tmp_path, members_as_singletons=True) as h:
        _association(h.inbox, "o3_asn.json", ["m1_rate.fits"])
        rate(h.inbox, "m1_rate.fits")
        wait_until(h.settled("o3_asn.json", "m1_rate.fits"))
        assert sorted(calls(h.output)) == ["m1_rate.fits", "o3_asn.json"]


def test_an_association_after_its_member_ran_alone_replaces_its_products(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        rate(h.inbox, "m1_rate.fits")
        wait_until(h.settled("m1_rate.fits"))
        _association(h.inbox, "o4_asn.json", ["m1_rate.fits"])
        wait_until(h.settled("o4_asn.json"))
        assert calls(h.output) == ["m1_rate.fits", "o4_asn.json"]
        assert h.rows()[-1].overwrite
        assert [e["replaces_products"] for e in h.log.named("queued") if e["file"].endswith("asn.json")] == [True]


def test_files_missed_by_a_dead_observer_are_found(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        h.daemon._watcher._observer.stop()
        rate(h.inbox, "lost_rate.fits")
        wait_until(h.settled("lost_rate.fits"))
        assert h.log.named("observer-restart")[0]["reason"] == "observer thread is not running"
        assert h.rows()[0].found_by == "reconcile"


def test_files_dropped_while_the_folder_was_replaced_are_found(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        os.rename(h.inbox, tmp_path / "old-in")
        h.inbox.mkdir()
        rate(h.inbox, "after_rate.fits")
        wait_until(h.settled("after_rate.fits"))
        assert any("was removed or replaced" in e["reason"] for e in h.log.named("observer-restart"))


def test_periodic_reconcile_finds_what_events_missed(tmp_path: Path) -> None:
    def deaf(path: Path) -> bool:
        return False

    with Harness(tmp_path, reconcile=0.5) as h:
        h.daemon._watcher._handler._interesting = deaf  # the observer passes nothing on: every event is lost
        rate(h.inbox, "quiet_rate.fits")
        wait_until(h.settled("quiet_rate.fits"))
        assert h.rows()[0].found_by == "reconcile"


def test_graceful_stop_lets_running_items_finish(tmp_path: Path) -> None:
    h = Harness(tmp_path, grace=20.0)
    with h:
        rate(h.inbox, "a_slow_rate.fits")
        wait_until(h.settled("a_slow_rate.fits", state=RUNNING))
    assert h.states() == {"a_slow_rate.fits": DONE}
    assert h.log.named("stopped")[0]["done"] == 1


def test_stop_after_grace_puts_running_items_back_in_the_queue(tmp_path: Path) -> None:
    h = Harness(tmp_path, grace=0.0)
    with h:
        rate(h.inbox, "a_slow_rate.fits")
        wait_until(h.settled("a_slow_rate.fits", state=RUNNING))
    item = h.rows()[0]
    assert (item.state, item.attempts) == (QUEUED, 0)
    assert h.log.for_file(item.path)[-1] == "abandoned"
    time.sleep(1.6)  # let the abandoned thread finish before the next daemon starts
    with Harness(tmp_path) as again:
        wait_until(again.settled("a_slow_rate.fits"))


def test_one_daemon_per_output_folder(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        second = Daemon(h.config, process=fake_process, validate=validate_input,
                        executor=lambda n: ThreadPoolExecutor(n), log=RecordingLog())
        with pytest.raises(DaemonBusy, match="another image2 watch"):
            second.run()


def test_heartbeat_reaches_log_and_ledger(tmp_path: Path) -> None:
    with Harness(tmp_path, heartbeat=0.2) as h:
        wait_until(lambda: len(h.log.named("heartbeat")) >= 2)
        ledger = Ledger.in_folder(h.output, readonly=True)
        info = ledger.daemon()
        ledger.close()
        assert info.pid == os.getpid() and info.beat_at > info.started_at and info.stopped_at is None
    ledger = Ledger.in_folder(h.output, readonly=True)
    assert ledger.daemon().stopped_at is not None
    ledger.close()


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
    from watchdog.events import FileClosedEvent, FileMovedEvent

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
    import logging

    from image2.watch.observer import Watcher

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


def test_watch_command_builds_its_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from image2.cli.main import cli
    from image2.watch import daemon as daemon_module

    seen = {}

    class Recorder:
        def __init__(self, config: WatchConfig, **kwargs: Any) -> None:
            seen["config"] = config

        def run(self) -> int:
            return 0

    monkeypatch.setattr(daemon_module, "Daemon", Recorder)
    runner = CliRunner()
    result = runner.invoke(cli, ["watch", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "out"),
                                 "--poll", "--recursive", "--workers", "3", "--settle", "4", "--pattern", "*.fits",
                                 "--refs", str(tmp_path / "refs"), "--quarantine", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.roots == (tmp_path / "a", tmp_path / "b")
    assert (config.poll, config.recursive, config.workers, config.settle, config.patterns) == (
        1.0, True, 3, 4.0, ("*.fits",))
    assert config.options.reference_dirs == (tmp_path / "refs",)
    assert config.options.output_dir == tmp_path / "out" and config.quarantine == tmp_path / "q"
    result = runner.invoke(cli, ["watch", str(tmp_path / "a"), "-o", str(tmp_path / "out"), "--poll=2.5"])
    assert result.exit_code == 0, result.output
    assert seen["config"].poll == 2.5 and seen["config"].patterns == ("*_rate.fits", "*_rateints.fits", "*_asn.json")
    result = runner.invoke(cli, ["watch", str(tmp_path / "a"), "-o", str(tmp_path / "out"), "--step", "nonsense"])
    assert result.exit_code == 2
