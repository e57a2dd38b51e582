"""image2 against the reference pipeline (jwst 3.0.0) on the demo's full-frame association.

Both calibrate the same inputs with the same reference files into _cal + _i2d; the figures are
processing times inside an already-started interpreter (jwst's per-job time from its driver,
image2's from process_input), medians over --repeat runs, and their ratio. The products are
compared too, so the speed is for the same numbers.

    IMAGE2_JWST_PYTHON=/path/to/jwst-venv/bin/python python -m benchmarks.bench_vs_jwst [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.bench_process import run
from image2.synthetic.demo import build
from tests.parity.jwst_harness import JwstBatch, product_differences

STEPS = {"assign_wcs": ("distortion", "filteroffset"), "flat_field": ("flat",), "photom": ("photom", "area")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    python = os.environ.get("IMAGE2_JWST_PYTHON")
    if not python:
        raise SystemExit("set IMAGE2_JWST_PYTHON to the python of an environment with jwst 3.0.0")
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="image2-vs-jwst-"))
    demo = build(folder / "demo")
    references = {p.name.split("_")[2]: p for p in demo.references.iterdir()}
    ours = [run(demo.association, demo.references, folder / "image2") for _ in range(args.repeat)]
    batch = JwstBatch(folder / "jwst")
    association = json.loads(demo.association.read_text())  # jwst opens members relative to its cwd
    for member in association["products"][0]["members"]:
        member["expname"] = str(demo.association.parent / member["expname"])
    absolute = folder / "jwst_asn.json"
    absolute.write_text(json.dumps(association))
    overrides = {step: {reftype: references[reftype] for reftype in reftypes} for step, reftypes in STEPS.items()}
    for number in range(args.repeat):
        batch.pipeline(f"run{number}", absolute, overrides=overrides)
    theirs = [result.check().seconds for result in batch.run(python).values()]
    image2_s = statistics.median(r["seconds"] for r in ours)
    jwst_s = statistics.median(theirs)
    print(f"image2 {image2_s:6.2f} s   jwst {jwst_s:6.2f} s   ratio {jwst_s / image2_s:4.1f}x  "
          f"(medians of {args.repeat}; image2 peak RSS {statistics.median(r['peak_mib'] for r in ours):.0f} MiB)")
    name = "jw02736001001_02101_00001_nrcb1"
    for suffix, arrays in (("_cal.fits", ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT", "AREA")),
                           ("_i2d.fits", ("SCI", "WHT", "CON", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"))):
        differences = product_differences(folder / "image2" / f"{name}{suffix}",
                                          folder / "jwst" / "run0" / f"{name}{suffix}", arrays=arrays)
        print(f"{suffix}: {'identical arrays' if not differences else differences}")


if __name__ == "__main__":
    main()
