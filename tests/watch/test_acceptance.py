"""Acceptance: ``image2 watch`` as a real subprocess, real files in temporary folders, the real pipeline.

No reference files: steps that need one skip, assign_wcs uses the FITS WCS keywords of the
synthetic exposures, and every input yields a ``_cal`` and an ``_i2d`` product.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from image2.watch.ledger import DONE, FAILED, QUEUED, RUNNING, Item, Ledger
from image2.synthetic.exposures import make_rate, write_association

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

OBSERVER_SWITCH = '''
import os
import sys
from pathlib import Path

from image2.watch import observer

_switch = Path(os.environ["IMAGE2_TEST_OBSERVER_OFF"])
_dispatch = observer.HintHandler.dispatch


def _dispatch_unless_off(self, event):
    if not _switch.exists():
        _dispatch(self, event)


if __name__ == "__main__":
    observer.HintHandler.dispatch = _dispatch_unless_off
    from image2.cli.main import main

    sys.argv[0] = "image2"
    main()
'''
"""Runs the real command with the observer's deliveries switched off while a flag file exists."""


def wait_until(condition: Callable[[], object], timeout: float = 180.0, what: str = "condition") -> None:
    """Poll ``condition`` until true; fail the test if it never becomes true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not met in time")


WITHOUT_REFERENCES = tuple(arg for reftype in ("distortion", "filteroffset", "flat", "photom", "area")
                           for arg in ("--ref", f"{reftype}=N/A"))
"""These tests are about the daemon, not calibration: every reference is declined on purpose."""


class WatchProcess:
    """``image2 --log-format json watch IN -o OUT ...`` running as a subprocess, its log in a file."""

    def __init__(self, tmp: Path, *args: str, script: Path | None = None, env: dict[str, str] | None = None,
                 inbox: Path | None = None, declined: tuple[str, ...] = WITHOUT_REFERENCES,
                 wrap: tuple[str, ...] = ()) -> None:
        self.inbox = inbox or tmp / "in"
        self.output = tmp / "out"
        self.inbox.mkdir(exist_ok=True)
        runs = sorted(tmp.glob("watch-*.log"))
        self.log_path = tmp / f"watch-{len(runs)}.log"
        entry = [str(script)] if script else ["-m", "image2"]
        command = [*wrap, sys.executable, *entry, "--log-format", "json", "watch", str(self.inbox), "-o",
                   str(self.output), "--heartbeat", "1", *declined, *args]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
        wait_until(lambda: self.events("scan") or self.process.poll() is not None, 60, "daemon start")
        assert self.process.poll() is None, self.log_path.read_text()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                found.append(event)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)
        self._log.close()


def ledger_rows(output: Path) -> list[Item]:
    ledger = Ledger.in_folder(output, readonly=True)
    try:
        return [ledger.get(r[0]) for r in ledger._db.execute("SELECT id FROM items ORDER BY id")]
    finally:
        ledger.close()


def count_in(output: Path, state: str) -> int:
    if not (output / "image2-watch.sqlite").exists():
        return 0
    ledger = Ledger.in_folder(output, readonly=True)
    try:
        return ledger.counts()[state]
    finally:
        ledger.close()


def exposures(folder: Path, count: int, shape: tuple[int, int] = (16, 16), prefix: str = "jw") -> list[Path]:
    """Make ``count`` small distinct rate files in ``folder`` (a staging folder outside the watched one)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [make_rate(folder / f"{prefix}{i:04d}_rate.fits", shape=shape, seed=i + 1) for i in range(count)]


def products(output: Path) -> set[str]:
    return {p.name for p in output.iterdir() if p.name.endswith(".fits") and not p.name.startswith(".")}


def expected_products(names: list[str], kinds: tuple[str, ...] = ("cal", "i2d")) -> set[str]:
    return {f"{n.removesuffix('_rate.fits')}_{kind}.fits" for n in names for kind in kinds}


