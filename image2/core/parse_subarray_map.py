"""parse_subarray_map (Liger/IRIS, steps.md §2): describe the concurrently read subarrays and flag them."""

from __future__ import annotations

from typing import Any

import numpy as np

from image2.core.dq import OUTLIER
from image2.core.exposure import Exposure
from image2.core.provenance import Outcome, StepSkipped, step
from image2.errors import StepError

EXTENSION = "SUBARR_MAP"
MAX_SUBARRAYS = 10


def subarray_regions(ids: np.ndarray) -> list[dict[str, Any]]:
    """Return one record per subarray id 1, 2, … (up to 10, stopping at the first id absent).

    Each record holds the 1-based ``xstart``/``ystart``, ``xsize``/``ysize``, the map's
    ``detxsiz``/``detysiz``, and ``fastaxis`` 0 / ``slowaxis`` 1 as Liger writes them.
    Raises StepError when an id does not fill its bounding box (not a rectangle) or the
    box holds another id (overlap).
    """
    nrows, ncols = ids.shape
    regions = []
    for k in range(1, MAX_SUBARRAYS + 1):
        hits = ids == k
        rows, cols = np.flatnonzero(hits.any(axis=1)), np.flatnonzero(hits.any(axis=0))
        if rows.size == 0:
            break
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        box = ids[y0:y1, x0:x1]
        if not (box == k).all():
            others = sorted(int(v) for v in np.unique(box[box != k]) if v != 0)
            problem = (f"overlaps subarray {', '.join(map(str, others))}" if others
                       else "does not fill its bounding box (not a rectangle)")
            raise StepError("parse_subarray_map", f"{EXTENSION} subarray {k} (rows {y0}:{y1}, columns "
                                                  f"{x0}:{x1}) {problem}")
        regions.append({"id": k, "xstart": x0 + 1, "ystart": y0 + 1, "xsize": x1 - x0, "ysize": y1 - y0,
                        "detxsiz": ncols, "detysiz": nrows, "fastaxis": 0, "slowaxis": 1})
    return regions


@step("parse_subarray_map")
def parse_subarray_map(exposure: Exposure) -> Exposure | Outcome:
    """Return ``exposure`` with ``meta.tree["subarray_map"]`` from SUBARR_MAP and DQ OUTLIER (16) where it is set."""
    extension = exposure.extensions.get(EXTENSION)
    if extension is None:
        raise StepSkipped(f"no {EXTENSION} extension")
    ids = extension.data
    if ids is None or ids.shape != exposure.shape or not np.issubdtype(ids.dtype, np.integer):
        described = "no data" if ids is None else f"{ids.dtype} array of shape {ids.shape}"
        raise StepError("parse_subarray_map", f"{EXTENSION} must be an integer image of the science plane's "
                                              f"shape {exposure.shape}, not {described}")
    regions = subarray_regions(ids)
    inside = ids != 0
    notes = []
    undescribed = inside & ((ids < 1) | (ids > len(regions)))
    if undescribed.any():
        ignored = [int(v) for v in np.unique(ids[undescribed])]
        notes.append(f"{EXTENSION} ids {ignored} are not described (ids are read from 1 up to the first "
                     f"missing one, at most {MAX_SUBARRAYS}); their pixels are still flagged")
    dq = exposure.dq.copy()
    np.bitwise_or(dq, np.uint32(OUTLIER), out=dq, where=inside)
    meta = exposure.meta.with_tree(subarray_map=regions)
    return Outcome(exposure.evolve(dq=dq, meta=meta), notes)
