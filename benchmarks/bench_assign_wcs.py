"""Benchmark assign_wcs: build the imaging gwcs and evaluate it on every pixel of a 2048×2048 frame.

Run: ``/work/venv/bin/python benchmarks/bench_assign_wcs.py [--repeat 7] [--profile]``

Reports medians (seconds, wall and CPU time; on a shared machine CPU time is the better guide) of:
* build       — assign_wcs with ``sip_approx=False`` (gwcs construction + S_REGION);
* evaluate    — ``wcs(x, y)`` on all 2048×2048 pixel centres, bounding box honoured (what
                resample's pixel map needs);
* evaluate, no box — the same with ``with_bounding_box=False`` (the box costs a mask + gather
                + scatter in astropy);
* SIP fit     — ``sip_header`` alone with the spec's defaults;
* whole step  — assign_wcs with the defaults (build + S_REGION + SIP fit).
``--profile`` adds the time of each WCS stage and a cProfile of one evaluation, by function,
to show what dominates.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from image2.core.assign_wcs import assign_wcs, sip_header  # noqa: E402
from image2.core.cards import Cards  # noqa: E402
from image2.core.exposure import Exposure  # noqa: E402
from image2.core.meta import ExposureInfo, Instrument, Meta, Pointing, Subarray  # noqa: E402
from image2.core.references import DistortionReference, FilterOffset, FilterOffsetReference  # noqa: E402
from image2.synthetic.references import default_distortion_model  # noqa: E402

SHAPE = (2048, 2048)


def exposure() -> Exposure:
    """A full-frame NIRCam rate exposure with JWST pointing keywords and an approximate SCI WCS."""
    zeros = np.zeros(SHAPE, np.float32)
    meta = Meta(
        instrument=Instrument(name="NIRCAM", detector="NRCB1", filter="F150W", pupil="CLEAR"),
        exposure=ExposureInfo(type="NRC_IMAGE"),
        subarray=Subarray(name="FULL", xstart=1, ystart=1, xsize=SHAPE[1], ysize=SHAPE[0]),
        pointing=Pointing(ra_ref=80.4875, dec_ref=-69.4975, roll_ref=12.5, v2_ref=-63.0, v3_ref=-490.0,
                          vparity=-1, v3i_yang=-0.55, va_scale=1.00001),
        cards={"SCI": Cards([("CRPIX1", 1024.5), ("CRPIX2", 1024.5)])},
    )
    return Exposure(sci=zeros, err=zeros, dq=np.zeros(SHAPE, np.uint32), meta=meta)


def median_time(function, repeat: int) -> tuple[tuple[float, float], object]:
    """Run ``function`` ``repeat`` times; return the median (wall, CPU) times and the last result.

    On a shared machine the CPU time of this (single-threaded) process is the better estimate
    of the wall time an idle machine would show.
    """
    wall, cpu, result = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return (statistics.median(wall), statistics.median(cpu)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    rate = exposure()
    distortion = DistortionReference("bench", default_distortion_model(SHAPE))
    offsets = FilterOffsetReference("bench", [FilterOffset("F150W", "CLEAR", 0.4, -1.25)])
    y, x = np.mgrid[0:SHAPE[0], 0:SHAPE[1]].astype(np.float64)

    build, built = median_time(lambda: assign_wcs(rate, distortion, offsets, sip_approx=False), args.repeat)
    wcs = built.wcs
    evaluate, _ = median_time(lambda: wcs(x, y), args.repeat)
    evaluate_free, _ = median_time(lambda: wcs(x, y, with_bounding_box=False), args.repeat)
    fit, _ = median_time(lambda: sip_header(wcs, [1024.5, 1024.5], max_pix_error=0.01, degree=None,
                                            max_inv_pix_error=0.01, inv_degree=None, npoints=12), args.repeat)
    whole, _ = median_time(lambda: assign_wcs(rate, distortion, offsets), args.repeat)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"frame {SHAPE[1]}x{SHAPE[0]}, median of {args.repeat} runs, seconds (load average {load:.1f})")
    print(f"  {'':28s}{'wall':>8s}{'cpu':>8s}")
    rows = [("build (no SIP)", build), ("evaluate, bounding box", evaluate), ("evaluate, no box", evaluate_free),
            ("build + evaluate (< 0.5)", (build[0] + evaluate[0], build[1] + evaluate[1])),
            ("SIP fit alone", fit), ("whole step (with SIP)", whole)]
    for label, (wall, cpu) in rows:
        print(f"  {label:28s}{wall:8.3f}{cpu:8.3f}")

    if args.profile:
        v2, v3 = wcs.get_transform("detector", "v2v3")(x, y, with_bounding_box=False)
        stages = [("detector -> v2v3 (distortion)", lambda: wcs.get_transform("detector", "v2v3")(x, y)),
                  ("v2v3 -> v2v3vacorr (DVA)", lambda: wcs.get_transform("v2v3", "v2v3vacorr")(v2, v3)),
                  ("v2v3vacorr -> world (sky)", lambda: wcs.get_transform("v2v3vacorr", "world")(v2, v3))]
        print("  stages, each on all pixels:")
        for label, function in stages:
            (wall, cpu), _ = median_time(function, args.repeat)
            print(f"  {label:28s}{wall:8.3f}{cpu:8.3f}")
        profiler = cProfile.Profile()
        profiler.enable()
        wcs(x, y)
        profiler.disable()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(14)
        print(stream.getvalue())


if __name__ == "__main__":
    main()
