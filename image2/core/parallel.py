"""How many cores this process may use (the default for the pixel map's threads and the drizzle bands),
and whether BLAS may start threads of its own."""

from __future__ import annotations

import os

CORES_VARIABLE = "IMAGE2_CORES"
"""Environment variable capping the cores one process uses: set in each of N worker processes
that share the machine's cores (image2.run.executors), so that N workers use N cores, not N × 2."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it), at most
    ``$IMAGE2_CORES`` when that is set to a positive number."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cap = os.environ.get(CORES_VARIABLE, "")
    return min(cores, int(cap)) if cap.isdigit() and int(cap) > 0 else cores


def blas_single_threaded() -> bool:
    """True when OpenBLAS runs one thread per call (``OPENBLAS_NUM_THREADS=1``, which the command line
    sets before numpy loads it, and its worker processes inherit)."""
    return os.environ.get("OPENBLAS_NUM_THREADS") == "1"
