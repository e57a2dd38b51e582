"""Reference arrays cut to an exposure's subarray, prepared once per exposure (steps.md §4.2, §5.2–5.3, §6.2).

Each function returns a reference of the same class and ``source`` whose arrays cover
exactly the exposure's region (views; the dark's SCI is copied only to replace NaN) and
whose ``subarray`` is the exposure's placement, so preparing an already-prepared reference
returns it unchanged (the dark costs one NaN scan). Steps call these themselves; a caller
streaming a large cube in integration chunks prepares once and hands the prepared
reference to every chunk.
"""

from __future__ import annotations

import attrs
import numpy as np

from image2.core.meta import Meta, Subarray, full_frame_shape
from image2.core.references import AreaReference, DarkReference, FlatReference
from image2.errors import ReferenceFileError, StepError

Placement = tuple[int, int, int, int]
"""``(xstart, xsize, ystart, ysize)``: 1-based start and size on the detector (FITS order)."""

_STARTS = ("SUBSTRT1", "SUBSTRT2")
_ALL = ("SUBSTRT1", "SUBSIZE1", "SUBSTRT2", "SUBSIZE2")


def flat_smaller_than(flat: FlatReference, shape: tuple[int, int]) -> bool:
    """True when the flat has fewer rows or columns than the image plane ``shape`` (jwst then skips)."""
    return flat.sci.ndim >= 2 and (shape[0] > flat.sci.shape[-2] or shape[1] > flat.sci.shape[-1])


def flat_for(flat: FlatReference | None, meta: Meta, shape: tuple[int, int]) -> FlatReference | None:
    """Return ``flat`` cut to the exposure of ``meta`` and image-plane ``shape`` (jwst's rules).

    None stays None, and a flat smaller than the science comes back as it is (flat_field
    skips it). Raises ReferenceFileError when the flat cannot be placed or does not cover
    the exposure, StepError when the exposure's own placement is unknown.
    """
    if flat is None or flat_smaller_than(flat, shape):
        return flat
    if flat.sci.ndim != 2 or flat.err.shape != flat.sci.shape or flat.dq.shape != flat.sci.shape:
        raise ReferenceFileError(flat.source, f"FLAT SCI/ERR/DQ must be 2-D arrays of one shape, not "
                                              f"{flat.sci.shape}/{flat.err.shape}/{flat.dq.shape}")
    fny, fnx = flat.sci.shape
    header = _reference_placement(flat.source, flat.subarray, flat.sci.shape,
                                  flat.instrument or meta.instrument.name)
    reference = (header[0], fnx, header[2], fny)
    science = _science_placement("flat_field", meta, shape, required=_ALL, full_frame_default=False)
    if reference == science:
        return flat
    cut = _window("flat_field", flat.source, science, header, flat.sci.shape)
    return attrs.evolve(flat, sci=flat.sci[cut], err=flat.err[cut], dq=flat.dq[cut],
                        subarray=_placed(meta, science))


def dark_for(dark: DarkReference | None, meta: Meta, shape: tuple[int, int]) -> DarkReference | None:
    """Return ``dark`` cut to the exposure (Liger rule) with NaN SCI values replaced by 0; None stays None.

    A science SUBARRAY of FULL (or absent, when the shapes agree) uses the dark as it is;
    otherwise the exposure's SUBSTRT/SUBSIZE window is cut from the dark, whose own
    SUBSTRT default to 1 and SUBSIZE to its array shape.
    """
    if dark is None:
        return None
    ny, nx = shape
    if dark.sci.ndim != 2:
        raise ReferenceFileError(dark.source, f"a stage-2 DARK must be a 2-D rate image, not {dark.sci.ndim}-D")
    for name in ("err", "dq"):
        array = getattr(dark, name)
        if array is not None and array.shape != dark.sci.shape:
            raise ReferenceFileError(dark.source, f"DARK {name.upper()} shape {array.shape} differs "
                                                  f"from its SCI {dark.sci.shape}")
    name = (meta.subarray.name or "").strip().upper()
    if name == "FULL" or (not name and dark.sci.shape == (ny, nx)):
        if dark.sci.shape != (ny, nx):
            raise ReferenceFileError(dark.source, f"DARK shape {dark.sci.shape} differs from the full-frame "
                                                  f"science array ({ny}×{nx})")
        prepared = dark
    else:
        dny, dnx = dark.sci.shape
        sub = dark.subarray
        header = (sub.xstart or 1, sub.xsize or dnx, sub.ystart or 1, sub.ysize or dny)
        science = _science_placement("dark_current", meta, shape, required=_STARTS,
                                     full_frame_default=False)
        cut = _window("dark_current", dark.source, science, header, dark.sci.shape)
        if dark.sci[cut].shape == dark.sci.shape:
            prepared = dark
        else:
            prepared = attrs.evolve(
                dark, sci=dark.sci[cut], subarray=_placed(meta, science),
                err=None if dark.err is None else dark.err[cut],
                dq=None if dark.dq is None else dark.dq[cut])
    sci = prepared.sci.astype(np.float32, copy=False)
    nan = np.isnan(sci)
    if nan.any():
        sci = np.where(nan, np.float32(0.0), sci)
    return prepared if sci is prepared.sci else attrs.evolve(prepared, sci=sci)


