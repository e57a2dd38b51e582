"""The daemon under hostile conditions, with real files and real processes: the daemon killed again and
again with files in flight, an input that kills its worker, a writer that closes the file between HDUs,
and a full output disk (a small filesystem the test mounts in a namespace of its own)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from image2.run.executors import process_pool
from image2.run.options import RunOptions
from image2.run.process import validate_input
from image2.watch.daemon import Daemon, WatchConfig
from image2.watch.ledger import DONE, FAILED, RUNNING, Item, Ledger
from tests.watch.doubles import RecordingLog, killed_by_poison, rate
from tests.watch.test_acceptance import (
    WatchProcess,
    assert_exactly_once,
    count_in,
    drop_all,
    exposures,
    ledger_rows,
    products,
    wait_until,
)


def _rows(ledger_path: Path) -> list[Item]:
    ledger = Ledger(ledger_path, readonly=True)
    try:
        return [ledger.get(r[0]) for r in ledger._db.execute("SELECT id FROM items ORDER BY id")]
    finally:
        ledger.close()


def _staging(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


@pytest.mark.slow
def test_repeated_kill_9_with_files_in_flight_loses_nothing_and_never_gives_up(tmp_path: Path) -> None:
    staged = exposures(tmp_path / "staging", 24, shape=(512, 512))
    names = [p.name for p in staged]
    args = ("--workers", "2", "--settle", "0.5", "--max-attempts", "2")
    daemon = WatchProcess(tmp_path, *args)
    drop_all(staged, daemon.inbox)
    kills = 0
    for _ in range(6):
        wait_until(lambda: count_in(daemon.output, RUNNING) >= 1 or count_in(daemon.output, DONE) == 24,
                   what="a run in flight")
        if count_in(daemon.output, DONE) == 24:
            break
        time.sleep(0.8)  # let the workers write
        daemon.kill()
        kills += 1
        daemon = WatchProcess(tmp_path, *args)
        assert _staging(daemon.output) == []  # the previous run's staging is gone at once
    wait_until(lambda: count_in(daemon.output, DONE) == 24, 600, "24 done")
    assert daemon.stop() == 0
    assert kills >= 3
    assert_exactly_once(daemon.output, names, daemon.inbox)
    rows = ledger_rows(daemon.output)
    assert all(r.error is None and r.deaths == 0 for r in rows)
    assert max(r.attempts for r in rows) == 1  # a daemon's death is nobody's attempt
    assert _staging(daemon.output) == []


class _InProcess:
    """A daemon on a thread with real worker processes (spawn) running ``killed_by_poison``."""

    def __init__(self, tmp: Path, **settings: object) -> None:
        self.inbox, self.output, self.quarantine = tmp / "in", tmp / "out", tmp / "q"
        self.inbox.mkdir()
        self.output.mkdir()
        config = WatchConfig(roots=[self.inbox], output_dir=self.output, options=RunOptions(output_dir=self.output),
                             quarantine=self.quarantine, settle=0.3, heartbeat=1.0, grace=10.0, retry_delay=0.1,
                             **settings)
        self.log = RecordingLog()
        self.daemon = Daemon(config, process=killed_by_poison, validate=validate_input, executor=process_pool,
                             log=self.log)
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def __enter__(self) -> _InProcess:
        self.thread.start()
        wait_until(lambda: self.log.named("scan"), 60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.request_stop("test")
        self.thread.join(60)
        assert not self.thread.is_alive()

    def rows(self) -> dict[str, Item]:
        return {r.path.name: r for r in _rows(self.output / "image2-watch.sqlite")}


@pytest.mark.slow  # each death costs a new pool of spawned workers
def test_an_input_that_kills_its_worker_is_quarantined_as_a_poison_pill_and_the_others_are_done(
        tmp_path: Path) -> None:
    good = [f"g{i}_rate.fits" for i in range(4)]
    with _InProcess(tmp_path, workers=2) as h:
        poison = rate(h.inbox, "x_poison_rate.fits", seed=9)
        for number, name in enumerate(good):
            rate(h.inbox, name, seed=number + 1)
        wait_until(lambda: {r.state for r in h.rows().values()} <= {DONE, FAILED} and len(h.rows()) == 5, 180)
        rows = h.rows()
    assert {n: r.state for n, r in rows.items()} == {**{n: DONE for n in good}, poison.name: FAILED}
    pill = rows[poison.name]
    assert pill.deaths == 2 and pill.attempts == 0
    assert pill.error == ("its worker process died (killed by SIGKILL): its worker died 2 times while it ran alone "
                          "(a poison pill)")
    assert pill.quarantine == str(h.quarantine / poison.name) and not poison.exists()
    assert (h.quarantine / poison.name).exists()
    assert all(r.deaths == 0 and r.error is None for n, r in rows.items() if n in good)
    assert {e["file"] for e in h.log.named("worker-died")} <= {str(h.inbox / n) for n in [*good, poison.name]}
    assert h.log.named("internal-error") == []
    assert sorted(p.name for p in h.output.glob("*_cal.fits")) == sorted(n.replace("_rate", "_cal") for n in good)


def _append_one_hdu_at_a_time(source: Path, target: Path, pause: float) -> float:
    """Write ``source`` to ``target`` as a writer that opens, appends one HDU and closes (``fits.append``),
    ``pause`` seconds apart; return when the last HDU was written."""
    with fits.open(source) as hdul:
        hdus = [(hdu.data, hdu.header) for hdu in hdul]
    fits.PrimaryHDU(hdus[0][0], hdus[0][1]).writeto(target)
    for data, header in hdus[1:]:
        time.sleep(pause)
        fits.append(target, data, header)
    return time.time()


@pytest.mark.slow
def test_a_writer_closing_the_file_between_hdus_gives_one_run_on_the_complete_file(tmp_path: Path) -> None:
    [source] = exposures(tmp_path / "staging", 1, shape=(64, 64))
    daemon = WatchProcess(tmp_path, "--settle", "3")
    target = daemon.inbox / source.name
    finished = _append_one_hdu_at_a_time(source, target, pause=1.0)
    wait_until(lambda: count_in(daemon.output, DONE) + count_in(daemon.output, FAILED) >= 1, what="one end")
    time.sleep(2)  # a second take would show now
    assert daemon.stop() == 0
    [row] = ledger_rows(daemon.output)
    assert (row.state, row.size, row.attempts) == (DONE, target.stat().st_size, 1)
    assert row.started_at >= finished
    assert len(daemon.events("running")) == 1 and daemon.events("failed") == []
    with fits.open(target) as written, fits.open(daemon.output / source.name.replace("_rate", "_cal")) as cal:
        assert written[-1].name == "ASDF"
        np.testing.assert_array_equal(np.isfinite(cal["SCI"].data), np.isfinite(written["SCI"].data))


def _mount_namespaces() -> bool:
    """Whether this user may mount a tmpfs in a user and mount namespace of its own."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


