"""Local processes against a 2-worker Dask LocalCluster: batch throughput and the per-task overhead.

The batch: 20 full-frame (2048×2048) NIRCam rate files with the demo's references, calibrated
by ``image2 process`` (→ _cal + _i2d) in a fresh interpreter each time, three ways:

- ``local``: ``--jobs 2`` (a pool of 2 worker processes, started by the command);
- ``dask, own cluster``: ``--executor dask --jobs 2`` (the command starts a LocalCluster);
- ``dask, running cluster``: ``--executor dask --scheduler ADDRESS`` on a 2-worker LocalCluster
  started beforehand (no start-up inside the timing).

The per-task overhead is measured twice: the round trip of a trivial task through each
executor (submit, wait, one at a time), and the batch-time difference between the running
cluster and the local pool divided by the 20 exposures. Medians of ``--repeat`` runs.

    python -m benchmarks.bench_dask [--repeat 3] [--exposures 20] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKERS = 2
TRIVIAL_CALLS = 200


def exposures(folder: Path, count: int) -> list[Path]:
    """Write ``count`` full-frame NIRCam NRCB1 rate files (distinct noise) under ``folder``."""
    from image2.synthetic.exposures import make_rate

    folder.mkdir(parents=True, exist_ok=True)
    return [make_rate(folder / f"jw02736001001_02101_{n:05d}_nrcb1_rate.fits", shape=(2048, 2048), seed=n)
            for n in range(1, count + 1)]


def run_batch(inputs: list[Path], refs: Path, out: Path, *options: str) -> float:
    """Calibrate ``inputs`` with ``image2 process`` in a fresh interpreter; return the wall time."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "image2", "--log-level", "ERROR", "process", *map(str, inputs),
                           "--refs", str(refs), "-o", str(out), "-q", *options], capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or f"done {len(inputs)}," not in proc.stdout:
        raise RuntimeError(f"batch failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return elapsed


def _nothing() -> None:
    return None


def round_trip(executor: object, calls: int = TRIVIAL_CALLS) -> float:
    """Median seconds for one trivial task through ``executor``, submitted and awaited one at a time."""
    for _ in range(WORKERS * 2):
        executor.submit(_nothing).result()  # workers started and warm
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        executor.submit(_nothing).result()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--exposures", type=int, default=20)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    from distributed import LocalCluster

    from image2.run.executors import make_executor
    from image2.synthetic.demo import build

    folder = args.workdir or Path(tempfile.mkdtemp(prefix="image2-bench-dask-"))
    refs = build(folder / "demo").references
    inputs = exposures(folder / "inputs", args.exposures)
    out = folder / "out"

    with make_executor("local", WORKERS) as pool:
        local_trip = round_trip(pool)
    with make_executor("dask", WORKERS) as pool:
        dask_trip = round_trip(pool)

    times: dict[str, list[float]] = {"local": [], "dask, own cluster": [], "dask, running cluster": []}
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        for _ in range(args.repeat):
            times["local"].append(run_batch(inputs, refs, out, "--jobs", str(WORKERS)))
            times["dask, own cluster"].append(run_batch(inputs, refs, out, "--executor", "dask",
                                                        "--jobs", str(WORKERS)))
            times["dask, running cluster"].append(run_batch(inputs, refs, out, "--executor", "dask", "--scheduler",
                                                            cluster.scheduler_address))

    n = len(inputs)
    print(f"{n} full-frame exposures (2048x2048 -> cal + i2d), {WORKERS} workers, median of {args.repeat}:")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in medians.items():
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(f"  {name:<24} {seconds:7.1f} s  {60 * n / seconds:6.1f} exposures/min   (runs: {runs} s)")
    print("per-task overhead of Dask:")
    print(f"  trivial task round trip: local {1e3 * local_trip:.2f} ms, dask {1e3 * dask_trip:.2f} ms "
          f"(+{1e3 * (dask_trip - local_trip):.2f} ms), median of {TRIVIAL_CALLS}")
    for name in ("dask, own cluster", "dask, running cluster"):
        difference = (medians[name] - medians["local"]) / n
        print(f"  ({name} - local) / {n}: {difference:+.2f} s per exposure "
              f"({medians[name] / medians['local']:.2f}x the local time)")


if __name__ == "__main__":
    main()
