"""Run jwst 3.0.0 steps and pipelines fully offline; executed by the jwst venv's python, never imported.

Usage: ``python jwst_driver.py JOBS.json RESULTS.json [JWST_VERSION]`` (the version, when given,
must be the installed one). JOBS is a list of jobs (see
``tests/parity/jwst_harness.py``, which writes them); RESULTS gets one entry per job:
``{"name", "ok", "outputs", "error", "seconds"}``. A failing job does not stop the others.

Offline means: CRDS step-parameter references are disabled (STPIPE_DISABLE_CRDS_STEPPARS),
CRDS runs in local mode against an empty cache, and stpipe's CRDS client answers "N/A" to
every reference lookup, so only the explicit ``override_<reftype>`` files are ever used.
Only the standard library and jwst's own environment are used here.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from driver_jobs import run_jobs

STEP_CLASSES = {
    "bkg_subtract": "jwst.background.BackgroundStep",
    "assign_wcs": "jwst.assign_wcs.AssignWcsStep",
    "flat_field": "jwst.flatfield.FlatFieldStep",
    "photom": "jwst.photom.PhotomStep",
    "resample": "jwst.resample.ResampleStep",
    "image2": "jwst.pipeline.Image2Pipeline",
}


def go_offline(crds_path: str) -> None:
    """Make every CRDS lookup answer "N/A" without touching a server or a cache."""
    os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "1"
    os.environ["CRDS_MODE"] = "local"
    os.environ["CRDS_PATH"] = crds_path
    os.environ["CRDS_SERVER_URL"] = "https://crds-offline.invalid"

    from stpipe import crds_client

    def no_references(parameters, reference_file_types, observatory):
        return {reftype: "N/A" for reftype in reference_file_types}

    crds_client.get_multiple_reference_paths = no_references
    crds_client.get_reference_file = lambda parameters, reftype, observatory: "N/A"
    crds_client.get_context_used = lambda observatory: "N/A"


def step_class(name: str):
    """Return the jwst Step/Pipeline class for an alias in STEP_CLASSES or a dotted class path."""
    import importlib

    module, _, attribute = STEP_CLASSES.get(name, name).rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def run_step(job: dict) -> list[str]:
    """Run one step on ``job["input"]``; save its result to ``job["output"]``, extra products beside it.

    Files the step saves itself (e.g. ``_combinedbackground``) go to the output's directory
    and are listed after the result.
    """
    cls = step_class(job["step"])
    output = Path(job["output"])
    output.parent.mkdir(parents=True, exist_ok=True)
    before = set(output.parent.iterdir())
    overrides = {f"override_{reftype}": path for reftype, path in job.get("overrides", {}).items()}
    parameters = {"output_dir": str(output.parent), **job.get("parameters", {})}
    result = cls.call(job["input"], *job.get("args", []), **overrides, **parameters)
    result.save(str(output))
    result.close()
    extras = sorted(str(p) for p in set(output.parent.iterdir()) - before - {output})
    return [str(output), *extras]


def run_pipeline(job: dict) -> list[str]:
    """Run Image2Pipeline (or another pipeline) with results saved into ``job["output_dir"]``."""
    cls = step_class(job.get("step", "image2"))
    output_dir = Path(job["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    steps: dict = {}
    for alias, reftypes in job.get("overrides", {}).items():
        for reftype, path in reftypes.items():
            steps.setdefault(alias, {})[f"override_{reftype}"] = path
    for alias, parameters in job.get("step_parameters", {}).items():
        steps.setdefault(alias, {}).update(parameters)
    before = set(output_dir.iterdir())
    results = cls.call(job["input"], output_dir=str(output_dir), save_results=True, steps=steps,
                       **job.get("parameters", {}))
    for model in results if isinstance(results, list) else [results]:
        model.close()
    return sorted(str(p) for p in set(output_dir.iterdir()) - before)


def main(jobs_path: str, results_path: str, version: str | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="crds-offline-") as crds_path:
        go_offline(crds_path)
        import jwst

        if version and jwst.__version__ != version:
            print(f"jwst {jwst.__version__} is installed but the parity tests need jwst {version}",
                  file=sys.stderr)
            return 2
        return run_jobs(jobs_path, results_path,
                        lambda job: run_pipeline(job) if job["kind"] == "pipeline" else run_step(job))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
