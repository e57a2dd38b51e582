"""The daemon's status page: rendered from the ledger, served read-only, and seen in a real browser.

The browser test drives headless Chromium (``chromium`` from the system packages; .ci/run
installs it) against ``image2 watch --http`` while the daemon works through a burst, then
against ``image2 status --http`` once it has stopped. Without a browser it is skipped, saying so.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from image2.synthetic.exposures import make_rate
from image2.watch.identity import FileStat
from image2.watch.ledger import DONE, EXPOSURE, FAILED, QUEUED, STATES, Ledger
from image2.watch.status_page import (
    AddressError,
    StatusServer,
    latency,
    page_html,
    parse_address,
    read_page,
    serving,
)

REPO = Path(__file__).resolve().parents[2]
DECLINED = [arg for reftype in ("flat", "photom", "area", "distortion", "filteroffset")
            for arg in ("--ref", f"{reftype}=N/A")]
"""Run without reference files (assign_wcs falls back on the FITS WCS keywords)."""


class _Page(html.parser.HTMLParser):
    """What a page shows: the text of each element with an id, and the images' sources."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.images: list[str] = []
        self._open: list[tuple[str | None, list[str]]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes.get("src") or "")
        if tag not in ("img", "meta", "br", "link"):
            self._open.append((attributes.get("id"), []))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("img", "meta", "br", "link") or not self._open:
            return
        ident, parts = self._open.pop()
        text = " ".join("".join(parts).split())
        if ident:
            self.by_id[ident] = text
        if self._open:
            self._open[-1][1].append(" " + text + " ")

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1].append(data)

    def counts(self) -> dict[str, int]:
        return {state: int(self.by_id[f"count-{state}"]) for state in STATES}


def _fill(folder: Path, now: float) -> None:
    """A ledger with done, failed, running and queued rows; done items list a quick-look among their products."""
    folder.mkdir(parents=True, exist_ok=True)
    ledger = Ledger.in_folder(folder)
    ledger.register_daemon(os.getpid(), ["/in"], 2, "0.1", now=now - 600)
    stat = FileStat(10, 20, 30)
    for number in range(3):
        item = ledger.add(Path(f"/in/d{number}_rate.fits"), EXPOSURE, stat, f"h{number}", QUEUED, "event",
                          now=now - 100 - number)
        ledger.start(item.id, now=now - 90 + 10 * number)
        png = folder / f"d{number}_i2d.png"
        png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes([number]))
        ledger.finish(item.id, [str(folder / f"d{number}_cal.fits"), str(png)], now=now - 50 + 10 * number)
    bad = ledger.add(Path("/in/bad_rate.fits"), EXPOSURE, stat, "hb", QUEUED, "event", now=now - 50)
    ledger.fail(bad.id, "not a readable FITS file (<script>)", quarantine="/q/bad_rate.fits", now=now - 40)
    ledger.start(ledger.add(Path("/in/r_rate.fits"), EXPOSURE, stat, "hr", QUEUED, "event", now=now - 20).id,
                 now=now - 10)
    ledger.add(Path("/in/q_rate.fits"), EXPOSURE, stat, "hq", QUEUED, "event", now=now - 8)
    ledger.close()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_addresses() -> None:
    assert parse_address("8765") == ("127.0.0.1", 8765)
    assert parse_address(":8765") == ("127.0.0.1", 8765)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:8765") == ("::1", 8765)
    for bad in ("localhost", "host:port", "1:99999"):
        with pytest.raises(AddressError, match="HOST:PORT"):
            parse_address(bad)


def test_the_page_shows_the_ledger(tmp_path: Path) -> None:
    now = time.time()
    _fill(tmp_path, now)
    page = _Page(page_html(read_page(tmp_path), tmp_path, now))
    assert page.counts() == {"waiting": 0, "queued": 1, "running": 1, "done": 3, "failed": 1}
    assert "running (pid" in page.by_id["daemon"]
    assert "last minute 3 3.0/min" in page.by_id["throughput"]
    # arrival to done: 50, 61, 72 s; queued: 10, 21, 32 s (seen = queued here); running: 40 s each
    assert "arrival to done 61.0 s 72.0 s" in page.by_id["latency"]
    assert "in the queue 21.0 s 32.0 s" in page.by_id["latency"] and "running 40.0 s 40.0 s" in page.by_id["latency"]
    assert "/in/r_rate.fits attempt 1" in page.by_id["running"]
    assert "/in/q_rate.fits queued 8 s ago" in page.by_id["queue"]
    assert "/in/bad_rate.fits not a readable FITS file (<script>)" in page.by_id["failures"]
    assert "quarantined as /q/bad_rate.fits" in page.by_id["failures"]
    assert page.images == [f"/quicklook/{n}/d{n - 1}_i2d.png" for n in (3, 2, 1)]  # newest first
    assert "<script>" not in page_html(read_page(tmp_path), tmp_path, now)
    assert "No ledger here yet" in page_html(read_page(tmp_path / "empty"), tmp_path / "empty")


def test_latency_is_none_before_anything_is_done() -> None:
    assert latency([]) is None


