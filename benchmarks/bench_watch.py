"""Benchmark ``image2 watch``: sustained throughput and latency from a file's completion to its products.

For each exposure size and worker count, a real daemon (subprocess, native observer) watches
a temporary folder. After one warm-up file:

- latency: files are dropped one at a time into the idle daemon, alternately renamed into
  place and copied in (written in place, then closed); latency is the time from the end of
  that write to the moment the ``_cal`` product (published last) exists. The worker's own
  processing time comes from the daemon's ``done`` events; overhead = latency - processing, of
  which "dispatch" is the daemon's part (from the end of the write to the item's start in the
  ledger: event, readiness check, validation, content hash, ledger) and the rest is the
  executor handing the task to a worker process.
- throughput: a batch is dropped at once; files per minute from the drop to the last product.

Run: ``python benchmarks/bench_watch.py`` (see ``--help``; ``--json FILE`` keeps the figures).
No reference files: steps that need one skip, as in the daemon's acceptance tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from image2.watch.ledger import Ledger  # noqa: E402
from image2.synthetic.exposures import make_rate  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    """Return the ``fraction`` quantile of ``values`` (linear interpolation)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def done_seconds(log: Path) -> dict[str, float]:
    """Worker processing seconds per input, from the daemon's JSON ``done`` events."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "done":
            found[Path(event["file"]).name] = event["seconds"]
    return found


def wait_for(path: Path, timeout: float) -> float:
    """Return the time ``path`` first exists (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return time.time()
        time.sleep(0.005)
    raise TimeoutError(path)


def product_of(name: str, output: Path) -> Path:
    return output / name.replace("_rate.fits", "_cal.fits")


def drop(source: Path, inbox: Path, copy: bool) -> float:
    """Put ``source`` into ``inbox`` (copied in place, or renamed); return when the write ended."""
    if copy:
        shutil.copyfile(source, inbox / source.name)
    else:
        os.replace(source, inbox / source.name)
    return time.time()


def bench(size: int, workers: int, count: int, latency_count: int, timeout: float) -> dict:
    """Measure one configuration and return its figures."""
    with tempfile.TemporaryDirectory(prefix=f"bench_watch_{size}_{workers}_") as tmp:
        root = Path(tmp)
        staging, inbox, output = root / "staging", root / "in", root / "out"
        for folder in (staging, inbox):
            folder.mkdir()
        files = [make_rate(staging / f"b{size}w{workers}n{i:03d}_rate.fits", shape=(size, size), seed=i + 1)
                 for i in range(1 + latency_count + count)]
        log = root / "watch.log"
        with open(log, "wb") as sink:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "image2", "--log-format", "json", "watch", str(inbox), "-o", str(output),
                 "--workers", str(workers), "--heartbeat", "30"],
                cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
            try:
                warm, trial, batch = files[0], files[1:1 + latency_count], files[1 + latency_count:]
                deadline = time.monotonic() + 120
                while not (output / "image2-watch.sqlite").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                drop(warm, inbox, copy=False)
                wait_for(product_of(warm.name, output), timeout)
                latencies = []
                for number, source in enumerate(trial):
                    written = drop(source, inbox, copy=bool(number % 2))
                    latencies.append((source.name, written, wait_for(product_of(source.name, output), timeout)))
                    time.sleep(0.5)
                start = time.time()
                for source in batch:
                    drop(source, inbox, copy=False)
                last = max(wait_for(product_of(source.name, output), timeout) for source in batch)
                elapsed = last - start
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(120)
        seconds = done_seconds(log)
        ledger = Ledger.in_folder(output, readonly=True)
        started = {name: ledger.latest(inbox / name).started_at for name, _, _ in latencies}
        ledger.close()
    processing = [seconds[name] for name, _, _ in latencies]
    latency = [ready - written for _, written, ready in latencies]
    overhead = [ready - written - seconds[name] for name, written, ready in latencies]
    dispatch = [started[name] - written for name, written, _ in latencies]
    return {
        "size": size, "workers": workers, "files": count, "batch_seconds": round(elapsed, 2),
        "files_per_minute": round(count / elapsed * 60.0, 1),
        "latency_median_s": round(statistics.median(latency), 3), "latency_p95_s": round(percentile(latency, 0.95), 3),
        "processing_median_s": round(statistics.median(processing), 3),
        "overhead_median_s": round(statistics.median(overhead), 3),
        "overhead_p95_s": round(percentile(overhead, 0.95), 3),
        "dispatch_median_s": round(statistics.median(dispatch), 3),
        "dispatch_p95_s": round(percentile(dispatch, 0.95), 3),
        "daemon_exit": daemon.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--count", type=int, nargs="+", default=[40, 6],
                        help="files in the throughput batch, per size (default 40 for 512, 6 for 2048)")
    parser.add_argument("--latency", type=int, default=8, help="files dropped one by one for the latency figures")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    counts = dict(zip(args.sizes, args.count + args.count[-1:] * len(args.sizes)))
    rows = []
    header = (f"{'size':>6} {'workers':>7} {'files/min':>9} {'latency med':>11} {'p95':>7} "
              f"{'processing med':>14} {'overhead med':>12} {'p95':>7} {'dispatch med':>12} {'p95':>7}")
    print(header)
    for size in args.sizes:
        for workers in args.workers:
            row = bench(size, workers, counts[size], args.latency, args.timeout)
            rows.append(row)
            print(f"{size:>6} {workers:>7} {row['files_per_minute']:>9.1f} {row['latency_median_s']:>10.2f}s "
                  f"{row['latency_p95_s']:>6.2f}s {row['processing_median_s']:>13.2f}s "
                  f"{row['overhead_median_s']:>11.2f}s {row['overhead_p95_s']:>6.2f}s "
                  f"{row['dispatch_median_s']:>11.2f}s {row['dispatch_p95_s']:>6.2f}s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
