"""dark_current for Liger/IRIS-format exposures (S_DARK), as the pipeline's DarkSubtractionStep.

``DATA - dark``, ``ERR = √(ERR² + ERR_dark²)``, ``DQ |= dark DQ``, float32 throughout, with
the dark cut to the exposure beforehand (:mod:`image2.core.liger.cutout`). A NaN in the dark stays a
NaN in the science, as in Liger (the spec's JWST-format step counts it as 0).
"""

from __future__ import annotations

import numpy as np

from image2.core.exposure import Exposure
from image2.core.steps import LIGER_FORMAT
from image2.core.provenance import StepSkipped, step
from image2.core.references import DarkReference


@step("dark_current", family=LIGER_FORMAT)
def subtract_dark(exposure: Exposure, dark: DarkReference | None) -> Exposure:
    """Return ``exposure`` minus ``dark`` (cut to it) with the dark's ERR added in quadrature and its DQ ORed in."""
    if dark is None:
        raise StepSkipped("no DARK reference")
    changes = {"sci": np.subtract(exposure.sci, dark.sci.astype(np.float32, copy=False))}
    if dark.err is not None:
        err = np.square(exposure.err)
        err += np.square(dark.err.astype(np.float32, copy=False))
        changes["err"] = np.sqrt(err, out=err)
    if dark.dq is not None:
        changes["dq"] = np.bitwise_or(exposure.dq, dark.dq.astype(np.uint32, copy=False))
    return exposure.evolve(**changes)
