"""Benchmark what an operator waits for before anything happens: help, ``info``, the first log line, shutdown.

Each figure is the median of ``--repeat`` runs of a real subprocess (wall clock, and the
process's own CPU time, which a busy machine inflates less):

- ``image2 --help`` and every sub-command's ``--help``;
- ``image2 info`` on a full-frame (2048 x 2048) rate file;
- ``image2 process``: from the start of the process to its first log line on stderr;
- ``image2 watch`` on an empty folder: from the start to the ``scan`` event, and from SIGINT
  to the end of the process (an idle daemon).

Run: ``python benchmarks/bench_startup.py [--repeat N] [--json FILE]``. The load average is
printed with the figures: on a shared machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from image2.cli.main import COMMANDS  # noqa: E402
from image2.synthetic.exposures import make_rate  # noqa: E402

IMAGE2 = [sys.executable, "-m", "image2"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(args: list[str]) -> tuple[float, float]:
    """Run ``args`` to the end; return (wall seconds, CPU seconds of the process and its children)."""
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, check=True)
    return time.perf_counter() - started, _children_cpu() - cpu


def first_stderr_line(args: list[str]) -> float:
    """Seconds from starting ``args`` to its first line on stderr (the process is then stopped)."""
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    process.stderr.readline()
    elapsed = time.perf_counter() - started
    process.kill()
    process.wait()
    process.stderr.close()
    return elapsed


def idle_daemon(folder: Path) -> tuple[float, float]:
    """Start ``image2 watch`` on an empty folder; return (seconds to its scan event, seconds from SIGINT to exit)."""
    inbox, output = folder / "in", folder / "out"
    inbox.mkdir(exist_ok=True)
    started = time.perf_counter()
    process = subprocess.Popen([*IMAGE2, "--log-format", "json", "watch", str(inbox), "-o", str(output)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, text=True)
    for line in process.stderr:
        if '"scan"' in line:
            break
    ready = time.perf_counter() - started
    time.sleep(1.0)
    stop = time.perf_counter()
    process.send_signal(signal.SIGINT)
    process.stderr.read()
    process.wait()
    return ready, time.perf_counter() - stop


def median_of(repeat: int, measure: Callable[[], float | tuple[float, ...]]) -> list[float]:
    """Medians, per figure, of ``repeat`` measurements."""
    runs = [measure() for _ in range(repeat)]
    runs = [run if isinstance(run, tuple) else (run,) for run in runs]
    return [round(statistics.median(values), 3) for values in zip(*runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per figure (median reported)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {}
    helps = [[], *([name] for name in sorted(COMMANDS)), ["config", "show"]]
    for command in helps:
        label = " ".join(["image2", *command, "--help"])
        figures[label + "  (wall, cpu)"] = median_of(args.repeat, lambda c=command: timed_run([*IMAGE2, *c, "--help"]))
    with tempfile.TemporaryDirectory() as tmp:
        rate = make_rate(Path(tmp) / "jw01234001001_01101_00001_nrcb1_rate.fits", shape=(2048, 2048))
        figures["image2 info FULL-FRAME  (wall, cpu)"] = median_of(
            args.repeat, lambda: timed_run([*IMAGE2, "info", str(rate)]))
        figures["image2 process: first log line  (wall)"] = median_of(
            args.repeat, lambda: first_stderr_line([*IMAGE2, "process", str(rate), "-o", str(Path(tmp) / "out")]))
        figures["image2 watch idle: start->scan, SIGINT->exit  (wall)"] = median_of(
            max(3, args.repeat // 2), lambda: idle_daemon(Path(tmp)))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; "
          f"medians of {args.repeat} runs, seconds")
    for label, values in figures.items():
        print(f"  {label:<58} {'  '.join(f'{v:.3f}' for v in values)}")
    if args.json:
        args.json.write_text(json.dumps({"load_average": load, **figures}, indent=2))


if __name__ == "__main__":
    main()
