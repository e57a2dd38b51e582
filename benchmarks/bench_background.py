"""Benchmark the background step: combine 3 background members and subtract, 2-D and 3-D.

Run: ``/work/venv/bin/python benchmarks/bench_background.py [--repeat 5] [--nints 50]``

Cases (all members with the science's geometry, as in a normal background association):
* 2-D   — science and 3 members of 2048×2048;
* 3-D   — science and 3 members of ``nints``×256×2048 (each member clipped over its own
          integrations first, then the 3 planes combined).
For each: median wall (and CPU) time of ``combine_backgrounds``, of ``bkg_subtract`` and of both, and the
peak memory each function allocates beyond its inputs (tracemalloc, which numpy reports to),
also in units of the science's SCI array (one 2048×2048 float32 plane, or the whole 3-D cube).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from image2.core.background import bkg_subtract, combine_backgrounds  # noqa: E402
from image2.core.exposure import Exposure  # noqa: E402
from image2.core.meta import Instrument, Meta, Subarray  # noqa: E402


def exposure(shape: tuple[int, ...], seed: int) -> Exposure:
    """A sky-like exposure placed at the detector origin, with a few NaN and flagged pixels."""
    rng = np.random.default_rng(seed)
    sci = rng.normal(0.8, 0.05, shape).astype(np.float32)
    sci.reshape(-1)[rng.choice(sci.size, sci.size // 1000, replace=False)] = np.nan
    dq = np.zeros(shape, np.uint32)
    dq.reshape(-1)[rng.choice(dq.size, dq.size // 500, replace=False)] = 4
    ny, nx = shape[-2:]
    meta = Meta(instrument=Instrument(name="NIRCAM"), subarray=Subarray("SUB", 1, 1, nx, ny))
    return Exposure(sci=sci, err=np.full(shape, 0.05, np.float32), dq=dq, meta=meta)


def median_time(function, repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time of ``repeat`` calls (CPU time shows contention on a shared machine)."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def peak_bytes(function) -> int:
    """Peak bytes allocated while ``function`` runs, beyond what was allocated before."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base


def run_case(label: str, shape: tuple[int, ...], repeat: int) -> None:
    science = exposure(shape, 1)
    members = [exposure(shape, 2 + i) for i in range(3)]
    combined = combine_backgrounds(science, members)
    size = int(np.prod(shape)) * 4
    timings = {
        "combine": (lambda: combine_backgrounds(science, members)),
        "subtract": (lambda: bkg_subtract(science, combined)),
        "both": (lambda: bkg_subtract(science, combine_backgrounds(science, members))),
    }
    parts = []
    for name, function in timings.items():
        wall, cpu = median_time(function, repeat)
        peak = peak_bytes(function)
        parts.append(f"{name} {wall:6.3f} s (cpu {cpu:6.3f} s), peak {peak / 2**20:6.1f} MiB ({peak / size:4.2f} SCI)")
    print(f"{label} {'×'.join(map(str, shape))}: " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nints", type=int, default=50)
    args = parser.parse_args()
    print(f"background, 3 members, median of {args.repeat} runs")
    run_case("2-D", (2048, 2048), args.repeat)
    run_case("3-D", (args.nints, 256, 2048), max(1, args.repeat // 2))


if __name__ == "__main__":
    main()
