"""dark_current (Liger/IRIS, steps.md §4): subtract a rate-level dark and OR its DQ."""

from __future__ import annotations

import numpy as np

from image2.core.cutout import dark_for
from image2.core.exposure import Exposure
from image2.core.provenance import StepSkipped, step
from image2.core.references import DarkReference
from image2.errors import StepError


@step("dark_current")
def dark_current(exposure: Exposure, dark: DarkReference | None, *, propagate_error: bool = False) -> Exposure:
    """Return ``exposure`` minus ``dark`` (float32; NaN dark values count as 0) with the dark DQ ORed in.

    ERR and the variances are left alone (seed-era Liger); ``propagate_error`` instead sets
    ``ERR = √(ERR² + ERR_dark²)`` (Liger 2025). A 2-D dark applies to every integration.
    """
    if dark is None:
        raise StepSkipped("no stage-2 DARK reference")
    dark = dark_for(dark, exposure.meta, exposure.shape)
    if propagate_error and dark.err is None:
        raise StepError("dark_current", f"propagate_error needs the dark's ERR array, which {dark.source} lacks")
    changes = {"sci": np.subtract(exposure.sci, dark.sci)}
    if dark.dq is not None:
        changes["dq"] = np.bitwise_or(exposure.dq, dark.dq.astype(np.uint32, copy=False))
    if propagate_error:
        err = np.square(exposure.err)
        err += np.square(dark.err.astype(np.float32, copy=False))
        changes["err"] = np.sqrt(err, out=err)
    return exposure.evolve(**changes)
