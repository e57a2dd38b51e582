"""Benchmark the reference store: index 2,000 reference headers, then select references.

Run: ``/work/venv/bin/python benchmarks/bench_reference_store.py [--files 2000] [--repeat 3] [--lookups 1000]``

The folder holds CRDS-like references: FITS flats (NIRCam per detector/filter/pupil, MIRI and
NIRISS per filter), NIRCam photom and area files (8×8 arrays), and one file in five ASDF
(distortion with a full polynomial model, or filteroffset); each selection combination is
repeated with later USEAFTER dates, as a CRDS cache accumulates deliveries. Reported:
* cold build — a new store with an empty cache: every header read, index written (target < 10 s);
* warm build — a new store reusing the on-disk index: every file stat'ed, no header read;
* lookup — ``select`` for a random exposure and reference type on a built store (target < 5 ms).
Medians over ``--repeat`` builds and ``--lookups`` selections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from image2.core.meta import ExposureInfo, Instrument, Meta, Subarray  # noqa: E402
from image2.io.refs.store import ReferenceStore  # noqa: E402
from image2.synthetic.references import (  # noqa: E402
    make_area,
    make_distortion,
    make_filteroffset,
    make_flat,
    make_photom,
)

NIRCAM = [f"NRC{m}{n}" for m in "AB" for n in "12345"]
FILTERS = ["F070W", "F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F444W"]
PUPILS = ["CLEAR", "F162M"]
SMALL = (8, 8)
FIRST_USEAFTER = dt.datetime(2021, 1, 1)


def _writers() -> list[tuple[list[tuple[str, ...]], Callable[..., Path]]]:
    """(combinations of selection values, writer) for each kind, cycled through by file number."""
    def flat(kind: str, instrument_keys: dict[str, object]):
        return lambda path, combo, useafter: make_flat(path, SMALL, useafter=useafter,
                                                       **instrument_keys, **dict(zip(kind.split(), combo)))
    return [
        ([(d,) for d in NIRCAM], lambda path, c, u: make_distortion(path.with_suffix(".asdf"), detector=c[0],
                                                                    useafter=u)),
        ([(d, f, p) for d in NIRCAM for f in FILTERS for p in PUPILS], flat("detector filter pupil", {})),
        ([(f,) for f in FILTERS], flat("filter", {"detector": "MIRIMAGE", "pupil": None, "exp_type": "MIR_IMAGE"})),
        ([(f,) for f in FILTERS], flat("filter", {"detector": "NIS", "pupil": "CLEARP", "exp_type": "NIS_IMAGE"})),
        ([(d,) for d in NIRCAM], lambda path, c, u: make_photom(path, "NIRCAM", detector=c[0], useafter=u)),
        ([(d, f) for d in NIRCAM for f in FILTERS], lambda path, c, u: make_area(path, SMALL, detector=c[0],
                                                                                  filter=c[1], useafter=u)),
        ([(d,) for d in NIRCAM], lambda path, c, u: make_filteroffset(path.with_suffix(".asdf"), detector=c[0],
                                                                      useafter=u)),
    ]


KINDS = (0, 1, 1, 1, 1, 2, 3, 4, 5, 6)
"""Writer of each file number modulo 10: NIRCam flats are 4 files in 10, every other kind 1 in 10."""


def build_folder(folder: Path, count: int) -> None:
    """Write ``count`` references: each kind cycles through its selection combinations, and each
    repeat of a combination gets a USEAFTER 45 days later (so no two files tie)."""
    writers = _writers()
    seen = [0] * len(writers)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        combos, write = writers[kind]
        n = seen[kind]
        seen[kind] += 1
        useafter = (FIRST_USEAFTER + dt.timedelta(days=45 * (n // len(combos)))).isoformat()
        write(folder / f"jwst_{i:05d}_{kind}.fits", combos[n % len(combos)], useafter)


def random_exposure(rng: random.Random) -> Meta:
    detector = rng.choice(NIRCAM)
    return Meta(
        instrument=Instrument(name="NIRCAM", detector=detector, filter=rng.choice(FILTERS),
                              pupil=rng.choice(PUPILS), module=detector[3],
                              channel="LONG" if detector.endswith("5") else "SHORT"),
        exposure=ExposureInfo(type="NRC_IMAGE", date_obs=f"{rng.choice([2021, 2022, 2023, 2024])}-09-01",
                              time_obs="00:00:00"),
        subarray=Subarray(name=rng.choice(["FULL", "SUB640"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lookups", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "refs"
        folder.mkdir()
        started = time.perf_counter()
        build_folder(folder, args.files)
        print(f"wrote {args.files} reference files in {time.perf_counter() - started:.1f} s "
              f"({sum(1 for p in folder.iterdir() if p.suffix == '.asdf')} ASDF)")

        cold = []
        for run in range(args.repeat):
            started = time.perf_counter()
            store = ReferenceStore([folder], root / f"cache{run}", use_crds=False)
            cold.append(time.perf_counter() - started)
        warm = []
        for _ in range(max(args.repeat, 5)):
            started = time.perf_counter()
            store = ReferenceStore([folder], root / "cache0", use_crds=False)
            warm.append(time.perf_counter() - started)
        print(f"indexed files: {len(store)}")

        rng = random.Random(7)
        queries = [(random_exposure(rng), rng.choice(["flat", "photom", "area", "distortion", "filteroffset"]))
                   for _ in range(args.lookups)]
        times, chosen, ambiguous = [], 0, 0
        for meta, reftype in queries:
            started = time.perf_counter()
            choice = store.select(meta, reftype)
            times.append(time.perf_counter() - started)
            chosen += choice.path is not None
            ambiguous += bool(choice.ambiguous)
        times.sort()
        print(f"cold build   median {statistics.median(cold):.3f} s  (runs: {', '.join(f'{t:.3f}' for t in cold)})"
              f"  target < 10 s")
        print(f"warm build   median {statistics.median(warm):.3f} s  (index reused, {len(warm)} runs)")
        print(f"lookup       median {statistics.median(times) * 1e3:.3f} ms  p95 "
              f"{times[int(0.95 * len(times))] * 1e3:.3f} ms  max {times[-1] * 1e3:.3f} ms  "
              f"({len(times)} lookups: {chosen} chosen, {ambiguous} ambiguous)  target < 5 ms")


if __name__ == "__main__":
    main()
