"""The job loop both parity drivers run in their own environment: standard library only, never imported by image2.

Each driver is run as a script, so this module is imported from its folder (``sys.path[0]``).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path


def run_jobs(jobs_path: str, results_path: str, run: Callable[[dict], list[str]]) -> int:
    """Run every job of JOBS with ``run`` (its output files), writing RESULTS after each one:
    ``{"name", "ok", "outputs", "error", "seconds"}`` per job. A failing job does not stop the others."""
    results = []
    for job in json.loads(Path(jobs_path).read_text()):
        started = time.perf_counter()
        entry = {"name": job["name"], "ok": False, "outputs": [], "error": None}
        try:
            entry["outputs"] = run(job)
            entry["ok"] = True
        except Exception:  # each job's failure is reported, the others still run
            entry["error"] = traceback.format_exc()
        entry["seconds"] = round(time.perf_counter() - started, 3)
        results.append(entry)
        Path(results_path).write_text(json.dumps(results, indent=1))
    return 0
