"""A small read-only web page of what a watch daemon's ledger says, refreshing by itself.

``image2 watch --http ADDR`` serves it beside the running daemon; ``image2 status OUTPUT
--http ADDR`` serves it from the ledger of a stopped one. Every request reads the ledger
afresh through a read-only connection (SQLite WAL: the daemon keeps writing meanwhile) and
renders plain HTML on the server: no JavaScript, the page reloads itself every few seconds.

Routes: ``/`` the page; ``/status.json`` the snapshot ``image2 status --json`` prints;
``/quicklook/<item>/<name>.png`` a quick-look that the ledger lists among that item's
products (nothing else on disk is ever served). The standard library's threading HTTP
server is enough for the handful of people looking at one daemon.
"""

from __future__ import annotations

import contextlib
import html
import http.server
import json
import logging
import re
import socket
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from image2.errors import Image2Error
from image2.watch.ledger import DONE, STATES, Item, Ledger, ledger_file
from image2.watch.status import Status, ago, as_dict, daemon_summary, local_time, queue_note, rates, read_status

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3
LIST_LIMIT = 10
THUMBNAILS = 6
LATENCY_SAMPLE = 200
"""Latency figures are over the most recent done items, at most this many."""
_QUICKLOOK = re.compile(r"^/quicklook/(\d+)/([^/]+\.png)$")


class AddressError(Image2Error):
    """An ``--http`` address that cannot be parsed or listened on."""


def parse_address(text: str) -> tuple[str, int]:
    """Return (host, port) from ``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT``; the host defaults to 127.0.0.1
    and port 0 takes any free one (the URL is logged)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise AddressError(f"--http {text}: expected PORT or HOST:PORT, e.g. 127.0.0.1:8765")
    return host, int(port)


@attrs.frozen
class Latency:
    """Median and 90th percentile, in seconds, of what the recent done items took."""

    arrival_to_done: tuple[float, float]
    running: tuple[float, float]
    queued: tuple[float, float]
    items: int


def _median_and_p90(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def latency(done: Sequence[Item]) -> Latency | None:
    """Return the latency of ``done`` items: from first seen to done, in the queue, and running; None if none."""
    timed = [i for i in done if i.finished_at is not None and i.started_at is not None]
    if not timed:
        return None
    return Latency(
        arrival_to_done=_median_and_p90([i.finished_at - i.seen_at for i in timed]),
        running=_median_and_p90([i.finished_at - i.started_at for i in timed]),
        queued=_median_and_p90([max(0.0, i.started_at - (i.queued_at or i.seen_at)) for i in timed]),
        items=len(timed),
    )


@attrs.frozen
class Page:
    """Everything the page shows, read from one ledger at one moment."""

    status: Status
    recent: tuple[Item, ...]
    latency: Latency | None


def read_page(output_dir: Path, ledger_path: Path | None = None) -> Page | None:
    """Read what the page shows from the ledger of ``output_dir`` (at ``ledger_path`` when given); None while
    there is no ledger yet."""
    try:
        status = read_status(output_dir, LIST_LIMIT, ledger_path=ledger_path)
        ledger = Ledger(ledger_file(output_dir, ledger_path), readonly=True)
    except FileNotFoundError:
        return None
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):  # the daemon has created the file but not yet its tables
            return None
        raise
    try:
        recent = tuple(ledger.recently_done(LATENCY_SAMPLE))
    finally:
        ledger.close()
    return Page(status, recent, latency(recent))


def quicklook_of(item: Item, name: str, output_dir: Path) -> Path | None:
    """Return the quick-look ``name`` among ``item``'s products when it lies in ``output_dir``; else None."""
    for product in item.products:
        path = Path(product)
        if path.name == name and path.suffix == ".png" and path.resolve().parent == output_dir.resolve():
            return path
    return None