def _rows_seen_through(ledger: Path, copies: Path) -> list[Item] | None:
    """The rows of ``ledger`` (on the daemon's tmpfs, seen through /proc/PID/root, which SQLite would
    resolve to this namespace's path): read from a copy of its files; None if the copy caught a write midway."""
    copies.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        source = ledger.with_name(ledger.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(source, copies / source.name)
    try:
        return _rows(copies / ledger.name)
    except (sqlite3.DatabaseError, FileNotFoundError):
        return None


def _done_seen_through(ledger: Path, copies: Path) -> int:
    rows = _rows_seen_through(ledger, copies)
    return -1 if rows is None else sum(r.state == DONE for r in rows)


def _fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` up to the last byte with one file; return it."""
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        block = b"\0" * 65536
        while True:
            try:
                handle.write(block)
                handle.flush()
            except OSError:
                break
    for size in (4096, 512, 1):
        with open(filler, "ab", buffering=0) as handle:
            while True:
                try:
                    handle.write(b"\0" * size)
                except OSError:
                    break
    return filler


@pytest.mark.slow
@pytest.mark.skipif(not _mount_namespaces(), reason="cannot mount a tmpfs in a namespace of our own here")
@pytest.mark.parametrize("ledger_apart", [False, True], ids=["ledger-on-the-full-disk", "ledger-apart"])
def test_a_full_output_disk_is_said_once_and_work_resumes_when_space_is_freed(tmp_path: Path,
                                                                               ledger_apart: bool) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mount = ("unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
             'mount -t tmpfs -o size=8m tmpfs "$0" && exec "$@"', str(out))
    first = exposures(tmp_path / "staging", 2, prefix="early")
    later = exposures(tmp_path / "staging", 5, prefix="late")
    apart = ("--ledger", str(tmp_path / "state" / "ledger.sqlite")) if ledger_apart else ()
    daemon = WatchProcess(tmp_path, "--settle", "0.5", "--workers", "1", "--step", "resample.skip=true", *apart,
                          wrap=mount)
    view = Path(f"/proc/{daemon.process.pid}/root") / out.relative_to("/")  # the daemon's tmpfs, seen from here
    ledger = tmp_path / "state" / "ledger.sqlite" if ledger_apart else view / "image2-watch.sqlite"
    drop_all(first, daemon.inbox)
    copies = tmp_path / "copies"
    wait_until(lambda: _done_seen_through(ledger, copies) == 2, what="2 done")
    filler = _fill(view)
    before = len(daemon.events())
    drop_all(later, daemon.inbox)
    time.sleep(20)
    during = daemon.events()[before:]
    warnings = [e for e in during if e.get("level") in ("warning", "error") and e.get("logger") == "image2.watch"]
    assert daemon.events("internal-error") == [] and "Traceback" not in daemon.log_path.read_text()
    assert 1 <= len(warnings) <= 4, warnings  # said once per condition, not ~10 times a second
    said = {e["event"] for e in warnings}
    assert said == {"runs-paused"} if ledger_apart else said <= {"ledger-unwritable", "runs-paused"} and said
    filler.unlink()
    wait_until(lambda: _done_seen_through(ledger, copies) == 7, 180, "7 done after space was freed")
    names = [p.name for p in [*first, *later]]
    rows = _rows_seen_through(ledger, copies)
    assert sorted(r.path.name for r in rows) == sorted(names) and {r.state for r in rows} == {DONE}
    assert products(view) == {n.replace("_rate", "_cal") for n in names}
    assert _staging(view) == []
    ending = {"ledger-unwritable": "ledger-writable", "runs-paused": "runs-resumed"}
    assert {ending[event] for event in said} <= {e["event"] for e in daemon.events()}  # each said to be over
    assert daemon.stop() == 0
