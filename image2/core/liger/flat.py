"""flat_field for Liger/IRIS-format exposures (S_FLAT), as the pipeline's FlatFieldStep computes it.

``ERR = √(ERR² + (DATA·ERR_flat/flat)²) / flat'`` from the frame's own ERR (Liger has no
variance arrays), then ``DATA / flat'`` and ``DQ |= flat DQ``, float32 in Liger's order of
operations. ``flat'`` is the flat with 1.0 where it is NaN, 0 or flagged NO_FLAT_FIELD, so
such pixels keep their value; their ERR uses the raw flat and so becomes NaN or infinite,
which marks them as not calibrated (Liger flags nothing there either).

Deliberate difference: the flat's DQ bits 16 and above (e.g. NO_FLAT_FIELD) are kept; Liger
ORs the uint32 flat DQ into its uint16 science DQ and loses them.
"""

from __future__ import annotations

import numpy as np

from image2.core.dq import NO_FLAT_FIELD
from image2.core.exposure import Exposure
from image2.core.steps import LIGER_FORMAT
from image2.core.provenance import StepSkipped, step
from image2.core.references import FlatReference


def applied_flat(flat: FlatReference) -> np.ndarray:
    """Return the flat values divided by: 1.0 where the flat is NaN, 0 or flagged NO_FLAT_FIELD."""
    values = flat.sci.astype(np.float32, copy=True)
    bad = np.isnan(values)
    bad |= values == 0.0
    bad |= (flat.dq & NO_FLAT_FIELD) != 0
    values[bad] = np.float32(1.0)
    return values


@step("flat_field", family=LIGER_FORMAT)
def apply_flat(exposure: Exposure, flat: FlatReference | None) -> Exposure:
    """Return ``exposure`` divided by ``flat`` (cut to it) with Liger's ERR formula and the flat DQ ORed in."""
    if flat is None:
        raise StepSkipped("no FLAT reference")
    raw = flat.sci.astype(np.float32, copy=False)
    divisor = applied_flat(flat)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.multiply(exposure.sci, flat.err.astype(np.float32, copy=False))
        relative /= raw
        np.square(relative, out=relative)
        err = np.square(exposure.err)
        err += relative
        del relative
        np.sqrt(err, out=err)
        err /= divisor
    return exposure.evolve(sci=np.divide(exposure.sci, divisor), err=err,
                           dq=np.bitwise_or(exposure.dq, flat.dq.astype(np.uint32, copy=False)))