def assert_exactly_once(output: Path, names: list[str], watched: Path, kinds: tuple[str, ...] = ("cal", "i2d")) -> None:
    """Ledger and products agree: one done row per input, its products on disk, nothing else there."""
    rows = ledger_rows(output)
    assert sorted(r.path.name for r in rows) == sorted(names)
    assert {r.state for r in rows} == {DONE}
    for row in rows:
        assert row.path == watched / row.path.name
        assert row.digest == hashlib.sha256(row.path.read_bytes()).hexdigest()
        root = row.path.name.removesuffix("_rate.fits")
        assert sorted(Path(p).name for p in row.products) == [f"{root}_{kind}.fits" for kind in kinds]
    assert products(output) == expected_products(names, kinds)


def drop_all(staged: list[Path], inbox: Path) -> None:
    """Drop files at once: half renamed in (complete at once), half copied (written in place)."""
    for number, path in enumerate(staged):
        if number % 2:
            shutil.copyfile(path, inbox / path.name)
        else:
            os.replace(path, inbox / path.name)


@pytest.mark.parametrize("mode", [[], ["--poll=0.5"]], ids=["native", "polling"])
def test_burst_of_200_is_processed_exactly_once(tmp_path: Path, mode: list[str]) -> None:
    staged = exposures(tmp_path / "staging", 200)
    names = [p.name for p in staged]
    daemon = WatchProcess(tmp_path, "--workers", "2", "--settle", "1", "--step", "resample.skip=true", *mode)
    drop_all(staged, daemon.inbox)
    wait_until(lambda: count_in(daemon.output, DONE) == 200, 600, "200 done")
    assert daemon.stop() == 0
    assert_exactly_once(daemon.output, names, daemon.inbox, kinds=("cal",))
    assert sorted(e["file"] for e in daemon.events("running")) == sorted(str(daemon.inbox / n) for n in names)
    assert len(daemon.events("done")) == 200
    assert daemon.events("stopped")[0]["done"] == 200