# -- HTML ---------------------------------------------------------------------------------------

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.2em 2em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin-bottom: 0.2em; } h2 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; color: #555; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; } .failed { color: #a00; } .path { font-family: ui-monospace, monospace; font-size: 0.92em; }
.states td { padding-right: 18px; font-size: 1.2em; } .states th { font-size: 0.85em; }
.looks { display: flex; flex-wrap: wrap; gap: 12px; } figure { margin: 0; width: 250px; }
figure img { width: 250px; border: 1px solid #ccc; background: #fff; } figcaption { font-size: 0.8em; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _items_table(ident: str, rows: Sequence[tuple[str, ...]], heads: Sequence[str], empty: str) -> str:
    if not rows:
        return f'<p id="{ident}" class="note">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{ident}"><tr>{head}</tr>{body}</table>'


def _thumbnails(recent: Sequence[Item]) -> str:
    figures = []
    for item in recent:
        for product in item.products:
            if product.endswith(".png") and len(figures) < THUMBNAILS:
                url = f"/quicklook/{item.id}/{_e(Path(product).name)}"
                figures.append(f'<figure><a href="{url}"><img src="{url}" alt="{_e(Path(product).name)}"></a>'
                               f"<figcaption>{_e(Path(product).name)}<br>"
                               f"{_e(local_time(item.finished_at or item.updated_at))}</figcaption></figure>")
    if not figures:
        return '<p id="quicklooks" class="note">No quick-looks yet (the daemon writes them with --preview).</p>'
    return f'<div id="quicklooks" class="looks">{"".join(figures)}</div>'


def page_html(page: Page | None, output_dir: Path, now: float | None = None) -> str:
    """Return the status page for ``page`` (None: no ledger in ``output_dir`` yet)."""
    now = time.time() if now is None else now
    head = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
            f"<title>image2 watch: {_e(output_dir)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>image2 watch &mdash; <span class=\"path\">{_e(output_dir)}</span></h1>")
    stamp = f'<p class="note">Updated {_e(local_time(now))}; this page reloads every {REFRESH_SECONDS} s.</p>'
    if page is None:
        return (head + '<p id="daemon">No ledger here yet: the daemon creates it when it starts.</p>' + stamp
                + "</body></html>")
    status = page.status
    counts = "".join(f'<td class="num" id="count-{state}">{status.counts[state]}</td>' for state in STATES)
    states = f'<table class="states"><tr>{"".join(f"<th>{s}</th>" for s in STATES)}</tr><tr>{counts}</tr></table>'
    per_minute = rates(status)
    throughput = [(_e(name.replace("_", " ")), f'<span class="num">{status.done_in[name]}</span>',
                   f"{per_minute[name]:.1f}/min") for name in status.done_in]
    if "since_start" in per_minute:
        throughput.append(("since the daemon started", f'<span class="num">{status.done_since_start}</span>',
                           f"{per_minute['since_start']:.1f}/min"))
    if page.latency is None:
        latency_html = '<p id="latency" class="note">No item done yet.</p>'
    else:
        lat = page.latency
        latency_html = _items_table("latency", [
            (label, f"{median:.1f} s", f"{p90:.1f} s") for label, (median, p90) in (
                ("arrival to done", lat.arrival_to_done), ("in the queue", lat.queued), ("running", lat.running))],
            [f"over the last {lat.items} done", "median", "90%"], "")
    running = [(f'<span class="path">{_e(i.path)}</span>', f"attempt {i.attempts}",
                f"for {_e(ago(now - (i.started_at or now)))}") for i in status.running]
    queued = [(f'<span class="path">{_e(i.path)}</span>', _e(queue_note(i, now))) for i in status.queued]
    waiting = [(f'<span class="path">{_e(i.path)}</span>', f"waiting for members for {_e(ago(now - i.seen_at))}")
               for i in status.waiting]
    failures = [(_e(local_time(i.finished_at or i.updated_at)), f'<span class="path">{_e(i.path)}</span>',
                 f'<span class="failed">{_e(i.error)}</span>'
                 + (f'<br><span class="note">quarantined as {_e(i.quarantine)}</span>' if i.quarantine else ""))
                for i in status.failures]
    return "".join([
        head,
        f'<p id="daemon">Daemon: {_e(daemon_summary(status))}</p>', stamp,
        "<h2>Items by state</h2>", states,
        "<h2>Throughput</h2>", _items_table("throughput", throughput, ["done", "items", "rate"], ""),
        "<h2>Latency</h2>", latency_html,
        f"<h2>Running ({status.counts['running']})</h2>",
        _items_table("running", running, ["input", "", ""], "Nothing running."),
        f"<h2>Queue ({status.counts['queued']} queued, {status.counts['waiting']} waiting)</h2>",
        _items_table("queue", queued + waiting, ["input", ""], "The queue is empty."),
        "<h2>Recent failures</h2>",
        _items_table("failures", failures, ["when", "input", "reason"], "No failures."),
        "<h2>Latest quick-looks</h2>", _thumbnails(page.recent),
        "</body></html>",
    ])


