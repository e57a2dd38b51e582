"""flat_field (steps.md §5): divide by the flat, propagate variances, flag unusable flat pixels."""

from __future__ import annotations

import numpy as np

from image2.core.cutout import flat_for, flat_smaller_than
from image2.core.dq import DO_NOT_USE, NO_FLAT_FIELD
from image2.core.exposure import Exposure
from image2.core.nan_sync import pixels_with, synced_in_place
from image2.core.provenance import StepSkipped, step
from image2.core.references import FlatReference
from image2.errors import StepError


def usable_flat(flat: FlatReference) -> tuple[np.ndarray, np.ndarray]:
    """Return the flat values to apply and the flat DQ to OR into the science (§5.4).

    NaN or zero values get DO_NOT_USE + NO_FLAT_FIELD, NO_FLAT_FIELD implies DO_NOT_USE,
    and every DO_NOT_USE pixel is applied as 1.0 (no correction). Other flat bits, e.g.
    UNRELIABLE_FLAT, are passed on without stopping the correction.
    """
    values = flat.sci.astype(np.float32, copy=True)
    flags = flat.dq.astype(np.uint32, copy=True)
    unusable = np.isnan(values)
    unusable |= values == 0.0
    np.bitwise_or(flags, np.uint32(DO_NOT_USE | NO_FLAT_FIELD), out=flags, where=unusable)
    np.bitwise_or(flags, np.uint32(DO_NOT_USE), out=flags, where=pixels_with(flags, NO_FLAT_FIELD, out=unusable))
    np.copyto(values, np.float32(1.0), where=pixels_with(flags, DO_NOT_USE, out=unusable))
    return values, flags


@step("flat_field")
def flat_field(exposure: Exposure, flat: FlatReference | None, *, inverse: bool = False) -> Exposure:
    """Return ``exposure`` divided by ``flat`` (multiplied when ``inverse``) with ERR, VAR_*, DQ updated.

    float32 throughout, in jwst's order of operations: ``SCI/F``, ``VAR_FLAT =
    SCI_out²/F²·Fe²``, ``VAR_POISSON/F²``, ``VAR_RNOISE/F²``, ``ERR = √((VP+VR)+VF)``; then
    ``DQ |= flat DQ`` and NaN sync. Cubes are corrected integration by integration alike.
    """
    if flat is None:
        raise StepSkipped("no FLAT reference")
    if flat_smaller_than(flat, exposure.shape):
        ny, nx = exposure.shape
        raise StepSkipped(f"FLAT reference ({flat.sci.shape[-2]}×{flat.sci.shape[-1]}) is smaller than the "
                          f"science array ({ny}×{nx})")
    flat = flat_for(flat, exposure.meta, exposure.shape)
    missing = [name for name, array in (("VAR_POISSON", exposure.var_poisson),
                                        ("VAR_RNOISE", exposure.var_rnoise)) if array is None]
    if missing:
        raise StepError("flat_field", f"the exposure has no {' or '.join(missing)} array; flat_field "
                                      f"rescales both variances and rebuilds ERR from them")
    values, flags = usable_flat(flat)
    squared = np.square(values)
    if not inverse:
        sci = np.divide(exposure.sci, values)
        del values
        var_poisson = np.divide(exposure.var_poisson, squared)
        var_rnoise = np.divide(exposure.var_rnoise, squared)
        var_flat = np.square(sci)
        var_flat /= squared
        flat_err_squared = np.square(flat.err.astype(np.float32, copy=False), out=squared)
        var_flat *= flat_err_squared
        del squared, flat_err_squared
        err = np.add(var_poisson, var_rnoise)
        err += var_flat
    else:
        sci = np.multiply(exposure.sci, values)
        del values
        var_poisson = np.multiply(exposure.var_poisson, squared)
        var_rnoise = np.multiply(exposure.var_rnoise, squared)
        del squared
        var_flat = np.zeros_like(sci)
        err = np.add(var_poisson, var_rnoise)
    np.sqrt(err, out=err)
    dq = np.bitwise_or(exposure.dq, flags)
    del flags
    dq = synced_in_place((sci, err, var_poisson, var_rnoise, var_flat), dq, dq_owned=True)
    return exposure.evolve(sci=sci, err=err, dq=dq, var_poisson=var_poisson, var_rnoise=var_rnoise,
                           var_flat=var_flat)
