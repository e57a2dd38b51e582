"""Drive liger_iris_pipeline (commit 3d0ac2e) offline in its own environment; executed there, never imported.

Usage: ``python liger_driver.py JOBS.json RESULTS.json``. JOBS is a list of jobs written by
``tests/parity/liger_harness.py``; RESULTS gets one entry per job:
``{"name", "ok", "outputs", "error", "seconds"}``. A failing job does not stop the others.

Job kinds:

* ``write``: a Liger/IRIS file written by the pipeline's own datamodels (``ImagerModel``,
  ``DarkModel`` or ``FlatModel``) from ``.npy`` arrays, its metadata completed by the
  pipeline's ``tests/utils.get_meta`` as its own tests do.
* ``pipeline``: ``ImagerStage2Pipeline`` on ``{"SCI": [...], "SKY": [...]}`` with the dark
  and flat passed explicitly (its CRDS observatory does not exist publicly).
* ``chain``: its steps one by one without background: parse_subarray_map → dark → flat →
  assign_wcs (``calc_background.skip=True`` crashes the pipeline, so the chain is run by hand).
* ``open``: ``datamodels.open`` on a file (image2's product), dumping what it read.

Results of ``pipeline``/``chain``/``open`` are dumps, not the pipeline's own saved files (its
``save`` cannot write a model with a subarray map that it can reopen): per model an ``.npz``
with DATA/ERR/DQ and a ``.json`` with the model class, ``meta`` as plain data and the gWCS
evaluated at the sample pixels the job asks for.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from driver_jobs import run_jobs


def _plain(value):
    """Metadata as JSON: numpy scalars as numbers, nested nodes as dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def write_model(job: dict) -> list[str]:
    """Write one file with the pipeline's datamodels and its tests' metadata helper."""
    from liger_iris_pipeline import datamodels
    from liger_iris_pipeline.tests.utils import get_meta

    arrays = {name: np.load(path) for name, path in job["arrays"].items()}
    model = getattr(datamodels, job["model"])(**{k: v for k, v in arrays.items() if k != "subarr_map"})
    if "subarr_map" in arrays:
        model["subarr_map"] = arrays["subarr_map"]
    get_meta(model, job.get("meta", {}))
    path = Path(job["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    model.close()
    return [str(path)]


def dump(model, stem: Path, pixels: list[list[float]]) -> list[str]:
    """Save a model's arrays (.npz) and metadata and gWCS samples (.json) under ``stem``."""
    arrays = {name: np.asarray(getattr(model, name)) for name in ("data", "err", "dq")
              if getattr(model, name, None) is not None}
    if "subarr_map" in model:
        arrays["subarr_map"] = np.asarray(model["subarr_map"])
    np.savez(f"{stem}.npz", **arrays)
    info = {"class": type(model).__name__, "meta": _plain(model.meta.instance),
            "dtypes": {name: str(array.dtype) for name, array in arrays.items()}, "world": None}
    wcs = getattr(model.meta, "wcs", None)
    if wcs is not None and pixels:
        x, y = np.array(pixels, dtype=float).T
        ra, dec = wcs(x, y)
        info["world"] = [[float(np.asarray(getattr(ra, "value", ra))[i]), float(np.asarray(getattr(dec, "value", dec))[i])]
                         for i in range(len(x))]
    Path(f"{stem}.json").write_text(json.dumps(info, indent=1))
    return [f"{stem}.npz", f"{stem}.json"]


def run_pipeline(job: dict) -> list[str]:
    """ImagerStage2Pipeline on the job's SCI (and SKY) files with explicit dark and flat."""
    import liger_iris_pipeline

    pipeline = liger_iris_pipeline.ImagerStage2Pipeline()
    pipeline.dark_sub.dark = job["dark"]
    pipeline.flat_field.flat = job["flat"]
    for alias, parameters in job.get("step_parameters", {}).items():
        for key, value in parameters.items():
            setattr(getattr(pipeline, alias), key, value)
    inputs = {"SCI": list(job["SCI"])}
    if job.get("SKY"):
        inputs["SKY"] = list(job["SKY"])
    results = pipeline.run(inputs)
    out = Path(job["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for number, model in enumerate(results):
        written += dump(model, out / f"sci{number}", job.get("pixels", []))
    background = getattr(pipeline, "background", None)
    if background is not None:
        written += dump(background, out / "background", [])
    return written


def run_chain(job: dict) -> list[str]:
    """The pipeline's steps without background, one SCI file at a time."""
    from liger_iris_pipeline import AssignWCSStep, DarkSubtractionStep, FlatFieldStep, ParseSubarrayMapStep
    from liger_iris_pipeline import datamodels

    out = Path(job["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for number, path in enumerate(job["SCI"]):
        model = datamodels.open(path)
        model = ParseSubarrayMapStep().run(model)
        model = DarkSubtractionStep(dark=job["dark"]).run(model)
        model = FlatFieldStep(flat=job["flat"]).run(model)
        model = AssignWCSStep().run(model)
        written += dump(model, out / f"sci{number}", job.get("pixels", []))
    return written


def run_open(job: dict) -> list[str]:
    """``datamodels.open`` on a file, dumping what it read."""
    from liger_iris_pipeline import datamodels

    out = Path(job["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    with datamodels.open(job["path"]) as model:
        return dump(model, out / "opened", [])


KINDS = {"write": write_model, "pipeline": run_pipeline, "chain": run_chain, "open": run_open}


def main(jobs_path: str, results_path: str) -> int:
    return run_jobs(jobs_path, results_path, lambda job: KINDS[job["kind"]](job))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
