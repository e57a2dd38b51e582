"""parse_subarrays (Liger/IRIS, S_PARSSA): describe the subarrays read concurrently, flag their pixels.

As the pipeline's ParseSubarrayMapStep: ids 1, 2, … 10 of SUBARR_MAP until the first one
absent; each described by its first and last pixel in row-major order (1-based ``xstart``,
``ystart``, ``xsize``, ``ysize``) with the map's ``detxsize``/``detysize`` and ``fastaxis`` 0 /
``slowaxis`` 1, appended to ``meta.subarray_map``; DQ bit 4 (16) set wherever the map is not 0.
We add a note where an id is not a filled rectangle (Liger describes it silently all the same).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from image2.core.dq import OUTLIER
from image2.core.exposure import Exposure
from image2.core.steps import LIGER_FORMAT
from image2.core.provenance import Outcome, StepSkipped, step
from image2.errors import StepError

EXTENSION = "SUBARR_MAP"
MAX_SUBARRAYS = 10
SUBARRAY_FLAG = OUTLIER
"""The bit Liger calls the subarray flag (2**4)."""


def subarray_records(ids: np.ndarray) -> tuple[list[dict[str, Any]], list[int]]:
    """Return Liger's records of ids 1..10 up to the first one absent, and the ids that are not rectangles."""
    nrows, ncols = ids.shape
    records, irregular = [], []
    for k in range(1, MAX_SUBARRAYS + 1):
        rows, cols = np.nonzero(ids == k)
        if rows.size == 0:
            break
        x0, y0 = int(cols[0]), int(rows[0])
        xsize, ysize = int(cols[-1]) - x0 + 1, int(rows[-1]) - y0 + 1
        if xsize < 1 or rows.size != xsize * ysize or not (ids[y0:y0 + ysize, x0:x0 + xsize] == k).all():
            irregular.append(k)
        records.append({"id": k, "xstart": x0 + 1, "ystart": y0 + 1, "xsize": xsize, "ysize": ysize,
                        "detxsize": ncols, "detysize": nrows, "fastaxis": 0, "slowaxis": 1})
    return records, irregular


@step("parse_subarray_map", family=LIGER_FORMAT)
def parse_subarrays(exposure: Exposure) -> Exposure | Outcome:
    """Return ``exposure`` with ``meta.tree["subarray_map"]`` appended from SUBARR_MAP and DQ |= 16 inside it."""
    extension = exposure.extensions.get(EXTENSION)
    if extension is None or extension.data is None:
        raise StepSkipped(f"no {EXTENSION} extension")
    ids = extension.data
    if ids.shape != exposure.shape or not np.issubdtype(ids.dtype, np.integer):
        raise StepError("parse_subarrays", f"{EXTENSION} must be an integer image of the science shape "
                                           f"{exposure.shape}, not a {ids.dtype} array of shape {ids.shape}")
    records, irregular = subarray_records(ids)
    inside = ids != 0
    dq = exposure.dq.copy()
    np.bitwise_or(dq, np.uint32(SUBARRAY_FLAG), out=dq, where=inside)
    existing = list(exposure.meta.tree.get("subarray_map") or [])
    notes = [f"{EXTENSION} id {k} is not a filled rectangle; it is described by its first and last pixel "
             "as Liger does" for k in irregular]
    return Outcome(exposure.evolve(dq=dq, meta=exposure.meta.with_tree(subarray_map=existing + records)), notes)
