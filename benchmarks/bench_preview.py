"""Benchmark the quick-look PNG of a full frame in both orientations (issue 17: under 1 s).

By default a synthetic 2048 x 2048 field (noise, a few hundred stars, a rotated TAN WCS);
``--product FILE`` times a real ``_cal`` or ``_i2d`` instead (e.g. the demo's). Each figure is
the median of ``--repeat`` renders in one process (wall clock and CPU time), after a first
render that pays for importing matplotlib and loading fonts (reported apart).

Run: ``python benchmarks/bench_preview.py [--product FILE] [--repeat N] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from image2.io.preview import ORIENTATIONS, QuickLook, quick_look, render  # noqa: E402


def synthetic(size: int = 2048) -> QuickLook:
    """A full frame of sky noise and stars with a TAN WCS rotated by 37 degrees."""
    from astropy.wcs import WCS

    rng = np.random.default_rng(3)
    image = rng.normal(0.2, 0.01, (size, size)).astype(np.float32)
    ys, xs = rng.uniform(0, size, (2, 400))
    for x, y, flux in zip(xs, ys, rng.lognormal(0, 1.5, 400)):
        x0, y0 = int(x), int(y)
        image[max(y0 - 3, 0):y0 + 4, max(x0 - 3, 0):x0 + 4] += flux
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.16, -27.78]
    wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    scale, angle = 0.031 / 3600.0, math.radians(37.0)
    wcs.wcs.cd = [[-scale * math.cos(angle), scale * math.sin(angle)],
                  [scale * math.sin(angle), scale * math.cos(angle)]]
    return QuickLook(image, "synthetic_i2d.fits", "MJy/sr", "NIRCAM NRCB1   F150W   1030.73 s   2023-02-25", wcs,
                     "resampled")


def load(path: Path) -> QuickLook:
    if path.name.endswith("_i2d.fits"):
        from image2.io.i2d import read_i2d

        return quick_look(read_i2d(path), path.name)
    from image2.io.fits import read_exposure

    return quick_look(read_exposure(path), path.name)


def timed(look: QuickLook, orientation: str) -> tuple[float, float, bytes]:
    wall, cpu = time.perf_counter(), time.process_time()
    png = render(look, orientation)
    return time.perf_counter() - wall, time.process_time() - cpu, png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--product", type=Path, help="a _cal or _i2d file to render (default: synthetic)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the PNGs there, to look at")
    args = parser.parse_args()
    look = load(args.product) if args.product else synthetic()
    wall, cpu, _ = timed(look, "native")
    load_avg = os.getloadavg()
    print(f"{look.title} {look.image.shape[1]} x {look.image.shape[0]}; load average {load_avg[0]:.2f} "
          f"on {os.cpu_count()} cores")
    print(f"  first render (imports matplotlib, loads fonts): wall {wall:.3f} s, cpu {cpu:.3f} s")
    for orientation in ORIENTATIONS:
        runs = [timed(look, orientation) for _ in range(args.repeat)]
        print(f"  {orientation:<9} median of {args.repeat}: wall {statistics.median(r[0] for r in runs):.3f} s, "
              f"cpu {statistics.median(r[1] for r in runs):.3f} s, {len(runs[-1][2]) / 1e3:.0f} kB")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{Path(look.title).stem}-{orientation}.png").write_bytes(runs[-1][2])


if __name__ == "__main__":
    main()