def test_the_server_serves_the_page_json_and_only_listed_quicklooks(tmp_path: Path) -> None:
    _fill(tmp_path, time.time())
    (tmp_path / "secret.png").write_bytes(b"not yours")
    with serving(tmp_path, "127.0.0.1:0") as server:
        status, kind, body = _get(server.url)
        assert status == 200 and kind.startswith("text/html") and b"count-done" in body
        status, kind, body = _get(server.url + "status.json")
        assert status == 200 and json.loads(body)["counts"]["done"] == 3
        status, kind, body = _get(server.url + "quicklook/2/d1_i2d.png")
        assert (status, kind, body) == (200, "image/png", (tmp_path / "d1_i2d.png").read_bytes())
        for refused in ("quicklook/2/secret.png", "quicklook/2/d0_i2d.png", "quicklook/4/bad_rate.png",
                        "quicklook/99/d1_i2d.png", "quicklook/2/..%2Fsecret.png", "image2-watch.sqlite"):
            assert _get(server.url + refused)[0] == 404, refused
    with pytest.raises(OSError):
        _get(server.url)


def test_two_servers_cannot_share_an_address(tmp_path: Path) -> None:
    with serving(tmp_path, "127.0.0.1:0") as server:
        port = server.url.rsplit(":", 1)[1].strip("/")
        with pytest.raises(AddressError, match="cannot listen"):
            StatusServer(tmp_path, ("127.0.0.1", int(port)))


# -- in a real browser ----------------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"no headless browser installed ({', '.join(BROWSERS)}); .ci/run installs Debian's chromium")


def _headless(browser: str, *args: str) -> str:
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--hide-scrollbars", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _wait(condition: Callable[[], Any], what: str, timeout: float = 240.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def _json_events(log: Path, name: str) -> list[dict[str, Any]]:
    events = []
    for line in log.read_text(errors="replace").splitlines():
        with_name = line.startswith("{") and f'"{name}"' in line
        if with_name:
            event = json.loads(line)
            if event.get("event") == name:
                events.append(event)
    return events


def _ledger_counts(output: Path) -> dict[str, int]:
    if not (output / "image2-watch.sqlite").exists():
        return {state: 0 for state in STATES}
    ledger = Ledger.in_folder(output, readonly=True)
    try:
        return ledger.counts()
    except sqlite3.OperationalError:  # created, but its tables not yet
        return {state: 0 for state in STATES}
    finally:
        ledger.close()


@pytest.mark.slow
def test_the_page_in_a_browser_while_a_burst_is_processed(tmp_path: Path, tmp_path_factory) -> None:
    browser = _browser()
    inbox, output, staging, log = tmp_path / "in", tmp_path / "out", tmp_path / "staging", tmp_path / "watch.log"
    inbox.mkdir()
    staging.mkdir()
    staged = [make_rate(staging / f"jw{n:04d}_rate.fits", shape=(256, 256), seed=n + 1) for n in range(10)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log, "wb") as sink:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "image2", "--log-format", "json", "watch", str(inbox), "-o", str(output),
             "--http", "127.0.0.1:0", "--preview", "--workers", "2", "--settle", "0.5", *DECLINED],
            cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            url = _wait(lambda: (_json_events(log, "status-page") or [{}])[0].get("url") or daemon.poll() is not None,
                        "status page address")
            assert daemon.poll() is None, log.read_text()
            for path in staged:
                os.replace(path, inbox / path.name)
            (inbox / "jw9999_rate.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 100)
            _wait(lambda: _ledger_counts(output)[DONE] >= 1, "a first item done")

            during = _Page(_headless(browser, "--dump-dom", url))
            after = _ledger_counts(output)
            seen = during.counts()
            assert 1 <= seen[DONE] <= after[DONE] and sum(seen.values()) <= 11
            assert seen[DONE] + seen[FAILED] <= after[DONE] + after[FAILED]
            assert "running (pid" in during.by_id["daemon"]

            _wait(lambda: _ledger_counts(output)[DONE] == 10 and _ledger_counts(output)[FAILED] == 1, "all settled")
            done = _Page(_headless(browser, "--dump-dom", url))
            assert done.counts() == {"waiting": 0, "queued": 0, "running": 0, "done": 10, "failed": 1}
            assert "jw9999_rate.fits" in done.by_id["failures"] and "FITS" in done.by_id["failures"]
            assert "arrival to done" in done.by_id["latency"] and "last minute" in done.by_id["throughput"]
            assert len(done.images) == 6 and all(re.fullmatch(r"/quicklook/\d+/jw\d{4}_i2d\.png", s) for s in done.images)
            for source in done.images:
                status, kind, body = _get(url.rstrip("/") + source)
                assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"

            artifacts = tmp_path_factory.getbasetemp() / "artifacts"
            artifacts.mkdir(exist_ok=True)
            shot = artifacts / "status-page.png"
            _headless(browser, f"--screenshot={shot}", "--window-size=1280,1800", url)
            picture = Image.open(shot)
            assert picture.size == (1280, 1800) and len(picture.convert("RGB").getcolors(1 << 20) or ()) > 1000
            print(f"status page screenshot: {shot}")
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(60) == 0

    # the same page from the ledger of the stopped daemon
    server = subprocess.Popen([sys.executable, "-m", "image2", "status", str(output), "--http", "127.0.0.1:0"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = server.stdout.readline()
        stopped_url = re.search(r"http://\S+", line).group(0)
        stopped = _Page(_headless(browser, "--dump-dom", stopped_url))
        assert stopped.counts()[DONE] == 10 and "stopped at" in stopped.by_id["daemon"]
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0
