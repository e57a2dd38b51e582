"""What the watch daemon's ledger says: counts per state, throughput, failures, and the work ahead."""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path
from typing import Any

import attrs

from image2.io.atomic import pid_alive
from image2.watch.ledger import QUEUED, RUNNING, WAITING, DaemonInfo, Item, Ledger, ledger_file

WINDOWS = ((60.0, "last_minute"), (600.0, "last_10_minutes"), (3600.0, "last_hour"))


@attrs.frozen
class Status:
    """A snapshot of one output folder's ledger."""

    ledger: Path
    now: float
    counts: dict[str, int]
    daemon: DaemonInfo | None
    daemon_state: str
    done_in: dict[str, int]
    done_since_start: int
    running: tuple[Item, ...]
    queued: tuple[Item, ...]
    waiting: tuple[Item, ...]
    failures: tuple[Item, ...]


def _daemon_state(daemon: DaemonInfo | None) -> str:
    """``running``, ``stopped`` (cleanly), ``dead`` (its process is gone), ``unknown`` (another host), ``never``."""
    if daemon is None:
        return "never"
    if daemon.stopped_at is not None:
        return "stopped"
    if daemon.host != socket.gethostname():
        return "unknown"
    return "running" if pid_alive(daemon.pid) else "dead"


def read_status(output_dir: Path, limit: int = 10, now: float | None = None, ledger_path: Path | None = None) -> Status:
    """Read the ledger of ``output_dir`` (read-only; at ``ledger_path`` when given) and return its snapshot;
    ``limit`` bounds each list."""
    now = time.time() if now is None else now
    ledger = Ledger(ledger_file(output_dir, ledger_path), readonly=True)
    try:
        daemon = ledger.daemon()
        return Status(
            ledger=ledger.path,
            now=now,
            counts=ledger.counts(),
            daemon=daemon,
            daemon_state=_daemon_state(daemon),
            done_in={name: ledger.finished_since(now - seconds) for seconds, name in WINDOWS},
            done_since_start=ledger.finished_since(daemon.started_at) if daemon is not None else 0,
            running=tuple(ledger.in_state(RUNNING, limit)),
            queued=tuple(ledger.in_state(QUEUED, limit)),
            waiting=tuple(ledger.in_state(WAITING, limit)),
            failures=tuple(ledger.recent_failures(limit)),
        )
    finally:
        ledger.close()


def rates(status: Status) -> dict[str, float]:
    """Files done per minute over each window, and since the daemon started."""
    found = {name: status.done_in[name] / (seconds / 60.0) for seconds, name in WINDOWS}
    if status.daemon is not None:
        end = status.daemon.stopped_at or status.now
        minutes = max(end - status.daemon.started_at, 1.0) / 60.0
        found["since_start"] = status.done_since_start / minutes
    return found


def ago(seconds: float) -> str:
    """Return a duration for people: seconds, minutes or hours."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def local_time(seconds: float) -> str:
    """Return a time stamp in local time, to the second."""
    return dt.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


def daemon_summary(status: Status) -> str:
    """Return one sentence on the daemon of the ledger: running, stopped, dead, elsewhere, or none."""
    daemon = status.daemon
    if daemon is None:
        return "none has used this ledger"
    where = f"pid {daemon.pid} on {daemon.host}, {daemon.workers} worker(s), watching {', '.join(daemon.watching)}"
    state = status.daemon_state
    if state == "running":
        return (f"running ({where}); up {ago(status.now - daemon.started_at)}, "
                f"last heartbeat {ago(status.now - daemon.beat_at)} ago")
    if state == "stopped":
        return f"stopped at {local_time(daemon.stopped_at)} ({where})"
    if state == "dead":
        return (f"not running: its process is gone without a clean stop ({where}); "
                f"last heartbeat {local_time(daemon.beat_at)}")
    return f"on another host ({where}); last heartbeat {ago(status.now - daemon.beat_at)} ago"


def queue_note(item: Item, now: float) -> str:
    """Return why a queued item waits: its retry (when, which attempt, the last error) or its time in the queue."""
    if item.retry_at is not None and item.retry_at > now:
        return f"retry in {ago(item.retry_at - now)} (attempt {item.attempts + 1}): {item.error}"
    if item.queued_at is not None:
        return f"queued {ago(now - item.queued_at)} ago"
    return ""


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def _item_dict(item: Item) -> dict[str, Any]:
    return {
        "id": item.id, "path": str(item.path), "kind": item.kind, "state": item.state,
        "attempts": item.attempts, "found_by": item.found_by, "size": item.size, "sha256": item.digest,
        "products": list(item.products), "error": item.error, "quarantine": item.quarantine,
        "seen_at": _iso(item.seen_at), "queued_at": _iso(item.queued_at), "started_at": _iso(item.started_at),
        "finished_at": _iso(item.finished_at), "retry_at": _iso(item.retry_at),
    }


def as_dict(status: Status) -> dict[str, Any]:
    """The snapshot as plain JSON-ready values (``image2 status --json``)."""
    daemon = status.daemon
    return {
        "ledger": str(status.ledger),
        "time": _iso(status.now),
        "daemon": None if daemon is None else {
            "state": status.daemon_state, "pid": daemon.pid, "host": daemon.host, "version": daemon.version,
            "watching": list(daemon.watching), "workers": daemon.workers, "started_at": _iso(daemon.started_at),
            "heartbeat_at": _iso(daemon.beat_at), "heartbeat_age_s": round(status.now - daemon.beat_at, 1),
            "stopped_at": _iso(daemon.stopped_at), "in_flight": daemon.in_flight, "pending": daemon.pending,
        },
        "counts": status.counts,
        "done": status.done_in,
        "throughput_per_minute": {name: round(rate, 2) for name, rate in rates(status).items()},
        "running": [_item_dict(i) for i in status.running],
        "queued": [_item_dict(i) for i in status.queued],
        "waiting": [_item_dict(i) for i in status.waiting],
        "recent_failures": [_item_dict(i) for i in status.failures],
    }
