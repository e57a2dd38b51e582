"""Benchmark ``image2 refs`` work against a CRDS cache: 20 exposures, 20,000 references plus mappings.

Run: ``/work/main/.venv/bin/python benchmarks/bench_crds_refs.py [--files 20000] [--exposures 20] [--cache DIR]``

The cache (``$CRDS_PATH`` layout, kept in ``--cache DIR`` when given, reused when it exists) holds
``--files`` references in ``references/jwst/<instrument>/``: header-only FITS files and small
ASDF files, of the five imaging types image2 needs (a quarter) and ten other types (darks,
gains, ...), each selection combination delivered in several versions with later USEAFTER
dates; and ``mappings/jwst/`` with two contexts (.pmap), one .imap per instrument and one
.rmap per instrument and type, whose rows list every version (``Match`` + ``UseAfter``).
The exposures are small rate files of NIRCam (imaging and NRC_TSIMAGE), MIRI and NIRISS.

Set-up is split into importing image2 and opening the reference source (rules: the cache
located and the context named; header match: the index loaded and every file's mtime and size
checked). Per exposure, what ``image2 refs`` does: read the exposure's headers (only), choose every needed
type and say where each came from (``reference_origins``). Each mode runs in fresh processes:
* rules — the rmaps of the newest context (crds): cold = first pass in a new process (crds
  imported, the needed rmaps parsed on first use), warm = a second pass in that process;
* header match — no mappings, the ReferenceStore over ``references/jwst``: first run with an
  empty index (every header read once), then a new process reusing the on-disk index (cold),
  its second pass (warm), and the number of headers each run re-read (must be 0 once
  indexed, 1 after one file changed). Target: < 50 ms per exposure warm.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from image2.synthetic.crds_cache import (  # noqa: E402
    IMAGING_PARKEYS,
    write_imap,
    write_pmap,
    write_rmap,
    write_server_config,
)

NIRCAM_SHORT = [f"NRC{m}{n}" for m in "AB" for n in "1234"]
NIRCAM_LONG = ["NRCALONG", "NRCBLONG"]
INSTRUMENTS = {
    "NIRCAM": {"detectors": NIRCAM_SHORT + NIRCAM_LONG, "image": "NRC_IMAGE", "rule": "NRC_IMAGE|NRC_TSIMAGE",
               "filters": {d: ["F070W", "F090W", "F115W", "F150W", "F200W"] for d in NIRCAM_SHORT}
               | {d: ["F277W", "F356W", "F444W"] for d in NIRCAM_LONG}, "pupil": "CLEAR"},
    "MIRI": {"detectors": ["MIRIMAGE"], "image": "MIR_IMAGE", "rule": "MIR_IMAGE",
             "filters": {"MIRIMAGE": ["F560W", "F770W", "F1000W", "F1130W", "F1280W", "F1500W", "F1800W",
                                      "F2100W", "F2550W"]}, "pupil": "N/A"},
    "NIRISS": {"detectors": ["NIS"], "image": "NIS_IMAGE", "rule": "NIS_IMAGE",
               "filters": {"NIS": ["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F444W"]},
               "pupil": "CLEARP"},
}
OTHER_TYPES = ("dark", "gain", "readnoise", "superbias", "linearity", "saturation", "mask", "ipc", "persat",
               "trapdensity")
SUBARRAYS = ("FULL", "SUB64P", "SUB160", "SUB400P", "SUBGRISM64", "SUB640")
FIRST_USEAFTER = dt.datetime(2021, 1, 1)
CONTEXTS = ("jwst_0001.pmap", "jwst_0002.pmap")


def _card(key: str, value: object) -> bytes:
    if isinstance(value, bool):
        text = f"{key:<8}= {'T' if value else 'F':>20}"
    elif isinstance(value, int):
        text = f"{key:<8}= {value:>20}"
    else:
        text = f"{key:<8}= '{str(value):<8}'"
    return f"{text:<80}".encode()


def write_fits_header(path: Path, cards: dict[str, object]) -> None:
    """Write a FITS file that is only a PRIMARY header (NAXIS=0) with ``cards``."""
    block = b"".join(_card(k, v) for k, v in {"SIMPLE": True, "BITPIX": 8, "NAXIS": 0, **cards}.items())
    block += f"{'END':<80}".encode()
    block += b" " * (-len(block) % 2880)
    path.write_bytes(block)


def write_asdf_meta(path: Path, meta: dict[str, object]) -> None:
    """Write a small ASDF file whose tree is only ``meta`` (block-style YAML)."""
    lines = ["#ASDF 1.0.0", "#ASDF_STANDARD 1.5.0", "%YAML 1.1", "%TAG ! tag:stsci.edu:asdf/",
             "--- !core/asdf-1.1.0", "meta:"]
    for key, value in meta.items():
        if isinstance(value, dict):
            lines.append(f"  {key}:")
            lines += [f"    {k}: '{v}'" for k, v in value.items()]
        else:
            lines.append(f"  {key}: '{value}'")
    path.write_text("\n".join([*lines, "...", ""]))


def combinations(instrument: str) -> dict[str, list[dict[str, str]]]:
    """{reftype: [selection values, ...]} of one instrument's references."""
    spec = INSTRUMENTS[instrument]
    per_filter = [{"DETECTOR": d, "FILTER": f} for d in spec["detectors"] for f in spec["filters"][d]]
    per_detector = [{"DETECTOR": d} for d in spec["detectors"]]
    out = {"flat": per_filter, "area": per_filter, "photom": per_detector, "distortion": per_detector,
           "filteroffset": per_detector}
    for reftype in OTHER_TYPES:
        out[reftype] = [{"DETECTOR": d, "SUBARRAY": s} for d in spec["detectors"] for s in SUBARRAYS]
    return out


