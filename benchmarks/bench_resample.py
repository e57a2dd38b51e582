"""Benchmark resample: a full-frame 2048×2048 ``_cal`` file → ``_i2d`` written.

Run: ``/work/venv/bin/python benchmarks/bench_resample.py [--repeat 5] [--variants] [--accuracy]``

Every repetition runs in a fresh process (so peak RSS is that of one real run) and reports:
* total    — read the cal file, resample with the defaults, write the i2d (wall seconds);
* cpu      — user+system CPU seconds of the same (less sensitive to a busy machine);
* resample — the resample call alone; of which pixel map, and drizzle (SCI and the 3
             variances: one fused pass, or drizzle's passes when the kernel is not built);
* write    — ``write_i2d`` (FITS + ASDF, fsync'd atomic write);
* peak RSS — ``ru_maxrss`` of the process (imports included).
The first file a process reads also loads asdf's gwcs/astropy converters (~0.5 s of "read"),
so each process then converts the file a second time: "again in the same process" is the
steady state of a long-running process (watch mode). Medians over the repetitions are
printed, with the machine's load average.

``--variants`` also times squared-weight variances, ``enable_err=False`` and a coarse pixel
map. ``--accuracy`` prints, for pixmap_stepsize 4…64 and orders 1 and 3, the pixel-map time
and its largest error (output pixels) against the exact map, for the file's cubic distortion
and for the same with a 5th-order field distortion added (as real JWST distortions have).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPE = (2048, 2048)


def make_cal(path: Path) -> Path:
    """Write a full-frame NIRCam cal file with a gwcs, S_REGION, sources, flags and variances."""
    import numpy as np

    from image2.io.fits import write_exposure
    from tests.resample_inputs import cal_exposure, gaussian_image

    rng = np.random.default_rng(7)
    sci = (1.5 + rng.normal(0.0, 0.05, SHAPE)).astype(np.float32)
    for x, y in rng.uniform(50, 2000, (40, 2)):
        sci[int(y) - 12:int(y) + 13, int(x) - 12:int(x) + 13] += gaussian_image((25, 25), 12 + x % 1, 12 + y % 1, 1.6, 30.0)
    dq = np.zeros(SHAPE, np.uint32)
    dq[:, :4] = dq[:, -4:] = dq[:4] = dq[-4:] = 512 | 2**31  # reference pixels
    dq.reshape(-1)[rng.choice(sci.size, 4000, replace=False)] |= 1
    return write_exposure(cal_exposure(SHAPE, (1, 1), sci=sci, dq=dq), path, overwrite=True)


def child(cal: Path, out: Path, parameters: dict) -> dict:
    """One timed run in this process: read → resample → write; returns the timings."""
    import image2.core.resample as resample_module
    from image2.io.fits import read_exposure
    from image2.io.i2d import write_i2d

    spent = {"pixmap": 0.0, "drizzle": 0.0}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    resample_module.pixel_map = timed("pixmap", resample_module.pixel_map)
    resample_module.drizzle_passes = timed("drizzle", resample_module.drizzle_passes)
    runs = []
    for _ in range(2):  # cold (the first file of a process), then warm (as in watch mode)
        spent.update(pixmap=0.0, drizzle=0.0)
        cpu0, start = time.process_time(), time.perf_counter()
        exposure = read_exposure(cal)
        t_read = time.perf_counter()
        i2d = resample_module.resample(exposure, **parameters)
        t_resample = time.perf_counter()
        write_i2d(i2d, out, overwrite=True)
        end = time.perf_counter()
        runs.append({"total": end - start, "cpu": time.process_time() - cpu0, "read": t_read - start,
                     "resample": t_resample - t_read, "write": end - t_resample, **spent,
                     "shape": list(i2d.shape)})
        del exposure, i2d
    cold, warm = runs
    return {**cold, "warm_total": warm["total"], "warm_read": warm["read"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_children(cal: Path, out: Path, parameters: dict, repeat: int) -> list[dict]:
    runs = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, __file__, "--child", str(cal), str(out), json.dumps(parameters)],
                              check=True, capture_output=True, text=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def report(label: str, runs: list[dict]) -> None:
    med = {key: statistics.median(r[key] for r in runs) for key in
           ("total", "cpu", "read", "resample", "pixmap", "drizzle", "write", "peak_rss_mb", "warm_total",
            "warm_read")}
    print(f"{label}: output {runs[0]['shape'][1]}×{runs[0]['shape'][0]}, {len(runs)} runs, medians:")
    print(f"  total {med['total']:.2f} s (cpu {med['cpu']:.2f} s) = read {med['read']:.2f} + resample "
          f"{med['resample']:.2f} + write {med['write']:.2f}")
    print(f"  again in the same process: total {med['warm_total']:.2f} s (read {med['warm_read']:.2f} s)")
    print(f"  resample: pixel map {med['pixmap']:.2f} s ({100 * med['pixmap'] / med['total']:.0f}% of total), "
          f"drizzle {med['drizzle']:.2f} s ({100 * med['drizzle'] / med['total']:.0f}%)")
    print(f"  peak RSS {med['peak_rss_mb']:.0f} MB (max {max(r['peak_rss_mb'] for r in runs):.0f} MB)")


def quintic_wcs():
    """The benchmark's gwcs with an extra 4th/5th-order field distortion (~1.3 px at the corners)."""
    from astropy.modeling import models

    from image2.synthetic.references import default_distortion_model
    from tests.resample_inputs import imaging_wcs

    centre = (SHAPE[1] - 1) / 2
    warp = (models.Shift(-centre) & models.Shift(-centre)) | models.Mapping((0, 1, 0, 1)) | (
        models.Polynomial2D(5, c1_0=1, c5_0=1.2e-15, c3_2=-0.8e-15, c1_4=0.6e-15, c4_0=-0.9e-13)
        & models.Polynomial2D(5, c0_1=1, c0_5=1.1e-15, c2_3=0.7e-15, c4_1=-0.5e-15, c0_4=0.8e-13)) | (
        models.Shift(centre) & models.Shift(centre))
    warp.inverse = models.Identity(2)  # only used to locate RA_REF for the pixel scale
    base = default_distortion_model(SHAPE)
    distortion = warp | base
    distortion.bounding_box = base.bounding_box
    return imaging_wcs(SHAPE, distortion=distortion)