# -- serving ------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    """GET only: the page, its JSON, and quick-looks the ledger lists."""

    output_dir: Path
    ledger_path: Path | None
    server_version = "image2-status"

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", page_html(read_page(self.output_dir, self.ledger_path),
                                                                       self.output_dir).encode())
            elif path == "/status.json":
                page = read_page(self.output_dir, self.ledger_path)
                body = {"ledger": None} if page is None else as_dict(page.status)
                self._send(200, "application/json", json.dumps(body).encode())
            elif (match := _QUICKLOOK.match(path)) is not None:
                self._quicklook(int(match.group(1)), match.group(2))
            else:
                self._send(404, "text/plain", b"not found\n")
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as error:  # noqa: BLE001 - a page that cannot be read must not stop the server
            log.warning("status page error: %r", error)
            with contextlib.suppress(OSError):
                self._send(500, "text/plain", f"cannot read the ledger: {error}\n".encode())

    def _quicklook(self, item_id: int, name: str) -> None:
        ledger = Ledger(ledger_file(self.output_dir, self.ledger_path), readonly=True)
        try:
            item = ledger.get(item_id)
        except KeyError:
            item = None
        finally:
            ledger.close()
        path = quicklook_of(item, name, self.output_dir) if item is not None and item.state == DONE else None
        if path is None or not path.is_file():
            self._send(404, "text/plain", b"no such quick-look\n")
            return
        self._send(200, "image/png", path.read_bytes(), cache="max-age=86400, immutable")

    def _send(self, code: int, kind: str, body: bytes, cache: str = "no-store") -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the standard library's signature
        log.debug("status page: " + format, *args)


class StatusServer:
    """The status page of ``output_dir`` served at ``address`` on a background thread."""

    def __init__(self, output_dir: Path, address: tuple[str, int], ledger_path: Path | None = None) -> None:
        handler = type("StatusHandler", (_Handler,), {"output_dir": Path(output_dir).absolute(),
                                                      "ledger_path": ledger_path})
        server_class = http.server.ThreadingHTTPServer
        if ":" in address[0]:
            server_class = type("IPv6Server", (http.server.ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        try:
            self._server = server_class(address, handler)
        except OSError as error:
            raise AddressError(f"--http {address[0]}:{address[1]}: cannot listen there ({error.strerror})") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="image2-status-page", daemon=True)

    @property
    def url(self) -> str:
        """Where the page is."""
        host, port = self._server.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextlib.contextmanager
def serving(output_dir: Path, address: str | None, ledger_path: Path | None = None) -> Iterator[StatusServer | None]:
    """Serve the status page of ``output_dir`` (its ledger at ``ledger_path`` when given) at ``address``
    (``HOST:PORT`` or ``PORT``) during the block; nothing when ``address`` is None."""
    if address is None:
        yield None
        return
    server = StatusServer(output_dir, parse_address(address), ledger_path).start()
    try:
        yield server
    finally:
        server.stop()