def build_cache(root: Path, files: int) -> None:
    """Write ``files`` references (a quarter of imaging types) and the rules that select them."""
    kinds = [(i, t, c) for i in INSTRUMENTS for t, cs in combinations(i).items() for c in cs]
    imaging = [k for k in kinds if k[1] in IMAGING_PARKEYS]
    other = [k for k in kinds if k[1] not in IMAGING_PARKEYS]
    plan = ([imaging[n % len(imaging)] for n in range(files // 4)]
            + [other[n % len(other)] for n in range(files - files // 4)])
    rows: dict[tuple[str, str], dict[tuple[str, ...], dict[str, str]]] = {}
    versions: dict[tuple, int] = {}
    for serial, (instrument, reftype, values) in enumerate(plan):
        spec = INSTRUMENTS[instrument]
        key = (instrument, reftype, tuple(values.items()))
        version = versions.get(key, 0)
        versions[key] = version + 1
        useafter = FIRST_USEAFTER + dt.timedelta(days=40 * version)
        suffix = ".asdf" if reftype in ("distortion", "filteroffset") else ".fits"
        name = f"jwst_{instrument.lower()}_{reftype}_{serial:05d}{suffix}"
        folder = root / "references" / "jwst" / instrument.lower()
        folder.mkdir(parents=True, exist_ok=True)
        detector = values["DETECTOR"]
        if suffix == ".asdf":
            instrument_meta = {"name": instrument, "detector": detector}
            if instrument == "NIRCAM":
                instrument_meta |= {"module": detector[3], "channel": "LONG" if "LONG" in detector else "SHORT"}
            write_asdf_meta(folder / name, {"reftype": reftype, "useafter": useafter.isoformat(),
                                            "instrument": instrument_meta, "exposure": {"type": spec["image"]}})
        else:
            cards = {"TELESCOP": "JWST", "INSTRUME": instrument, "REFTYPE": reftype.upper(),
                     "USEAFTER": useafter.isoformat(), **values}
            if reftype in ("flat", "area", "photom"):
                cards["EXP_TYPE"] = spec["image"]
            if reftype in ("flat", "area") and spec["pupil"] != "N/A":
                cards["PUPIL"] = spec["pupil"]
            write_fits_header(folder / name, cards)
        match = _match_values(reftype, values, spec)
        rows.setdefault((instrument, reftype), {}).setdefault(match, {})[
            useafter.strftime("%Y-%m-%d %H:%M:%S")] = name
    mappings = root / "mappings" / "jwst"
    for instrument in INSTRUMENTS:
        rmaps = {}
        for reftype in combinations(instrument):
            name = f"jwst_{instrument.lower()}_{reftype}_0001.rmap"
            parkeys = IMAGING_PARKEYS.get(reftype, ("META.INSTRUMENT.DETECTOR", "META.SUBARRAY.NAME"))
            write_rmap(mappings, name, instrument, reftype, parkeys, rows.get((instrument, reftype), {}))
            rmaps[reftype] = name
        for context in CONTEXTS:
            write_imap(mappings, f"jwst_{instrument.lower()}_{context[5:9]}.imap", instrument, rmaps)
    for context in CONTEXTS:
        write_pmap(mappings, context, {i: f"jwst_{i.lower()}_{context[5:9]}.imap" for i in INSTRUMENTS})
    write_server_config(root, CONTEXTS[-1])


def _match_values(reftype: str, values: dict[str, str], spec: dict) -> tuple[str, ...]:
    """The rmap row of a reference: its selection values in the order of the type's parameters."""
    if reftype in ("flat", "area"):
        return values["DETECTOR"], values["FILTER"], spec["pupil"], spec["rule"]
    if reftype == "distortion":
        return values["DETECTOR"], "CLEAR|F162M" if spec["pupil"] == "CLEAR" else "N/A", spec["rule"]
    if reftype in ("photom", "filteroffset"):
        return values["DETECTOR"], spec["rule"]
    return values["DETECTOR"], values["SUBARRAY"]


def write_exposures(folder: Path, count: int) -> list[Path]:
    """Small rate files: NIRCam imaging and TSO on every detector, MIRI and NIRISS imaging."""
    from image2.synthetic.exposures import make_rate

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        instrument = ("NIRCAM", "NIRCAM", "NIRCAM", "MIRI", "NIRISS")[n % 5]
        spec = INSTRUMENTS[instrument]
        detector = spec["detectors"][n % len(spec["detectors"])]
        filters = spec["filters"][detector]
        tso = instrument == "NIRCAM" and n % 2 == 0
        cards = {"INSTRUME": instrument, "DETECTOR": detector, "FILTER": filters[n % len(filters)],
                 "EXP_TYPE": "NRC_TSIMAGE" if tso else spec["image"], "TSOVISIT": tso,
                 "DATE-OBS": f"{2022 + n % 3}-0{1 + n % 9}-15", "SUBARRAY": "SUB64P"}
        if instrument == "NIRCAM":
            cards |= {"PUPIL": "CLEAR", "MODULE": detector[3], "CHANNEL": "LONG" if "LONG" in detector else "SHORT"}
        else:
            cards["PUPIL"] = spec["pupil"]
        paths.append(make_rate(folder / f"jw_{n:02d}_rate.fits", (64, 64), primary=cards))
    return paths


def child(mode: str, cache: Path, exposures: list[Path], index: Path) -> dict[str, object]:
    """Measure one process: set-up, then two passes over the exposures; count headers read."""
    started = time.perf_counter()
    from image2.io.refs import index as reference_index
    from image2.io.refs.crds import reference_selector
    from image2.io.fits import open_exposure
    from image2.io.refs.origins import describe_origins, reference_origins

    reads = []
    scan = reference_index.scan_file
    reference_index.scan_file = lambda *args: reads.append(args[0]) or scan(*args)
    environ = {"XDG_CACHE_HOME": str(index)}
    imported = time.perf_counter() - started
    if mode == "rules":
        selector = reference_selector(crds_path=cache, environ=environ)
    else:
        selector = reference_selector([cache / "references" / "jwst"], environ=environ)
    setup = time.perf_counter() - started
    setup_reads = len(reads)
    passes, filled = [], 0
    for _ in range(2):
        times = []
        for path in exposures:
            begun = time.perf_counter()
            with open_exposure(path, headers_only=True) as handle:
                meta = handle.meta
            read = time.perf_counter()
            origins = reference_origins(meta, selector)
            describe_origins(path, meta, origins)
            times.append((read - begun, time.perf_counter() - read))
            filled += sum(o.path is not None for o in origins.values())
        passes.append(times)
    return {"setup": setup, "imports": imported, "setup_reads": setup_reads, "cold": passes[0], "warm": passes[1],
            "reads": len(reads), "filled": filled // 2}


def run_child(mode: str, cache: Path, exposures: list[Path], index: Path) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--cache", str(cache), "--index", str(index),
               *map(str, exposures)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(label: str, figures: dict) -> None:
    """Print one mode's figures: set-up, then per exposure choosing alone and with the header read."""
    def ms(values: list[float]) -> str:
        return f"{statistics.mean(values) * 1e3:6.1f}"

    cold, warm = figures["cold"], figures["warm"]
    print(f"{label}\n  set-up {figures['setup']:6.2f} s (imports {figures['imports']:5.2f} s, opening the source "
          f"{figures['setup'] - figures['imports']:5.2f} s), {figures['setup_reads']} reference headers read; "
          f"{figures['filled']}/{len(cold) * 5} types filled; headers read while choosing: "
          f"{figures['reads'] - figures['setup_reads']}")
    for name, times in (("cold", cold), ("warm", warm)):
        choose = [c for _, c in times]
        total = [r + c for r, c in times]
        print(f"  {name}: choose mean {ms(choose)} ms (first {choose[0] * 1e3:7.1f}, max {max(choose) * 1e3:6.1f}); "
              f"read header + choose mean {ms(total)} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--exposures", type=int, default=20)
    parser.add_argument("--cache", type=Path, help="keep (or reuse) the generated CRDS cache here")
    parser.add_argument("--child", choices=("rules", "header"), help=argparse.SUPPRESS)
    parser.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.cache, args.paths, args.index)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cache = args.cache or work / "crds_cache"
        if not (cache / "mappings" / "jwst" / CONTEXTS[-1]).is_file():
            started = time.perf_counter()
            build_cache(cache, args.files)
            print(f"wrote {args.files} references and their rules in {time.perf_counter() - started:.1f} s")
        references = sum(1 for _ in (cache / "references" / "jwst").rglob("jwst_*"))
        mappings = sum(1 for _ in (cache / "mappings" / "jwst").iterdir())
        print(f"cache {cache}: {references} references, {mappings} mapping files")
        exposures = write_exposures(work / "exposures", args.exposures)
        report("rules (crds, newest context)", run_child("rules", cache, exposures, work / "index-rules"))
        index = work / "index-header"
        report("header match, empty index", run_child("header", cache, exposures, index))
        report("header match, index on disk", run_child("header", cache, exposures, index))
        touched = next((cache / "references" / "jwst" / "nircam").glob("*_flat_*.fits"))
        os.utime(touched, ns=(time.time_ns(), time.time_ns()))
        report("header match, one file touched", run_child("header", cache, exposures, index))


if __name__ == "__main__":
    main()
