"""image2 against liger_iris_pipeline 3d0ac2e: a 2048² Liger frame with 2 SKY frames, end to end (issue 14).

The inputs (science frame, two SKY frames, dark, flat) are written once by Liger's own
datamodels. Each round then runs, interleaved and each in a fresh process, Liger's
ImagerStage2Pipeline (the parity driver's ``pipeline`` job) and ``image2 process`` on a Liger-form
association with the dark and flat chosen from a folder (as a user runs it), measuring the whole
process: wall time from launch to exit (imports and Liger's numba compilation included) and peak
resident memory. Medians over --repeat rounds.

    IMAGE2_LIGER_PYTHON=/path/to/.venv-liger/bin/python python -m benchmarks.bench_vs_liger [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.parity.liger_harness import DRIVER, LigerBatch, LigerDump, relative_difference

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (2048, 2048)
LAUNCHER = ("import resource, subprocess, sys, time; start = time.perf_counter(); "
            "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
            "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)")


def measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``command`` in a fresh process; return its wall seconds and peak RSS in MiB."""
    out = subprocess.run([sys.executable, "-c", LAUNCHER, *command], capture_output=True, text=True, check=True,
                         env=env, cwd=ROOT)
    seconds, peak_kib, code = out.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"{command[:3]} exited with {code}")
    return float(seconds), int(peak_kib) / 1024


def write_inputs(folder: Path, python: str) -> dict[str, Path]:
    """Write the science frame, two SKY frames, the dark and the flat with Liger's datamodels."""
    from image2.synthetic.liger import dark_arrays, flat_arrays, frame_arrays

    batch = LigerBatch(folder / "write")
    dark, flat = dark_arrays(SHAPE), flat_arrays(SHAPE)
    common = {"instrument.name": "Liger", "instrument.detector": "IMG", "instrument.filter": "Ks",
              "exposure.exposure_time": 60.0, "exposure.jd_start": 2460600.75}
    frame = {**common, "instrument.scale": 0.01, "target.ra": 150.1, "target.dec": 2.2}
    paths = {"dark": batch.write("dark", "DarkModel", folder / "refs" / "dark.fits", dark, common),
             "flat": batch.write("flat", "FlatModel", folder / "refs" / "flat.fits", flat, common)}
    for name, level, seed, stars in (("sci", 40.0, 11, 150), ("sky1", 52.0, 101, 0), ("sky2", 37.0, 111, 0)):
        arrays = frame_arrays(SHAPE, seed=seed, sky=level, dark=dark["data"], flat=flat["data"], stars=stars)
        kind = "SCI" if name == "sci" else "SKY"
        paths[name] = batch.write(name, "ImagerModel", folder / f"{name}.fits", arrays,
                                  {**frame, "exposure.exposure_type": kind})
    for result in batch.run(python).values():
        result.check()
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    python = os.environ.get("IMAGE2_LIGER_PYTHON")
    if not python:
        raise SystemExit("set IMAGE2_LIGER_PYTHON to the python of the Liger environment (tests/parity/liger_env.sh)")
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="image2-vs-liger-"))
    paths = write_inputs(folder, python)
    jobs = folder / "liger_jobs.json"
    batch = LigerBatch(folder / "liger")
    batch.pipeline("liger", [paths["sci"]], paths["dark"], paths["flat"], [paths["sky1"], paths["sky2"]])
    jobs.write_text(json.dumps(batch.jobs))
    liger_env = {k: v for k, v in os.environ.items() if not k.startswith(("CRDS_", "PYTHON"))}
    liger_env["CRDS_SERVER_URL"] = "https://crds-offline.invalid"
    ours_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    association = folder / "liger_asn.json"
    association.write_text(json.dumps({"SCI": [paths["sci"].name], "SKY": [paths["sky1"].name, paths["sky2"].name]}))
    output = folder / "out" / "sci_cal.fits"
    ours_command = [sys.executable, "-m", "image2", "--log-level", "WARNING", "process", str(association),
                    "--refs", str(folder / "refs"), "-o", str(output.parent), "--overwrite"]
    liger_runs, ours_runs = [], []
    for number in range(args.repeat):
        liger_runs.append(measured([python, str(DRIVER), str(jobs), str(folder / "liger_results.json")], liger_env))
        ours_runs.append(measured(ours_command, ours_env))
        print(f"round {number + 1}: Liger {liger_runs[-1][0]:6.1f} s {liger_runs[-1][1]:6.0f} MiB   "
              f"image2 {ours_runs[-1][0]:6.1f} s {ours_runs[-1][1]:6.0f} MiB", flush=True)
    liger_s, ours_s = (statistics.median(r[0] for r in runs) for runs in (liger_runs, ours_runs))
    liger_mib, ours_mib = (statistics.median(r[1] for r in runs) for runs in (liger_runs, ours_runs))
    print(f"median of {args.repeat}: Liger {liger_s:.1f} s, {liger_mib:.0f} MiB peak; image2 {ours_s:.1f} s, "
          f"{ours_mib:.0f} MiB peak; {liger_s / ours_s:.1f}x faster, {liger_mib / ours_mib:.1f}x less memory")
    from astropy.io import fits

    theirs = LigerDump.load(folder / "liger" / "liger" / "sci0")  # written by the last measured Liger run
    with fits.open(output) as hdul:
        print(f"same numbers: max rel DATA {relative_difference(hdul['DATA'].data, theirs.arrays['data']):.2g}, "
              f"ERR {relative_difference(hdul['ERR'].data, theirs.arrays['err']):.2g}")


if __name__ == "__main__":
    main()
