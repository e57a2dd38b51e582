"""image2 against the reference pipeline (jwst 3.0.0): whole processes, batches, the daemon, memory.

All on the demo's full-frame NIRCam data with explicit reference files, every figure a median
over repetitions, with the jwst/image2 ratio:

(a) cold one-shot: interleaved pairs of whole processes (interpreter start, imports, the
    association with its two background members → _cal + _i2d, exit): ``image2 process`` and
    jwst's Image2Pipeline (tests/parity/jwst_driver.py, one job);
(b) batch: 10 full-frame rate files with both tools using both cores — jwst as 2 parallel
    processes of 5 files each, image2 as one ``image2 process --jobs 2``; wall time and
    throughput, and image2's scaling: the same batch in one process held to one core;
(c) warm latency: ``image2 watch`` already running; from a rate file closed in the watched
    folder to its _i2d published, against jwst's cold one-shot time of the same file;
and the peak memory (summed RSS) of each side's whole process tree, children included,
sampled every 20 ms. The products of (a) are compared array by array.

    IMAGE2_JWST_PYTHON=/path/to/jwst-venv/bin/python python -m benchmarks.bench_vs_jwst [--repeat 3]

The machine's load average is printed before and after: on a shared machine the wall times
move with it, the ratios less so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from image2.core.parallel import CORES_VARIABLE
from image2.synthetic.demo import build
from tests.parity.jwst_harness import product_differences

STEPS = {"assign_wcs": ("distortion", "filteroffset"), "flat_field": ("flat",), "photom": ("photom", "area")}
DRIVER = Path(__file__).resolve().parents[1] / "tests" / "parity" / "jwst_driver.py"
PRODUCT = "jw02736001001_02101_00001_nrcb1"
BATCH = 10


def _tree_rss_kib(root: int) -> int:
    """Summed resident memory (KiB) of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/status") as status:
                rss[int(entry)] = next((int(line.split()[1]) for line in status if line.startswith("VmRSS")), 0)
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return total


