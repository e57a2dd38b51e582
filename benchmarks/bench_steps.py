"""Time and memory of the calibration steps on a 2048×2048 image and a 50×256×2048 cube.

Run from the repository root:

    python -m benchmarks.bench_steps [--repeats 7] [--no-rss]

For each step and case it prints the median and best wall time and the median CPU time
over ``--repeats`` calls (on a shared machine the best and CPU figures are the steadier), the
tracemalloc peak of the call, and the "extra" memory: that peak minus the new arrays the
result keeps (SCI, ERR, VAR_*, DQ the step had to produce), in units of one full-size
float32 array of the case (16 MiB for 2048×2048, 100 MiB for the cube); for
flat_field+photom the intermediate flat-fielded record counts as extra. Unless ``--no-rss``
is given, each case also runs once in a fresh subprocess and reports the growth of the
process's peak resident memory during that single call (outputs included).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np

from image2.core.dark_current import dark_current
from image2.core.exposure import Exposure, Extension
from image2.core.flat_field import flat_field
from image2.core.meta import ExposureInfo, Instrument, Meta, Subarray
from image2.core.parse_subarray_map import parse_subarray_map
from image2.core.photom import photom
from image2.core.references import AreaReference, DarkReference, FlatReference, PhotomReference

FULL = (2048, 2048)
CASES = {"image 2048x2048": (2048, 2048), "cube 50x256x2048": (50, 256, 2048)}
ARRAYS = ("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat", "area")


def exposure_for(shape: tuple[int, ...], seed: int = 1) -> Exposure:
    """A NIRCam exposure with sky, noise, flagged and NaN pixels; a cube sits at row 897 of the detector."""
    rng = np.random.default_rng(seed)
    sci = rng.normal(0.8, 0.05, shape).astype(np.float32)
    sci.reshape(-1)[rng.choice(sci.size, sci.size // 10000, replace=False)] = np.nan
    var_rnoise = np.full(shape, 0.0025, np.float32)
    var_poisson = np.abs(sci) / np.float32(1000.0)
    err = np.sqrt(var_poisson + var_rnoise)
    dq = np.zeros(shape, np.uint32)
    dq.reshape(-1)[rng.choice(dq.size, dq.size // 500, replace=False)] = 1 | 1024
    ny, nx = shape[-2:]
    ystart = 1 if (ny, nx) == FULL else 897
    ids = np.zeros((ny, nx), np.uint16)
    ids[10:74, 100:228], ids[100:164, 1500:1628] = 1, 2
    meta = Meta(instrument=Instrument(name="NIRCAM", detector="NRCB1", filter="F150W", pupil="CLEAR"),
                subarray=Subarray("FULL" if (ny, nx) == FULL else "SUB256X2048", 1, ystart, nx, ny),
                exposure=ExposureInfo(type="NRC_IMAGE", mid=60412.123456789))
    return Exposure(sci=sci, err=err, dq=dq, var_poisson=var_poisson, var_rnoise=var_rnoise, meta=meta,
                    extensions={"SUBARR_MAP": Extension(ids)})


def references(seed: int = 2) -> dict[str, object]:
    """Full-frame flat (with NaN, zero and flagged pixels), photom with all time tables, area, dark."""
    rng = np.random.default_rng(seed)
    flat = rng.normal(1.0, 0.02, FULL).astype(np.float32)
    flat.reshape(-1)[rng.choice(flat.size, 2000, replace=False)] = np.nan
    flat.reshape(-1)[rng.choice(flat.size, 2000, replace=False)] = 0.0
    flat_dq = np.zeros(FULL, np.uint32)
    flat_dq.reshape(-1)[rng.choice(flat.size, 4000, replace=False)] = 1 << 18
    placement = Subarray("FULL", 1, 1, *FULL)
    rows = np.array([("F150W", "CLEAR", 0.2345678, 0.01), ("F200W", "CLEAR", 0.3, 0.01)],
                    dtype=[("filter", "S12"), ("pupil", "S12"), ("photmjsr", ">f4"), ("uncertainty", ">f4")])
    timecoeff = {
        "linear": np.array([(59700.3, 0.0123)] * 2, dtype=[("t0", ">f4"), ("lossperyear", ">f4")]),
        "exponential": np.array([(59710.1, 0.03, 97.3, 0.971)] * 2,
                                dtype=[("t0", ">f4"), ("amplitude", ">f4"), ("tau", ">f4"), ("const", ">f4")]),
        "powerlaw": np.array([(59720.7, 0.987, 33.3, -0.021)] * 2,
                             dtype=[("t0", ">f4"), ("year1value", ">f4"), ("tsoft", ">f4"), ("alpha", ">f4")]),
    }
    dark = rng.normal(0.01, 0.001, FULL).astype(np.float32)
    dark.reshape(-1)[:100] = np.nan
    return {
        "flat": FlatReference("flat", flat, np.full(FULL, 0.01, np.float32), flat_dq, placement, "NIRCAM"),
        "photom": PhotomReference("photom", rows, timecoeff, 9.31e-14, 0.00396, "NIRCAM"),
        "area": AreaReference("area", rng.normal(1.0, 0.01, FULL).astype(np.float32), 9.31e-14, 0.00396, placement),
        "dark": DarkReference("dark", dark, np.full(FULL, 0.001, np.float32), flat_dq, placement),
    }


def runners(refs: dict[str, object]) -> dict[str, Callable[[Exposure], Exposure]]:
    """The benchmarked calls, by name."""
    return {
        "parse_subarray_map": parse_subarray_map,
        "dark_current": lambda e: dark_current(e, refs["dark"]),
        "flat_field": lambda e: flat_field(e, refs["flat"]),
        "photom": lambda e: photom(e, refs["photom"], refs["area"]),
        "flat_field+photom": lambda e: photom(flat_field(e, refs["flat"]), refs["photom"], refs["area"]),
    }


def new_bytes(result: Exposure, exposure: Exposure, refs: dict[str, object]) -> int:
    """Bytes of the result's arrays shared with neither the input nor a reference (the step's output)."""
    inputs = [a for a in (getattr(exposure, n) for n in ARRAYS) if a is not None]
    inputs += [a for ref in refs.values() for a in attrs.asdict(ref, recurse=False).values()
               if isinstance(a, np.ndarray)]
    total = 0
    for name in ARRAYS:
        array = getattr(result, name)
        if array is not None and not any(np.shares_memory(array, a) for a in inputs):
            total += array.nbytes
    return total


def measure(run: Callable[[Exposure], Exposure], exposure: Exposure, refs: dict[str, object],
            repeats: int) -> dict[str, float]:
    """Median and best wall seconds and median CPU seconds over ``repeats`` calls, and the
    tracemalloc peak / extra bytes of one call."""
    run(exposure)
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run(exposure)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    result = run(exposure)
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    return {"median_s": statistics.median(times), "min_s": min(times), "cpu_s": statistics.median(cpu),
            "peak_bytes": peak,
            "extra_bytes": peak - new_bytes(result, exposure, refs)}


def rss_growth(case: str, step: str) -> int:
    """Run one call in a fresh interpreter; return the growth of its peak resident memory in bytes."""
    completed = subprocess.run([sys.executable, "-m", "benchmarks.bench_steps", "--child", case, step],
                               capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return int(json.loads(completed.stdout)["rss_growth"])


def _status_kib(field: str) -> int:
    """Return a memory figure (KiB) of this process from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(case: str, step: str) -> None:
    """Subprocess body: build the inputs, then report the peak-RSS growth of one call.

    On Linux the high-water mark is first reset to the current RSS (``/proc/self/clear_refs``),
    so temporaries of input building do not hide the call's peak; elsewhere ru_maxrss is used.
    """
    exposure = exposure_for(CASES[case])
    run = runners(references())[step]
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
        run(exposure)
        growth = _status_kib("VmHWM") - before
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run(exposure)
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"rss_growth": growth * 1024}))


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-subprocess ru_maxrss runs")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "STEP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    refs = references()
    print(f"{'case':<18} {'step':<20} {'median s':>9} {'min s':>7} {'cpu s':>7} {'peak MiB':>9} {'extra MiB':>9} "
          f"{'extra planes':>12}"
          f"{'' if args.no_rss else ' rss growth MiB':>15}")
    for case, shape in CASES.items():
        exposure = exposure_for(shape)
        plane = exposure.sci.nbytes
        for step, run in runners(refs).items():
            figures = measure(run, exposure, refs, args.repeats)
            line = (f"{case:<18} {step:<20} {figures['median_s']:>9.4f} {figures['min_s']:>7.4f} "
                    f"{figures['cpu_s']:>7.4f} {figures['peak_bytes'] / 2**20:>9.1f} "
                    f"{figures['extra_bytes'] / 2**20:>9.1f} {figures['extra_bytes'] / plane:>12.2f}")
            if not args.no_rss:
                line += f" {rss_growth(case, step) / 2**20:>14.1f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
