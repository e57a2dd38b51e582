"""Reference arrays cut to a Liger/IRIS exposure's subarray, by the Liger rule.

A science SUBARRAY other than FULL takes the window ``SUBSTRT(science) - SUBSTRT(reference)``
of the reference (its SUBSTRT default 1, its SUBSIZE its array shape), as the pipeline's
``get_subarray_model`` does. Where Liger fails with a Python error we fail with a sentence:
a FULL exposure whose shape is not the reference's, or a window outside the reference. A
missing SUBARRAY counts as FULL when the shapes agree (Liger then crashes on the missing SUBSTRT).
"""

from __future__ import annotations

import attrs

from image2.core.cutout import _placed, _science_placement, _window
from image2.core.meta import Meta
from image2.core.references import DarkReference, FlatReference
from image2.errors import ReferenceFileError

Reference = DarkReference | FlatReference


def cut_to_exposure(reference: Reference, meta: Meta, shape: tuple[int, int], step: str) -> Reference:
    """Return ``reference`` with its arrays cut to the exposure of ``meta`` and image-plane ``shape``."""
    ny, nx = shape
    if reference.sci.ndim != 2:
        raise ReferenceFileError(reference.source, f"a Liger/IRIS {reference.reftype.upper()} must be a 2-D image, "
                                                   f"not {reference.sci.ndim}-D")
    name = (meta.subarray.name or "").strip().upper()
    if name == "FULL" or (not name and reference.sci.shape == shape):
        if reference.sci.shape != shape:
            raise ReferenceFileError(reference.source, f"{reference.reftype.upper()} shape {reference.sci.shape} "
                                                       f"differs from the FULL science array ({ny}×{nx})")
        return reference
    rny, rnx = reference.sci.shape
    sub = reference.subarray
    placement = (sub.xstart or 1, sub.xsize or rnx, sub.ystart or 1, sub.ysize or rny)
    science = _science_placement(step, meta, shape, required=("SUBSTRT1", "SUBSTRT2"), full_frame_default=False)
    cut = _window(step, reference.source, science, placement, reference.sci.shape)
    if reference.sci[cut].shape == reference.sci.shape:
        return reference
    return attrs.evolve(reference, sci=reference.sci[cut], subarray=_placed(meta, science),
                        err=None if reference.err is None else reference.err[cut],
                        dq=None if reference.dq is None else reference.dq[cut])


def dark_for(dark: DarkReference | None, meta: Meta, shape: tuple[int, int]) -> DarkReference | None:
    """Return ``dark`` cut to the Liger/IRIS exposure (NaN kept, as in Liger); None stays None."""
    return None if dark is None else cut_to_exposure(dark, meta, shape, "dark_current")


def flat_for(flat: FlatReference | None, meta: Meta, shape: tuple[int, int]) -> FlatReference | None:
    """Return ``flat`` cut to the Liger/IRIS exposure; None stays None."""
    return None if flat is None else cut_to_exposure(flat, meta, shape, "flat_field")
