"""Background subtraction from background exposures (steps.md §1, status S_BKDSUB).

The background members are cut to the science footprint, combined by a sigma-clipped mean
(astropy ``sigma_clip``, median centre, population std) and subtracted from SCI; their DQ
is ORed in; ERR and the variances are left alone, as jwst does.

Deliberate deviation from jwst 3.0.0: where a background covers only part of the science
footprint, its overlap is placed at its true position in the science frame. jwst pastes it
at the array origin, which is only right when the overlap starts there; results are
identical whenever the overlap starts at the science origin (e.g. equal geometries).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import attrs
import numpy as np
from astropy.stats import sigma_clip
from astropy.utils.exceptions import AstropyUserWarning

from image2.core.exposure import Exposure
from image2.core.frozen import readonly
from image2.core.meta import full_frame_shape
from image2.core.provenance import Outcome, StepSkipped, step
from image2.errors import StepError

STEP = "bkg_subtract"


@attrs.frozen
class Footprint:
    """A rectangle of detector pixels in full-frame 0-based coordinates: ``[y0, y0+ny) × [x0, x0+nx)``."""

    x0: int
    y0: int
    nx: int
    ny: int

    def overlap(self, other: Footprint) -> Footprint | None:
        """Return the common rectangle, or None when the two do not overlap (touching edges do not)."""
        xa, ya = max(self.x0, other.x0), max(self.y0, other.y0)
        xb = min(self.x0 + self.nx, other.x0 + other.nx)
        yb = min(self.y0 + self.ny, other.y0 + other.ny)
        if xb <= xa or yb <= ya:
            return None
        return Footprint(xa, ya, xb - xa, yb - ya)

    def within(self, outer: Footprint) -> tuple[slice, slice]:
        """Return the ``(rows, columns)`` slices of this rectangle inside ``outer``'s array."""
        return (slice(self.y0 - outer.y0, self.y0 - outer.y0 + self.ny),
                slice(self.x0 - outer.x0, self.x0 - outer.x0 + self.nx))


@attrs.frozen
class CombinedBackground:
    """The combined background on the science image plane, as subtracted and as saved.

    ``data`` (float32) is what is subtracted; ``err`` (float32) is the informational
    uncertainty of the mean saved with ``_combinedbackground``; ``dq`` is the OR of every
    member's DQ over the footprint. ``members`` names the background exposures used.
    """

    data: np.ndarray = attrs.field(converter=readonly)
    err: np.ndarray = attrs.field(converter=readonly)
    dq: np.ndarray = attrs.field(converter=readonly)
    members: tuple[str, ...] = attrs.field(converter=tuple)
    sigma: float
    maxiters: int | None


def _name(exposure: Exposure, fallback: str) -> str:
    """Return the exposure's FILENAME card, or ``fallback`` when it has none."""
    return str(exposure.meta.header("PRIMARY").get("FILENAME") or fallback)


def footprint(exposure: Exposure, name: str) -> Footprint:
    """Return where ``exposure`` lies on the detector, from SUBSTRT1/2 and SUBSIZE1/2.

    Without those keywords only a full-frame-shaped exposure can be placed (at the origin).
    """
    sub = exposure.meta.subarray
    ny, nx = exposure.shape
    if None in (sub.xstart, sub.ystart, sub.xsize, sub.ysize):
        if (ny, nx) != full_frame_shape(exposure.meta.instrument.name):
            raise StepError(STEP, f"{name}: SUBSTRT1/2 or SUBSIZE1/2 missing and the {ny}×{nx} "
                                  "array is not full frame, so it cannot be placed on the detector")
        return Footprint(0, 0, nx, ny)
    if (sub.ysize, sub.xsize) != (ny, nx):
        raise StepError(STEP, f"{name}: SUBSIZE1/2 = {sub.xsize}×{sub.ysize} disagree with the "
                              f"{nx}×{ny} data array")
    return Footprint(sub.xstart - 1, sub.ystart - 1, nx, ny)


BLOCK_VALUES = 1 << 19
"""Values of the per-pixel stacks processed at once (4 MiB in float64): bounds the temporaries."""


def _kept(stack: np.ndarray, sigma: float, maxiters: int | None) -> np.ndarray:
    """Return True where a value of ``stack`` survives sigma clipping along axis 0.

    astropy's ``sigma_clip`` (median centre, population std, both sides): NaN/inf are
    excluded from the start; each pixel's column is clipped independently.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*automatically clipped", category=AstropyUserWarning)
        clipped = sigma_clip(stack, sigma=sigma, maxiters=maxiters, axis=0, copy=False)
    return ~np.ma.getmaskarray(clipped)


def _mean(stack: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the kept values (float64), 0.0 where none is kept.

    Computed exactly as numpy's masked mean does, for bit parity with jwst: the kept values
    are summed in the stack's own dtype (float32 for a cube member), then divided by the
    integer count in float64.
    """
    total = np.where(kept, stack, 0).sum(axis=0)
    count = kept.sum(axis=0)
    return np.divide(total, count, out=np.zeros(total.shape), where=count > 0)


def _clipped_mean(stack: np.ndarray, sigma: float, maxiters: int | None) -> np.ndarray:
    """Mean over axis 0 of the values of ``stack`` that survive clipping (0.0 where none does)."""
    return _mean(stack, _kept(stack, sigma, maxiters))


@attrs.frozen
class _Member:
    """A background member that overlaps the science, with where it lies and the overlap."""

    exposure: Exposure
    index: int
    at: Footprint
    overlap: Footprint


