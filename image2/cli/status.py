"""``image2 status``: what the watch daemon writing to an output folder has done and has ahead of it."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import click

from image2.errors import Image2Error
from image2.watch.ledger import LEDGER_NAME, STATES
from image2.watch.status import Status, ago, as_dict, daemon_summary, local_time, queue_note, rates, read_status


def status_text(status: Status) -> str:
    """Return the report ``image2 status`` prints for people."""
    counts = status.counts
    throughput = rates(status)
    lines = [
        f"ledger    {status.ledger}",
        "daemon    " + daemon_summary(status),
        "items     " + "  ".join(f"{state} {counts[state]}" for state in STATES),
        "done      " + ", ".join(f"{n} in the {name.replace('_', ' ')} ({throughput[name]:.1f}/min)"
                                 for name, n in status.done_in.items())
        + (f"; {throughput['since_start']:.1f}/min since the daemon started" if "since_start" in throughput else ""),
    ]
    if status.running:
        lines.append(f"running   ({counts['running']})")
        lines += [f"  {i.path}  attempt {i.attempts}, for {ago(status.now - (i.started_at or status.now))}"
                  for i in status.running]
    if status.queued:
        lines.append(f"queued    ({counts['queued']}, first {len(status.queued)} shown)")
        lines += [f"  {i.path}  {queue_note(i, status.now)}".rstrip() for i in status.queued]
    if status.waiting:
        lines.append(f"waiting   ({counts['waiting']} association(s) waiting for members)")
        lines += [f"  {i.path}  since {ago(status.now - i.seen_at)}" for i in status.waiting]
    if status.failures:
        lines.append("recent failures")
        for item in status.failures:
            where = f" [quarantined as {item.quarantine}]" if item.quarantine else ""
            lines.append(f"  {local_time(item.finished_at or item.updated_at)}  {item.path}: {item.error}{where}")
    return "\n".join(lines)


@click.command()
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for machines.")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="Items listed per section (running, queued, waiting, failures).")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The ledger, when image2 watch was told to keep it elsewhere (--ledger); default "
                   f"OUTPUT_DIR/{LEDGER_NAME}.")
@click.option("--http", metavar="[HOST:]PORT",
              help="Serve the status page (as image2 watch --http does) until Ctrl-C instead of printing; the "
                   "host defaults to 127.0.0.1.")
def status(output_dir: Path, as_json: bool, limit: int, ledger_path: Path | None, http: str | None) -> None:
    """Show what the watch daemon writing to OUTPUT_DIR has done: counts per state, throughput,
    recent failures with reasons, and what is queued."""
    try:
        snapshot = read_status(output_dir, limit, ledger_path=ledger_path)
    except FileNotFoundError:
        if ledger_path is not None:
            raise Image2Error(f"{ledger_path}: no such ledger") from None
        raise Image2Error(f"{output_dir}: no {LEDGER_NAME} here (no image2 watch has written to this folder)") from None
    if http is None:
        click.echo(json.dumps(as_dict(snapshot), indent=2) if as_json else status_text(snapshot))
        return
    from image2.watch.status_page import serving

    with serving(output_dir, http, ledger_path) as page:
        click.echo(f"status page of {output_dir} at {page.url} (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