def measured(commands: Sequence[Sequence[str]], *, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run commands in parallel as whole processes; their wall time and the peak summed RSS (MiB) of their trees."""
    started = time.perf_counter()
    procs = [subprocess.Popen(list(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for command in commands]
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(_tree_rss_kib(proc.pid) for proc in procs))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    errors = [proc.communicate()[1] for proc in procs]
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    for proc, error in zip(procs, errors, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"{proc.args[:4]}... failed ({proc.returncode}): {error.decode()[-2000:]}")
    return {"wall": wall, "peak_mib": peak / 1024}


def image2_command(inputs: Sequence[Path], out: Path, refs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "image2", "process", *map(str, inputs), "-o", str(out), "--refs", str(refs),
            "--overwrite", "-q", *extra]


def jwst_command(python: str, folder: Path, inputs: Sequence[Path], out: Path, refs: dict[str, Path]) -> list[str]:
    """The jwst driver on one pipeline job per input, saving into ``out``."""
    overrides = {step: {reftype: str(refs[reftype]) for reftype in reftypes} for step, reftypes in STEPS.items()}
    jobs = [{"name": path.stem, "kind": "pipeline", "input": str(path), "output_dir": str(out),
             "overrides": overrides} for path in inputs]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "jobs.json").write_text(json.dumps(jobs))
    return [python, str(DRIVER), str(folder / "jobs.json"), str(folder / "results.json")]


def jwst_ok(folder: Path) -> None:
    failed = [r for r in json.loads((folder / "results.json").read_text()) if not r["ok"]]
    if failed:
        raise RuntimeError(f"jwst failed: {failed[0]['error'][-2000:]}")


def absolute_association(association: Path, folder: Path) -> Path:
    """The association with absolute member paths (jwst opens members relative to its working folder)."""
    content = json.loads(association.read_text())
    for member in content["products"][0]["members"]:
        member["expname"] = str(association.parent / member["expname"])
    path = folder / "jwst_asn.json"
    path.write_text(json.dumps(content))
    return path


def batch_inputs(science: Path, folder: Path) -> list[Path]:
    """BATCH copies of the science rate file under distinct exposure numbers."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(1, BATCH + 1):
        path = folder / f"jw02736001001_02101_{number + 10:05d}_nrcb1_rate.fits"
        shutil.copyfile(science, path)
        paths.append(path)
    return paths


def warm_latency(science: Path, refs: Path, folder: Path, repeat: int) -> dict[str, float]:
    """``image2 watch`` running: seconds from a rate file closed in its folder to its _i2d published."""
    incoming, out = folder / "incoming", folder / "out"
    incoming.mkdir(parents=True)
    out.mkdir()
    daemon = subprocess.Popen([sys.executable, "-m", "image2", "watch", str(incoming), "-o", str(out), "--refs",
                               str(refs)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latencies, peak = [], 0
    try:
        time.sleep(5.0)  # imports and the first folder scan
        for number in range(repeat + 1):  # the first file also warms the worker (imports, asdf, references)
            name = f"jw02736001001_02101_{number + 40:05d}_nrcb1"
            shutil.copyfile(science, incoming / f"{name}_rate.fits")
            closed = time.perf_counter()
            product = out / f"{name}_i2d.fits"
            while not product.exists():
                if daemon.poll() is not None:
                    raise RuntimeError(f"image2 watch exited with {daemon.returncode}")
                peak = max(peak, _tree_rss_kib(daemon.pid))
                if time.perf_counter() - closed > 600:
                    raise RuntimeError(f"{product.name} was not published within 600 s")
                time.sleep(0.02)
            if number:
                latencies.append(time.perf_counter() - closed)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    return {"latency": statistics.median(latencies), "peak_mib": peak / 1024}


def kernel_in_use() -> str:
    """Which drizzle the image2 processes below use: the compiled one-pass kernel or drizzle's own passes."""
    probe = subprocess.run([sys.executable, "-c", "from image2.core import coadd; print(coadd.available())"],
                           capture_output=True, text=True, check=True)
    if probe.stdout.strip() == "True":
        return "the compiled one-pass kernel"
    return ("drizzle's own passes: image2.core._coadd is not built here "
            "(`python setup.py build_ext --inplace` in a source checkout)")


def line(label: str, image2: float, jwst: float, unit: str = "s", *, more_is_better: bool = False) -> str:
    """One comparison; the ratio is how many times better image2 is (jwst/image2, or image2/jwst for rates)."""
    ratio = image2 / jwst if more_is_better else jwst / image2
    return f"  {label:<34} image2 {image2:8.2f} {unit:<4} jwst {jwst:8.2f} {unit:<4} ratio {ratio:5.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--skip", nargs="*", default=(), choices=("cold", "batch", "warm"))
    args = parser.parse_args()
    python = os.environ.get("IMAGE2_JWST_PYTHON")
    if not python:
        raise SystemExit("set IMAGE2_JWST_PYTHON to the python of an environment with jwst 3.0.0")
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="image2-vs-jwst-"))
    demo = build(folder / "demo")
    refs = {p.name.split("_")[2]: p for p in demo.references.iterdir()}
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); medians of {args.repeat}")
    print(f"image2's drizzle: {kernel_in_use()}")

    if "cold" not in args.skip:
        association = absolute_association(demo.association, folder)
        ours, theirs = [], []
        for number in range(args.repeat):  # interleaved pairs
            ours.append(measured([image2_command([demo.association], folder / "image2", demo.references)]))
            run = folder / "jwst" / f"run{number}"
            theirs.append(measured([jwst_command(python, run, [association], run, refs)]))
            jwst_ok(run)
        print("(a) cold one-shot, association with 2 background members, whole processes:")
        print(line("wall", statistics.median(r["wall"] for r in ours), statistics.median(r["wall"] for r in theirs)))
        print(line("peak RSS of the process tree", statistics.median(r["peak_mib"] for r in ours),
                   statistics.median(r["peak_mib"] for r in theirs), "MiB"))
        for suffix, arrays in (("_cal.fits", ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT", "AREA")),
                               ("_i2d.fits", ("SCI", "WHT", "CON", "ERR", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"))):
            differences = product_differences(folder / "image2" / f"{PRODUCT}{suffix}",
                                              folder / "jwst" / "run0" / f"{PRODUCT}{suffix}", arrays=arrays)
            print(f"  {suffix}: {'identical arrays' if not differences else differences}")

    if "batch" not in args.skip:
        inputs = batch_inputs(demo.inputs[0], folder / "batch" / "inputs")
        halves = [inputs[:BATCH // 2], inputs[BATCH // 2:]]
        ours, theirs, one_core = [], [], []
        products = folder / "batch" / "image2"
        for number in range(args.repeat):  # each run writes into an empty folder, as jwst's do
            shutil.rmtree(products, ignore_errors=True)
            ours.append(measured([image2_command(inputs, products, demo.references, "--jobs", "2")]))
            shutil.rmtree(products)
            one_core.append(measured([image2_command(inputs, products, demo.references)],
                                     env={**os.environ, CORES_VARIABLE: "1"}))
            runs = [folder / "batch" / f"jwst{number}_{half}" for half in range(2)]
            theirs.append(measured([jwst_command(python, run, files, run, refs)
                                    for run, files in zip(runs, halves, strict=True)]))
            for run in runs:
                jwst_ok(run)
                shutil.rmtree(run)  # 1.2 GB of products per half: the disk is not the benchmark's to fill
        shutil.rmtree(products)
        wall_ours, wall_theirs = (statistics.median(r["wall"] for r in rs) for rs in (ours, theirs))
        print(f"(b) batch of {BATCH} full frames, both tools on both cores:")
        print(line("wall", wall_ours, wall_theirs))
        print(line("throughput", BATCH * 3600 / wall_ours, BATCH * 3600 / wall_theirs, "/h", more_is_better=True))
        print(line("peak RSS of the process trees", statistics.median(r["peak_mib"] for r in ours),
                   statistics.median(r["peak_mib"] for r in theirs), "MiB"))
        wall_one = statistics.median(r["wall"] for r in one_core)
        print(f"  image2 on one core ({CORES_VARIABLE}=1, one process) {wall_one:.2f} s: "
              f"2 cores give {wall_one / wall_ours:.2f}x its throughput")

    if "warm" not in args.skip:
        warm = warm_latency(demo.inputs[0], demo.references, folder / "warm", args.repeat)
        single = [measured([jwst_command(python, folder / "single" / f"jwst{n}", [demo.inputs[0]],
                                         folder / "single" / f"jwst{n}", refs)]) for n in range(args.repeat)]
        print("(c) warm latency: a rate file closed in the watched folder -> its _i2d published:")
        print(line("image2 watch vs jwst one-shot", warm["latency"], statistics.median(r["wall"] for r in single)))
        print(line("peak RSS of the process tree", warm["peak_mib"], statistics.median(r["peak_mib"] for r in single),
                   "MiB"))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
