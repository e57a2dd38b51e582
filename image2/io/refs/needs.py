"""Which reference types an exposure's stage-2 steps use, which of them it cannot do without, and in what order."""

from __future__ import annotations

from collections.abc import Mapping

from image2.core.frozen import frozen_mapping
from image2.core.meta import Meta
from image2.core.plan import is_liger

JWST_IMAGING_REFTYPES = ("distortion", "filteroffset", "flat", "photom", "area")
LIGER_REFTYPES = ("distortion", "dark", "flat", "photom", "area")
NO_FILTEROFFSET = frozenset({"FGS"})
STEP_ORDER = ("distortion", "filteroffset", "dark", "flat", "photom", "area")
"""Reference types in the order the steps use them (assign_wcs, dark_current, flat_field, photom)."""

REFTYPE_STEPS: Mapping[str, str] = frozen_mapping({
    "distortion": "assign_wcs", "filteroffset": "assign_wcs", "dark": "dark_current", "flat": "flat_field",
    "photom": "photom", "area": "photom",
})
"""The step that uses each reference type."""

OPTIONAL_FILTEROFFSET = frozenset({"NIRISS"})
"""JWST instruments whose FILTEROFFSET is optional (reference_files.md §7)."""


def needed_reftypes(meta: Meta) -> tuple[str, ...]:
    """Return the reference types the exposure's stage-2 steps use (pipeline.md §2).

    JWST imaging: distortion and filteroffset (assign_wcs; FGS has no filter offsets), flat,
    photom and area. Liger/IRIS additionally run dark_current with a rate-level dark.
    """
    if is_liger(meta):
        return LIGER_REFTYPES
    if (meta.instrument.name or "").upper() in NO_FILTEROFFSET:
        return tuple(t for t in JWST_IMAGING_REFTYPES if t != "filteroffset")
    return JWST_IMAGING_REFTYPES


def required_reftypes(meta: Meta) -> tuple[str, ...]:
    """Return the needed types without which the exposure is not fully calibrated: a missing one fails it.

    JWST imaging: every needed type, except NIRISS's optional FILTEROFFSET. Liger/IRIS: the flat
    only; its dark, photom and area are optional and its WCS comes from the FITS keywords.
    """
    if is_liger(meta):
        return ("flat",)
    if (meta.instrument.name or "").upper() in OPTIONAL_FILTEROFFSET:
        return tuple(t for t in needed_reftypes(meta) if t != "filteroffset")
    return needed_reftypes(meta)
