"""What stage-2 imaging accepts as input: imaging exposures not yet calibrated, with consistent geometry.

Checked from the metadata and the array shape alone, before any array is read, so that an input
it cannot calibrate properly is refused with its reason instead of being "calibrated" wrongly
(a ``_cal`` calibrated twice, a spectroscopic exposure treated as an image).
"""

from __future__ import annotations

from collections.abc import Mapping

from image2.core.frozen import frozen_mapping
from image2.core.meta import Meta
from image2.core.steps import JWST, family_of, steps_for

IMAGING_TYPES: Mapping[str, frozenset[str]] = frozen_mapping({
    "NIRCAM": frozenset({"NRC_IMAGE", "NRC_TSIMAGE", "NRC_CORON", "NRC_FOCUS", "NRC_TACQ", "NRC_TACONFIRM"}),
    "NIRISS": frozenset({"NIS_IMAGE", "NIS_AMI", "NIS_FOCUS", "NIS_TACQ", "NIS_TACONFIRM"}),
    "MIRI": frozenset({"MIR_IMAGE", "MIR_LYOT", "MIR_4QPM", "MIR_CORONCAL", "MIR_TACQ", "MIR_TACONFIRM"}),
    "FGS": frozenset({"FGS_IMAGE", "FGS_FOCUS"}),
})
"""EXP_TYPEs that get the imaging WCS, per JWST instrument (steps.md §3.1)."""

NOT_IMPLEMENTED: Mapping[str, tuple[str, ...]] = frozen_mapping({
    "NIRCAM": ("NRC_LED", "NRC_DARK", "NRC_FLAT", "NRC_GRISM"),
    "NIRISS": ("NIS_DARK", "NIS_LAMP"),
    "MIRI": ("MIR_DARK", "MIR_FLAT"),
    "FGS": ("FGS_SKYFLAT", "FGS_INTFLAT", "FGS_DARK"),
})
"""EXP_TYPE prefixes for which no WCS exists (calibration exposures): assign_wcs skips them."""

STAGE1_STATUSES = frozenset({"S_DARK"})
"""Status keywords that JWST's stage 1 writes too (its dark_current runs in calwebb_detector1): on a
JWST exposure they do not mean that stage 2 ran."""


def completed_steps(meta: Meta) -> tuple[str, ...]:
    """Return the stage-2 steps whose status keyword says COMPLETE: the input is already calibrated by them."""
    family = family_of(meta)
    done = []
    for declared in steps_for(family):
        keyword = declared.status
        if keyword is None or (family == JWST and keyword in STAGE1_STATUSES):
            continue
        if str(meta.status.get(keyword, "")).strip().upper() == "COMPLETE":
            done.append(f"{declared.name} ({keyword})")
    return tuple(done)


def unsupported_type(meta: Meta) -> str | None:
    """Return why a JWST exposure's instrument or EXP_TYPE is not stage-2 imaging (None when it is).

    Liger/IRIS exposures are their own family and carry no EXP_TYPE; they are not judged here.
    """
    if family_of(meta) != JWST:
        return None
    instrument = (meta.instrument.name or "").upper()
    exp_type = (meta.exposure.type or "").upper()
    if instrument not in IMAGING_TYPES:
        return (f"INSTRUME {instrument or '(none)'} with EXP_TYPE {exp_type or '(none)'} is not handled by stage-2 "
                f"imaging (instruments: {', '.join(IMAGING_TYPES)}, LIGER, IRIS)")
    if exp_type and exp_type not in IMAGING_TYPES[instrument] and not exp_type.startswith(NOT_IMPLEMENTED[instrument]):
        return (f"EXP_TYPE {exp_type} is not an imaging type of {instrument}; stage-2 imaging handles "
                f"{', '.join(sorted(IMAGING_TYPES[instrument]))}")
    return None


def geometry_mismatch(meta: Meta, shape: tuple[int, ...]) -> str | None:
    """Return how SUBSIZE1/SUBSIZE2 contradict the data shape (None when they agree or are absent)."""
    sub = meta.subarray
    ny, nx = shape[-2:]
    wrong = [f"SUBSIZE{axis}={size} but the data have {actual} {label}"
             for axis, size, actual, label in ((1, sub.xsize, nx, "columns"), (2, sub.ysize, ny, "rows"))
             if size is not None and size != actual]
    return "; ".join(wrong) or None


def refusal(meta: Meta, shape: tuple[int, ...]) -> str | None:
    """Return why stage-2 imaging must not calibrate an exposure of ``meta`` and ``shape`` (None when it may)."""
    problem = unsupported_type(meta)
    if problem is not None:
        return problem
    done = completed_steps(meta)
    if done:
        return (f"already calibrated: {', '.join(done)} COMPLETE; stage 2 takes rate/rateints files "
                "(calibrating again would apply those steps twice)")
    return geometry_mismatch(meta, shape)
