"""End-to-end ``process`` benchmark: time and peak memory, each run in a fresh process.

Cases: the demo's full-frame NIRCam exposure with a 2-member background association
(→ _cal + _i2d), and rateints of 256×2048 with 50 and 200 integrations (→ _calints), to show
that peak memory does not grow with the number of integrations.

    python -m benchmarks.bench_process [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
from image2.run.options import RunOptions
from image2.run.process import process_input
path, refs, out = map(Path, sys.argv[1:4])
started = time.perf_counter()
results = process_input(path, RunOptions(output_dir=out, reference_dirs=(refs,), overwrite=True))
elapsed = time.perf_counter() - started
assert all(r.status == "done" for r in results), results
# VmHWM, not ru_maxrss: the latter keeps the peak of the parent's image across exec
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": elapsed, "peak_mib": peak_kib / 1024}))
"""


def run(path: Path, refs: Path, out: Path) -> dict:
    """Process ``path`` in a fresh interpreter; return its processing time and peak RSS."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(refs), str(out)],
                          capture_output=True, text=True, check=True)
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["wall_with_startup"] = time.perf_counter() - started
    return figures


def cube(folder: Path, nints: int) -> Path:
    """Write a 256×2048 NIRCam subarray rateints file of ``nints`` integrations, one plane at a time."""
    import numpy as np

    from image2.synthetic.exposures import make_rate

    path = folder / f"cube{nints}_rateints.fits"
    plane = np.random.default_rng(1).normal(0.5, 0.05, (256, 2048)).astype(np.float32)
    arrays = {"SCI": np.broadcast_to(plane, (nints, 256, 2048)),
              "ERR": np.full((nints, 256, 2048), 0.05, np.float32),
              "DQ": np.zeros((nints, 256, 2048), np.uint32),
              "VAR_POISSON": np.full((nints, 256, 2048), 0.0005, np.float32),
              "VAR_RNOISE": np.full((nints, 256, 2048), 0.002, np.float32)}
    return make_rate(path, shape=(nints, 256, 2048), arrays=arrays,
                     primary={"SUBARRAY": "SUB256", "SUBSTRT1": 1, "SUBSTRT2": 1793, "EXP_TYPE": "NRC_TSIMAGE",
                              "TSOVISIT": True})


def summary(name: str, runs: list[dict]) -> str:
    seconds = statistics.median(r["seconds"] for r in runs)
    wall = statistics.median(r["wall_with_startup"] for r in runs)
    peak = statistics.median(r["peak_mib"] for r in runs)
    return f"{name:<40} median {seconds:6.2f} s processing ({wall:5.2f} s with start-up)  peak RSS {peak:7.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="image2-bench-"))
    from image2.synthetic.demo import build

    demo = build(folder / "demo")
    out = folder / "out"
    print(summary("full frame + 2 backgrounds -> cal + i2d",
                  [run(demo.association, demo.references, out) for _ in range(args.repeat)]))
    for nints in (50, 200):
        path = cube(folder, nints)
        print(summary(f"rateints {nints} x 256 x 2048 -> calints",
                      [run(path, demo.references, out) for _ in range(args.repeat)]))


if __name__ == "__main__":
    main()