def accuracy(cal: Path) -> None:
    """Time and error of the coarse pixel map against the exact one, for two distortions."""
    import numpy as np

    from image2.core.resample import Resampled, pixel_map, resample
    from image2.io.fits import read_exposure

    exposure = read_exposure(cal)
    for label, wcs in (("cubic distortion (the benchmark file)", exposure.wcs),
                       ("with a 5th-order field distortion added", quintic_wcs())):
        i2d = resample(exposure.evolve(wcs=wcs), enable_err=False)
        assert isinstance(i2d, Resampled)
        start = time.perf_counter()
        exact = pixel_map(wcs, i2d.wcs, exposure.shape)
        print(f"pixel map, {label}: exact {time.perf_counter() - start:.2f} s")
        for order in (1, 3):
            for step in (4, 8, 16, 32, 64):
                start = time.perf_counter()
                coarse = pixel_map(wcs, i2d.wcs, exposure.shape, stepsize=step, order=order)
                seconds = time.perf_counter() - start
                print(f"  stepsize {step:>2}, order {order}: {seconds:.2f} s, max error "
                      f"{np.nanmax(np.abs(coarse - exact)):.1e} px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("CAL", "OUT", "PARAMETERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cal, out, parameters = args.child
        print(json.dumps(child(Path(cal), Path(out), json.loads(parameters))))
        return
    with tempfile.TemporaryDirectory(prefix="bench_resample_") as tmp:
        cal = make_cal(Path(tmp) / "bench_cal.fits")
        out = Path(tmp) / "bench_i2d.fits"
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores)")
        report("defaults", run_children(cal, out, {}, args.repeat))
        if args.variants:
            for label, parameters in (("squared-weight variances", {"variance_mode": "squared_weights"}),
                                      ("enable_err=False", {"enable_err": False}),
                                      ("pixmap_stepsize=16", {"pixmap_stepsize": 16.0})):
                report(label, run_children(cal, out, parameters, args.repeat))
        if args.accuracy:
            accuracy(cal)
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
