"""``image2 status``: what the watch daemon writing to an output folder has done and has ahead of it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from image2.errors import Image2Error
from image2.watch.ledger import LEDGER_NAME, STATES, Item
from image2.watch.status import Status, as_dict, rates, read_status


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


def _daemon_line(status: Status) -> str:
    daemon = status.daemon
    if daemon is None:
        return "daemon    none has used this ledger"
    where = f"pid {daemon.pid} on {daemon.host}, {daemon.workers} worker(s), watching {', '.join(daemon.watching)}"
    state = status.daemon_state
    if state == "running":
        text = (f"running ({where}); up {_ago(status.now - daemon.started_at)}, "
                f"last heartbeat {_ago(status.now - daemon.beat_at)} ago")
    elif state == "stopped":
        text = f"stopped at {_when(daemon.stopped_at)} ({where})"
    elif state == "dead":
        text = (f"not running: its process is gone without a clean stop ({where}); "
                f"last heartbeat {_when(daemon.beat_at)}")
    else:
        text = f"on another host ({where}); last heartbeat {_ago(status.now - daemon.beat_at)} ago"
    return "daemon    " + text


def _queued_line(item: Item, now: float) -> str:
    line = f"  {item.path}"
    if item.retry_at is not None and item.retry_at > now:
        line += f"  retry in {_ago(item.retry_at - now)} (attempt {item.attempts + 1}): {item.error}"
    elif item.queued_at is not None:
        line += f"  queued {_ago(now - item.queued_at)} ago"
    return line


def status_text(status: Status) -> str:
    """Return the report ``image2 status`` prints for people."""
    counts = status.counts
    throughput = rates(status)
    lines = [
        f"ledger    {status.ledger}",
        _daemon_line(status),
        "items     " + "  ".join(f"{state} {counts[state]}" for state in STATES),
        "done      " + ", ".join(f"{n} in the {name.replace('_', ' ')} ({throughput[name]:.1f}/min)"
                                 for name, n in status.done_in.items())
        + (f"; {throughput['since_start']:.1f}/min since the daemon started" if "since_start" in throughput else ""),
    ]
    if status.running:
        lines.append(f"running   ({counts['running']})")
        lines += [f"  {i.path}  attempt {i.attempts}, for {_ago(status.now - (i.started_at or status.now))}"
                  for i in status.running]
    if status.queued:
        lines.append(f"queued    ({counts['queued']}, first {len(status.queued)} shown)")
        lines += [_queued_line(i, status.now) for i in status.queued]
    if status.waiting:
        lines.append(f"waiting   ({counts['waiting']} association(s) waiting for members)")
        lines += [f"  {i.path}  since {_ago(status.now - i.seen_at)}" for i in status.waiting]
    if status.failures:
        lines.append("recent failures")
        for item in status.failures:
            where = f" [quarantined as {item.quarantine}]" if item.quarantine else ""
            lines.append(f"  {_when(item.finished_at or item.updated_at)}  {item.path}: {item.error}{where}")
    return "\n".join(lines)


@click.command()
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for machines.")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="Items listed per section (running, queued, waiting, failures).")
def status(output_dir: Path, as_json: bool, limit: int) -> None:
    """Show what the watch daemon writing to OUTPUT_DIR has done: counts per state, throughput,
    recent failures with reasons, and what is queued."""
    try:
        snapshot = read_status(output_dir, limit)
    except FileNotFoundError:
        raise Image2Error(f"{output_dir}: no {LEDGER_NAME} here (no image2 watch has written to this folder)") from None
    click.echo(json.dumps(as_dict(snapshot), indent=2) if as_json else status_text(snapshot))