def _slow_write(source: bytes, target: Path, chunks: int, pause: float) -> float:
    """Write ``source`` to ``target`` in ``chunks`` pieces ``pause`` seconds apart; return when the last
    piece was written (just before the close)."""
    step = -(-len(source) // chunks)
    with open(target, "wb") as handle:
        for start in range(0, len(source), step):
            time.sleep(pause)
            handle.write(source[start:start + step])
            handle.flush()
            os.fsync(handle.fileno())
        complete = time.time()
    return complete


def test_slow_part_renamed_and_old_mtime_writers(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    slow, part, rsync, old = exposures(staging, 4, shape=(64, 64))
    daemon = WatchProcess(tmp_path, "--settle", "2")
    inbox = daemon.inbox
    closed = {}

    def write_slowly() -> None:
        closed["slow"] = _slow_write(slow.read_bytes(), inbox / slow.name, chunks=10, pause=0.4)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    _slow_write(part.read_bytes(), inbox / (part.name + ".part"), chunks=4, pause=0.3)
    os.rename(inbox / (part.name + ".part"), inbox / part.name)
    shutil.copyfile(rsync, inbox / f".{rsync.name}.Xq81Ab")
    os.rename(inbox / f".{rsync.name}.Xq81Ab", inbox / rsync.name)
    os.utime(old, (1_000_000_000, 1_000_000_000))
    subprocess.run(["cp", "-p", str(old), str(inbox / old.name)], check=True)
    writer.join()
    names = [slow.name, part.name, rsync.name, old.name]
    wait_until(lambda: count_in(daemon.output, DONE) == 4, what="4 done")
    time.sleep(2.5)  # a late second take would show now
    assert daemon.stop() == 0
    assert_exactly_once(daemon.output, names, inbox)
    rows = {r.path.name: r for r in ledger_rows(daemon.output)}
    assert rows[slow.name].size == slow.stat().st_size
    assert rows[slow.name].started_at >= closed["slow"]
    assert rows[old.name].mtime_ns == 1_000_000_000 * 10**9
    assert len(daemon.events("running")) == 4


def test_kill_9_mid_run_then_restart_ends_with_each_file_done_once(tmp_path: Path) -> None:
    staged = exposures(tmp_path / "staging", 30, shape=(256, 256))
    names = [p.name for p in staged]
    first = WatchProcess(tmp_path, "--workers", "2", "--settle", "0.5")
    drop_all(staged, first.inbox)
    wait_until(lambda: count_in(first.output, DONE) >= 5 and count_in(first.output, RUNNING) >= 1, what="mid-run")
    first.kill()
    assert count_in(first.output, DONE) < 30
    stranded = count_in(first.output, RUNNING)
    assert stranded >= 1
    second = WatchProcess(tmp_path, "--workers", "2", "--settle", "0.5")
    wait_until(lambda: count_in(second.output, DONE) == 30, what="30 done")
    assert second.stop() == 0
    assert_exactly_once(second.output, names, second.inbox)
    assert len(second.events("requeued")) == stranded
    for name in products(second.output):
        with fits.open(second.output / name) as hdul:
            hdul.verify("exception")
            assert hdul["SCI"].data.shape[0] > 0


def test_corrupt_files_are_quarantined_while_good_files_complete(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    good = exposures(staging, 3)
    whole = good[0].read_bytes()
    (staging / "truncated_rate.fits").write_bytes(whole[: len(whole) - 4000])
    (staging / "text_rate.fits").write_text("SIMPLE? no, this is not FITS\n" * 300)
    make_rate(staging / "nosci_rate.fits", shape=(16, 16), arrays={"SCI": None})
    make_rate(staging / "nokeys_rate.fits", shape=(16, 16), drop=("INSTRUME", "EXP_TYPE"))
    bad = ["truncated_rate.fits", "text_rate.fits", "nosci_rate.fits", "nokeys_rate.fits"]
    quarantine = tmp_path / "quarantine"
    daemon = WatchProcess(tmp_path, "--settle", "1", "--quarantine", str(quarantine))
    for path in staging.iterdir():
        os.replace(path, daemon.inbox / path.name)
    wait_until(lambda: count_in(daemon.output, DONE) == 3 and count_in(daemon.output, FAILED) == 4, what="7 ends")
    assert daemon.stop() == 0
    rows = {r.path.name: r for r in ledger_rows(daemon.output)}
    assert products(daemon.output) == expected_products([p.name for p in good])
    reasons = {}
    for name in bad:
        assert not (daemon.inbox / name).exists()
        assert rows[name].quarantine == str(quarantine / name)
        document = json.loads((quarantine / f"{name}.reason.json").read_text())
        assert document["reason"] == rows[name].error
        reasons[name] = document["reason"]
    assert reasons["truncated_rate.fits"].startswith("truncated or corrupt FITS file")
    assert reasons["text_rate.fits"] == "not a readable FITS file (no SIMPLE card)"
    assert "SCI" in reasons["nosci_rate.fits"]
    assert "INSTRUME" in reasons["nokeys_rate.fits"] or "EXP_TYPE" in reasons["nokeys_rate.fits"]
    assert {e["file"] for e in daemon.events("quarantined")} == {str(daemon.inbox / n) for n in bad}
    assert {e["file"] for e in daemon.events("failed")} == {str(daemon.inbox / n) for n in bad}


def test_files_dropped_while_the_observer_is_off_are_caught_by_reconcile(tmp_path: Path) -> None:
    script = tmp_path / "observer_switch.py"
    script.write_text(OBSERVER_SWITCH)
    switch = tmp_path / "observer-off"
    daemon = WatchProcess(tmp_path, "--settle", "0.5", "--reconcile", "3", script=script,
                          env={"IMAGE2_TEST_OBSERVER_OFF": str(switch)})
    seen = exposures(tmp_path / "staging", 1, prefix="seen")
    os.replace(seen[0], daemon.inbox / seen[0].name)
    wait_until(lambda: count_in(daemon.output, DONE) == 1, what="first done")
    switch.touch()
    lost = exposures(tmp_path / "staging", 5, prefix="lost")
    drop_all(lost, daemon.inbox)
    wait_until(lambda: count_in(daemon.output, DONE) == 6, what="lost files done")
    assert daemon.stop() == 0
    found_by = {r.path.name: r.found_by for r in ledger_rows(daemon.output)}
    assert found_by == {seen[0].name: "event", **{p.name: "reconcile" for p in lost}}
    assert_exactly_once(daemon.output, list(found_by), daemon.inbox)


def test_sigterm_exits_0_with_the_ledger_consistent(tmp_path: Path) -> None:
    staged = exposures(tmp_path / "staging", 16, shape=(512, 512))
    names = [p.name for p in staged]
    daemon = WatchProcess(tmp_path, "--workers", "2", "--settle", "0.5", "--grace", "60")
    drop_all(staged, daemon.inbox)
    wait_until(lambda: count_in(daemon.output, RUNNING) >= 1, what="running")
    assert daemon.stop(signal.SIGTERM) == 0
    rows = ledger_rows(daemon.output)
    assert RUNNING not in {r.state for r in rows}
    done = [r for r in rows if r.state == DONE]
    assert done and all(r.state in (DONE, QUEUED) for r in rows)
    assert products(daemon.output) == expected_products([r.path.name for r in done])
    assert daemon.events("stopping")[0]["reason"] == "SIGTERM"
    assert daemon.events("abandoned") == []
    again = WatchProcess(tmp_path, "--workers", "2", "--settle", "0.5")
    wait_until(lambda: count_in(again.output, DONE) == 16, what="16 done")
    assert again.stop(signal.SIGINT) == 0
    assert_exactly_once(again.output, names, again.inbox)


def test_an_association_dropped_before_its_members_runs_once_when_they_are_complete(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    science, background = exposures(staging, 2, shape=(64, 64), prefix="member")
    write_association(staging / "jw01234-o001_image2_asn.json",
                      [{"name": "jw01234001001_01101_00001_nrcb1",
                        "members": [{"expname": science.name, "exptype": "science"},
                                    {"expname": background.name, "exptype": "background"}]}])
    daemon = WatchProcess(tmp_path, "--settle", "1", "--reconcile", "1")
    os.replace(staging / "jw01234-o001_image2_asn.json", daemon.inbox / "jw01234-o001_image2_asn.json")
    wait_until(lambda: count_in(daemon.output, "waiting") == 1, what="association waiting")
    _slow_write(science.read_bytes(), daemon.inbox / science.name, chunks=3, pause=0.4)
    shutil.copyfile(background, daemon.inbox / background.name)
    wait_until(lambda: count_in(daemon.output, DONE) == 1, what="association done")
    time.sleep(3)  # members seen again by a rescan must stay claimed
    assert daemon.stop() == 0
    rows = ledger_rows(daemon.output)
    assert [(r.path.name, r.kind, r.state) for r in rows] == [("jw01234-o001_image2_asn.json", "association", DONE)]
    assert products(daemon.output) == {"jw01234001001_01101_00001_nrcb1_cal.fits",
                                       "jw01234001001_01101_00001_nrcb1_i2d.fits"}
    with fits.open(daemon.output / "jw01234001001_01101_00001_nrcb1_cal.fits") as hdul:
        assert hdul[0].header["ASNTABLE"] == "jw01234-o001_image2_asn.json"
    assert {e["file"] for e in daemon.events("claimed")} == {str(daemon.inbox / science.name),
                                                               str(daemon.inbox / background.name)}