def area_for(area: AreaReference | None, meta: Meta, shape: tuple[int, int]) -> AreaReference | None:
    """Return ``area`` cut to the exposure's SUBSTRT window (photom attaches it as AREA); None stays None.

    The area map's own SUBSTRT (absent: 1) places it; real maps are full frame, where this
    is jwst's ``area[ystart-1:ystart-1+ny, xstart-1:xstart-1+nx]``. A full-frame-shaped
    exposure without SUBSTRT counts as starting at 1.
    """
    if area is None:
        return None
    if area.sci.ndim != 2:
        raise ReferenceFileError(area.source, f"an AREA map must be 2-D, not {area.sci.ndim}-D")
    height, width = area.sci.shape
    header = (area.subarray.xstart or 1, width, area.subarray.ystart or 1, height)
    science = _science_placement("photom", meta, shape, required=_STARTS, full_frame_default=True)
    cut = _window("photom", area.source, science, header, area.sci.shape)
    if area.sci[cut].shape == area.sci.shape:
        return area
    return attrs.evolve(area, sci=area.sci[cut], subarray=_placed(meta, science))


def _reference_placement(source: str, sub: Subarray, array_shape: tuple[int, int],
                         instrument: str | None) -> Placement:
    """Return a reference's header placement; full-frame defaults when its keywords are missing."""
    values = (sub.xstart, sub.xsize, sub.ystart, sub.ysize)
    if any(v is None for v in values):
        full = full_frame_shape(instrument)
        if array_shape != full:
            raise ReferenceFileError(source, f"can't determine the reference subarray: SUBSTRT/SUBSIZE "
                                             f"missing and the array ({array_shape[0]}×{array_shape[1]}) "
                                             f"is not full frame ({full[0]}×{full[1]})")
        return (1, full[1], 1, full[0])
    xstart, xsize, ystart, ysize = (int(v) for v in values)  # type: ignore[arg-type]
    if xstart < 1 or ystart < 1:
        raise ReferenceFileError(source, f"bad subarray corner SUBSTRT1={xstart}, SUBSTRT2={ystart} "
                                         f"(must be >= 1)")
    return (xstart, xsize, ystart, ysize)


def _science_placement(step: str, meta: Meta, shape: tuple[int, int], *,
                       required: tuple[str, ...], full_frame_default: bool) -> Placement:
    """Return the exposure's placement; its sizes are the array's (they win over SUBSIZE).

    ``required``: the keywords whose absence is an error. ``full_frame_default``: a
    full-frame-shaped exposure missing some of them starts at 1 instead.
    """
    ny, nx = shape
    sub = meta.subarray
    present = {"SUBSTRT1": sub.xstart, "SUBSTRT2": sub.ystart, "SUBSIZE1": sub.xsize, "SUBSIZE2": sub.ysize}
    missing = [key for key in required if present[key] is None]
    if missing and full_frame_default and shape == full_frame_shape(meta.instrument.name):
        return (1, nx, 1, ny)
    if missing:
        raise StepError(step, f"can't place the exposure on the detector: {', '.join(missing)} missing")
    xstart, ystart = int(sub.xstart), int(sub.ystart)  # type: ignore[arg-type]
    if xstart < 1 or ystart < 1:
        raise StepError(step, f"bad subarray corner SUBSTRT1={xstart}, SUBSTRT2={ystart} (must be >= 1)")
    return (xstart, nx, ystart, ny)


def _window(step: str, source: str, science: Placement, reference: Placement,
            array_shape: tuple[int, int]) -> tuple[slice, slice]:
    """Return the ``[y, x]`` slices of the science region in a reference; error if it is not inside."""
    xs, ys = science[0] - reference[0], science[2] - reference[2]
    xe, ye = xs + science[1], ys + science[3]
    width, height = min(reference[1], array_shape[1]), min(reference[3], array_shape[0])
    if xs < 0 or ys < 0 or xe > width or ye > height:
        raise ReferenceFileError(
            source,
            f"bad reference slice for {step}: science SUBSTRT1={science[0]} SUBSIZE1={science[1]} "
            f"SUBSTRT2={science[2]} SUBSIZE2={science[3]} is not inside reference SUBSTRT1={reference[0]} "
            f"SUBSIZE1={reference[1]} SUBSTRT2={reference[2]} SUBSIZE2={reference[3]} "
            f"(array {array_shape[0]}×{array_shape[1]}); slice x {xs}:{xe}, y {ys}:{ye}")
    return slice(ys, ye), slice(xs, xe)


def _placed(meta: Meta, science: Placement) -> Subarray:
    """Return the Subarray record of a reference cut to ``science``."""
    return Subarray(name=meta.subarray.name, xstart=science[0], xsize=science[1],
                    ystart=science[2], ysize=science[3])