def _laid(member: _Member, block_at: Footprint) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Return the member's SCI, ERR, DQ on the science rows ``block_at``, at their true position.

    Outside the member SCI and ERR are NaN and DQ 0; None when it has no pixel in the block.
    Where the member covers the whole block the arrays are views, not copies.
    """
    piece = member.overlap.overlap(block_at)
    if piece is None:
        return None
    rows_in, cols_in = piece.within(member.at)
    arrays = (member.exposure.sci, member.exposure.err, member.exposure.dq)
    if piece == block_at:
        return tuple(a[..., rows_in, cols_in] for a in arrays)  # type: ignore[return-value]
    rows_out, cols_out = piece.within(block_at)
    shape = (*member.exposure.sci.shape[:-2], block_at.ny, block_at.nx)
    laid = (np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32), np.zeros(shape, np.uint32))
    for out, array in zip(laid, arrays):
        out[..., rows_out, cols_out] = array[..., rows_in, cols_in]
    return laid


def _combined_block(members: Sequence[_Member], n: int, block_at: Footprint, cube: bool, sigma: float,
                    maxiters: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the combined background's data, err and DQ over the science rows ``block_at``.

    Per member: 2-D SCI (float64) and ERR² (float32 product), or for a cube the clipped means
    over its own integrations. Then the members' values are clipped per pixel and averaged;
    err is sqrt(sum of the ERR² of the kept members) / their number (informational, jwst).
    A cube member's mean is 0.0 wherever it has no finite value, including science pixels
    outside a partial overlap, so there it counts as a background of 0 (jwst, steps.md §1.4).
    """
    values = np.full((n, block_at.ny, block_at.nx), np.nan)
    err2 = np.full((n, block_at.ny, block_at.nx), np.nan)
    dq = np.zeros((block_at.ny, block_at.nx), np.uint32)
    for member in members:
        laid = _laid(member, block_at)
        if laid is None:
            if cube:  # what averaging its NaN-filled integrations gives, as in the rows it covers
                values[member.index] = err2[member.index] = 0.0
            continue
        sci, err, flags = laid
        if cube:
            values[member.index] = _clipped_mean(sci, sigma, maxiters)
            err2[member.index] = _clipped_mean(err * err, sigma, maxiters)
            dq |= np.bitwise_or.reduce(flags, axis=0)
        else:
            values[member.index] = sci
            err2[member.index] = err * err
            dq |= flags
    kept = _kept(values, sigma, maxiters)
    mean = _mean(values, kept)
    root = np.sqrt(np.where(kept, err2, 0).sum(axis=0))
    count = kept.sum(axis=0)
    err = np.divide(root, count, out=root, where=count > 0)
    return mean.astype(np.float32), err.astype(np.float32), dq


def combine_backgrounds(science: Exposure, backgrounds: Sequence[Exposure], *, sigma: float = 3.0,
                        maxiters: int | None = None) -> CombinedBackground | None:
    """Return the sigma-clipped mean of ``backgrounds`` on ``science``'s footprint (None if there are none).

    A member that does not overlap the science contributes nothing; a 3-D member is first
    reduced to one plane by a clipped mean over its own integrations. Every pixel is
    independent, so the work goes in blocks of rows to bound memory on full frames.
    """
    if not backgrounds:
        return None
    names = tuple(_name(b, f"background {i + 1}") for i, b in enumerate(backgrounds))
    for name, member in zip(names, backgrounds):
        if member.sci.ndim != science.sci.ndim:
            raise StepError(STEP, f"{name} is {member.sci.ndim}-D but the science exposure is "
                                  f"{science.sci.ndim}-D; backgrounds must have the science's dimensionality")
    science_at = footprint(science, _name(science, "science exposure"))
    members = []
    for index, (name, member) in enumerate(zip(names, backgrounds)):
        member_at = footprint(member, name)
        overlap = science_at.overlap(member_at)
        if overlap is not None:
            members.append(_Member(member, index, member_at, overlap))
    ny, nx = science.shape
    data, err = np.empty((ny, nx), np.float32), np.empty((ny, nx), np.float32)
    dq = np.empty((ny, nx), np.uint32)
    depth = max([len(backgrounds), *(m.exposure.nints for m in members)])
    step_rows = max(1, BLOCK_VALUES // (depth * nx))
    for first in range(0, ny, step_rows):
        rows = slice(first, min(ny, first + step_rows))
        block_at = Footprint(science_at.x0, science_at.y0 + first, nx, rows.stop - first)
        data[rows], err[rows], dq[rows] = _combined_block(members, len(backgrounds), block_at, science.is_cube,
                                                          sigma, maxiters)
    return CombinedBackground(data=data, err=err, dq=dq, members=names, sigma=sigma, maxiters=maxiters)


@step(STEP)
def bkg_subtract(exposure: Exposure, background: CombinedBackground | None) -> Outcome:
    """Subtract the combined background from SCI (every integration of a cube) and OR its DQ in.

    ERR and the variances are not changed: background noise is not propagated (jwst). The
    provenance records the parameters the background was combined with (``sigma``, ``maxiters``).
    """
    if background is None:
        raise StepSkipped("no background exposures")
    if background.data.shape != exposure.shape:
        raise StepError(STEP, f"combined background plane {background.data.shape} differs from the "
                              f"science image plane {exposure.shape}")
    note = (f"subtracted the sigma-clipped mean of {len(background.members)} background exposure(s): "
            f"{', '.join(background.members)}")
    return Outcome(exposure.evolve(sci=exposure.sci - background.data, dq=exposure.dq | background.dq),
                   notes=(note,))
