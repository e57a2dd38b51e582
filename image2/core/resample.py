"""resample (steps.md §7): drizzle one calibrated exposure onto a distortion-free sky grid (the i2d).

The drizzling itself is drizzle 3's compiled ``Drizzle`` class; this module builds its inputs
(pixel map, weights, pixel range) and the i2d record around its outputs. By default every
array is computed exactly as jwst 3.0 does, including its variance propagation (each
variance drizzled as a standard deviation, squared, then divided by the squared pixel-scale
ratio). ``variance_mode="squared_weights"`` instead co-adds the variances with drizzle 3's
squared-weight channel in the same pass as SCI, giving each output pixel the variance of its
weighted mean, Σ(w·a)²·V / (Σ w·a)², with no 1/ratio² factor: statistically right for independent
input pixels (correlations between output pixels are not represented, as in jwst), three drizzle
passes cheaper, and different from jwst's numbers (typically 1.5–3 times smaller at ratio 1).

The cal record is never modified. When the exposure cannot be resampled for a reason the
user did not cause (3-D or time-series data, an EXP_TYPE that is not resampled, no positive
EFFEXPTM: the rules declared for it in :mod:`image2.core.steps`) :func:`resample` returns the cal record marked ``S_RESAMP = SKIPPED`` with the
reason in its provenance, and no i2d; jwst fails outright on a non-positive exposure time.

Liger/IRIS-format frames (resampled only on request: Liger's stage 2 has no resample) have no
telescope pointing and no VAR_* arrays: their grid is placed North up, East left at the input's
pixel scale at the frame centre, and ERR² is drizzled as their one variance, as jwst drizzles
each of its variances, giving the i2d's ERR (no VAR_* arrays).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from image2.core.dq import RESAMPLE_GOOD_BITS, good_pixels
from image2.core.drizzle_passes import Drizzled, drizzle_passes
from image2.core.exposure import Exposure
from image2.core.fast_transform import mapped_pixels
from image2.core.frozen import readonly
from image2.core.meta import Meta, Pointing
from image2.core.nan_sync import nan_synced
from image2.core.output_grid import OutputGrid, default_grid, given_grid
from image2.core.parallel import blas_single_threaded
from image2.core.plan import plan_step
from image2.core.polygon import clip_convex, clockwise, simplified
from image2.core.provenance import Outcome, StepSkipped, step
from image2.core.sky_region import PREFIX, parse_s_region
from image2.core.steps import LIGER_FORMAT, family_of
from image2.errors import StepError

STEP = "resample"

KERNELS = ("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")
WEIGHT_TYPES = ("ivm", "exptime")
VARIANCE_MODES = ("jwst", "squared_weights")

VARIANCE_NAMES = ("var_rnoise", "var_flat", "var_poisson")
"""The resampled variances, in jwst's order (read noise first: it also sets the ivm weights)."""

PIXMAP_BLOCK = 28672
"""Input pixels mapped per block where OpenBLAS may use threads: small enough that it computes the
3×3 sky rotations single-threaded (its threshold is M·N·K ≤ 262144), which avoids thread
hand-offs that cost more than they save on a busy 2-core machine. The numbers do not depend on it."""

PIXMAP_BLOCK_SERIAL_BLAS = 131072
"""Input pixels mapped per block where OpenBLAS is single-threaded (the command line and its workers
set OPENBLAS_NUM_THREADS=1): fewer calls, so less of astropy's and numpy's per-call work; a full-frame
map took 1.6–1.9 s on one core instead of 2.3–2.5 s, and 1.1 s on two instead of 1.5–1.8 s."""


def _pixmap_block() -> int:
    """Input pixels to map per block: the bigger block when BLAS cannot start threads for it."""
    return PIXMAP_BLOCK_SERIAL_BLAS if blas_single_threaded() else PIXMAP_BLOCK

_SIP_CARD = re.compile(r"^(CD[12]_[12]|[AB]P?_\d+_\d+|[AB]P?_ORDER)$")
_PRIMARY_WCS_CARD = re.compile(r"^(WCSAXES|CRPIX\d|CRVAL\d|CTYPE\d|CUNIT\d|CDELT\d|PC\d_\d|CD\d_\d|S_REGION)$")
"""The input's own WCS in PRIMARY (Liger/IRIS frames keep it there): not the i2d's, whose WCS is in SCI."""
_SIP_KEY = re.compile(r"^(cd[12]_[12]|[ab]p?_\d_\d|[ab]p?_order)$")
POINTING_CARDS = ("V2_REF", "V3_REF", "RA_REF", "DEC_REF", "ROLL_REF", "V3I_YANG", "VPARITY")
POINTING_KEYS = ("v2_ref", "v3_ref", "ra_ref", "dec_ref", "roll_ref", "v3yangle", "vparity")


def _float32(array: Any) -> np.ndarray:
    return readonly(np.asarray(array, dtype=np.float32))


def _float32_or_none(array: Any) -> np.ndarray | None:
    return None if array is None else _float32(array)


@attrs.frozen
class Resampled:
    """The i2d product: the drizzled image, its weights, context and uncertainties, metadata and WCS.

    SCI, WHT and the optional ERR/VAR_* are float32 ``(ny, nx)``; CON is int32
    ``(nplanes, ny, nx)``; DQ (only with ``propagate_dq``) is uint32. ``wcs`` is the output gwcs.
    """

    sci: np.ndarray = attrs.field(converter=_float32)
    wht: np.ndarray = attrs.field(converter=_float32)
    con: np.ndarray | None = attrs.field(default=None, converter=lambda a: None if a is None else readonly(np.asarray(a, np.int32)))
    err: np.ndarray | None = attrs.field(default=None, converter=_float32_or_none)
    var_rnoise: np.ndarray | None = attrs.field(default=None, converter=_float32_or_none)
    var_poisson: np.ndarray | None = attrs.field(default=None, converter=_float32_or_none)
    var_flat: np.ndarray | None = attrs.field(default=None, converter=_float32_or_none)
    dq: np.ndarray | None = attrs.field(default=None, converter=lambda a: None if a is None else readonly(np.asarray(a, np.uint32)))
    meta: Meta = attrs.field(factory=Meta)
    wcs: Any = None

    def __attrs_post_init__(self) -> None:
        if self.sci.ndim != 2:
            raise ValueError(f"SCI of an i2d must be 2-D, not {self.sci.ndim}-D")
        for name in ("wht", "err", "var_rnoise", "var_poisson", "var_flat", "dq"):
            array = getattr(self, name)
            if array is not None and array.shape != self.sci.shape:
                raise ValueError(f"{name.upper()} shape {array.shape} differs from SCI {self.sci.shape}")
        if self.con is not None and (self.con.ndim != 3 or self.con.shape[1:] != self.sci.shape):
            raise ValueError(f"CON must be (nplanes, {self.sci.shape[0]}, {self.sci.shape[1]}), not {self.con.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        """The output shape ``(ny, nx)``."""
        return self.sci.shape

    def variances(self) -> dict[str, np.ndarray]:
        """Return the variance arrays that are present, by extension name."""
        named = {"VAR_POISSON": self.var_poisson, "VAR_RNOISE": self.var_rnoise, "VAR_FLAT": self.var_flat}
        return {name: array for name, array in named.items() if array is not None}


# ---- pixel map ---------------------------------------------------------------------------------

def pixel_map(input_wcs: Any, output_wcs: Any, shape: tuple[int, int], *, stepsize: float = 1.0,
              order: int = 1) -> np.ndarray:
    """Return where each input pixel centre lands on the output grid: ``(ny, nx, 2)`` of (x, y).

    The input WCS is evaluated with its bounding box (NaN outside), the output inverse
    without; the result equals ``drizzle.utils.calc_pixmap(input_wcs, output_wcs, shape)``,
    evaluated a block of rows at a time and without touching either WCS. With ``stepsize > 1``
    the mapping is evaluated on a coarse grid (at most ``stepsize`` apart, at least 10 points
    per axis) spanning the input box and interpolated with ``order`` 1 or 3 splines, falling
    back to the exact map when a coarse value is not finite (jwst's ``pixmap_stepsize``).
    """
    ny, nx = shape
    box = input_wcs.bounding_box
    if box is None:
        xmin, xmax, ymin, ymax = 0, nx - 1, 0, ny - 1
    else:
        (x1, x2), (y1, y2) = box.bounding_box(order="F")
        xmin, xmax = max(0, math.ceil(x1)), min(nx - 1, math.floor(x2))
        ymin, ymax = max(0, math.ceil(y1)), min(ny - 1, math.floor(y2))
    width, height = xmax - xmin + 1, ymax - ymin + 1
    if stepsize > 1 and max(width, height) > 10:
        coarse = _interpolated_map(input_wcs, output_wcs, shape, (xmin, xmax, ymin, ymax), stepsize, order)
        if coarse is not None:
            return coarse
    rows = max(1, _pixmap_block() // max(nx, 1))
    return mapped_pixels(input_wcs.forward_transform, output_wcs.backward_transform, shape, rows,
                         lambda start, stop: not _inside_box(box, (0, nx - 1, start, stop - 1)))


def _inside_box(box: Any, limits: tuple[int, int, int, int]) -> bool:
    """True when the pixel rectangle ``limits`` (xmin, xmax, ymin, ymax) lies inside a WCS box.

    Then evaluating without the box gives the same numbers (every point is inside) and saves
    astropy's mask, gather and scatter.
    """
    if box is None:
        return True
    try:
        (x1, x2), (y1, y2) = box.bounding_box(order="F")
    except (AttributeError, TypeError, ValueError):
        return False
    xmin, xmax, ymin, ymax = limits
    return x1 <= xmin and xmax <= x2 and y1 <= ymin and ymax <= y2


def _mapped(input_wcs: Any, output_wcs: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output pixel coordinates of input pixels (x, y), NaN outside the input WCS box."""
    world = input_wcs.pixel_to_world_values(x, y)
    return output_wcs.invert(*world, with_bounding_box=False)


def _interpolated_map(input_wcs: Any, output_wcs: Any, shape: tuple[int, int], limits: tuple[int, int, int, int],
                      stepsize: float, order: int) -> np.ndarray | None:
    """The spline-interpolated pixel map, or None when the coarse grid has non-finite points."""
    xmin, xmax, ymin, ymax = limits
    width, height = xmax - xmin + 1, ymax - ymin + 1
    x_coarse = np.linspace(xmin, xmax, max(math.ceil(width / stepsize), min(10, width)))
    y_coarse = np.linspace(ymin, ymax, max(math.ceil(height / stepsize), min(10, height)))
    gx, gy = np.meshgrid(x_coarse, y_coarse)
    cx, cy = _mapped(input_wcs, output_wcs, gx, gy)
    if not (np.all(np.isfinite(cx)) and np.all(np.isfinite(cy))):
        return None
    from scipy.interpolate import RectBivariateSpline  # only for a coarse map: scipy costs ~0.5 s to import

    pixmap = np.full((*shape, 2), np.nan)
    rows, columns = np.arange(ymin, ymax + 1), np.arange(xmin, xmax + 1)
    for axis, values in enumerate((cx, cy)):
        spline = RectBivariateSpline(y_coarse, x_coarse, values, kx=order, ky=order)
        pixmap[ymin:ymax + 1, xmin:xmax + 1, axis] = spline(rows, columns)
    return pixmap


# ---- weights and ranges ------------------------------------------------------------------------

def good_pixel_mask(dq: np.ndarray) -> np.ndarray:
    """Return uint8 1 where the fixed good bits ``~DO_NOT_USE+NON_SCIENCE`` allow a pixel, else 0."""
    return good_pixels(dq, RESAMPLE_GOOD_BITS).view(np.uint8)


def weight_map(exposure: Exposure, weight_type: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Return the float32 drizzle weight of every input pixel and any note about it (§7.3).

    ``ivm``: 1/VAR_RNOISE (non-finite → 0), or 1 when VAR_RNOISE is absent; ``exptime``:
    TMEASURE, or EFFEXPTM when it is absent. Either is multiplied by the good-pixel mask.
    """
    good = good_pixel_mask(exposure.dq)
    if weight_type == "exptime":
        return np.float32(_measurement_time(exposure.meta)) * good, ()
    if exposure.var_rnoise is None:
        return np.ones(exposure.shape, dtype=np.float32) * good, ("VAR_RNOISE is absent: good pixels weighted equally",)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / exposure.var_rnoise
    inverse[~np.isfinite(inverse)] = 0
    return (inverse * good).astype(np.float32, copy=False), ()


def _measurement_time(meta: Meta) -> float:
    tmeasure = meta.exposure.tmeasure
    return meta.exposure.effexptm if tmeasure is None else tmeasure


def input_range(wcs: Any, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Return the inclusive input pixel range ``(xmin, xmax, ymin, ymax)`` inside the WCS box."""
    ny, nx = shape
    if wcs.bounding_box is None:
        return 0, max(nx - 1, 0), 0, max(ny - 1, 0)
    (x1, x2), (y1, y2) = wcs.bounding_box.bounding_box(order="F")
    xmin, ymin = max(0, int(x1 + 0.5)), max(0, int(y1 + 0.5))
    return xmin, max(xmin, min(nx - 1, int(x2 + 0.5))), ymin, max(ymin, min(ny - 1, int(y2 + 0.5)))


# ---- the step ----------------------------------------------------------------------------------

def _check_parameters(pixfrac: float, kernel: str, weight_type: str, pixmap_order: int, variance_mode: str,
                      pairs: Mapping[str, Sequence[float] | None], pixel_scale_ratio: float,
                      pixel_scale: float | None) -> None:
    if not 0.0 <= pixfrac <= 1.0:
        raise StepError(STEP, f"pixfrac must be between 0 and 1, not {pixfrac}")
    if kernel not in KERNELS:
        raise StepError(STEP, f"unknown kernel {kernel!r} (known: {', '.join(KERNELS)})")
    if weight_type not in WEIGHT_TYPES:
        raise StepError(STEP, f"unknown weight_type {weight_type!r} (known: {', '.join(WEIGHT_TYPES)})")
    if pixmap_order not in (1, 3):
        raise StepError(STEP, f"pixmap_order must be 1 or 3, not {pixmap_order}")
    if variance_mode not in VARIANCE_MODES:
        raise StepError(STEP, f"unknown variance_mode {variance_mode!r} (known: {', '.join(VARIANCE_MODES)})")
    for name, value in pairs.items():
        if value is not None and len(value) != 2:
            raise StepError(STEP, f"{name} must have two values, not {list(value)}")
    if pairs["output_shape"] is not None and min(pairs["output_shape"]) < 1:
        raise StepError(STEP, f"output_shape must be positive, not {list(pairs['output_shape'])}")
    if not pixel_scale_ratio > 0 or (pixel_scale is not None and not pixel_scale > 0):
        raise StepError(STEP, "pixel_scale_ratio and pixel_scale must be positive")


@step(STEP)
def resample(
    exposure: Exposure,
    *,
    pixfrac: float = 1.0,
    kernel: str = "square",
    fillval: str = "NAN",
    weight_type: str = "ivm",
    output_shape: Sequence[int] | None = None,
    crpix: Sequence[float] | None = None,
    crval: Sequence[float] | None = None,
    rotation: float | None = None,
    pixel_scale_ratio: float = 1.0,
    pixel_scale: float | None = None,
    output_wcs: Any = None,
    enable_ctx: bool = True,
    enable_err: bool = True,
    report_var: bool = True,
    propagate_dq: bool = False,
    pixmap_stepsize: float = 1.0,
    pixmap_order: int = 1,
    variance_mode: str = "jwst",
) -> Outcome:
    """Return the i2d of a 2-D cal exposure, or the exposure marked S_RESAMP=SKIPPED (see module doc).

    ``output_shape`` is ``(nx, ny)``; ``crpix`` 0-based ``(x, y)``; ``crval`` ``(ra, dec)``
    deg; ``rotation`` the position angle of output +y from North (deg); ``pixel_scale``
    arcsec (overrides ``pixel_scale_ratio``). ``output_wcs`` is a gwcs object that replaces
    all of these; ``pixel_scale`` then gives its pixel scale if known. ``variance_mode`` is
    ``"jwst"`` or ``"squared_weights"`` (module doc). Raises StepError for invalid parameters
    or an exposure without WCS or S_REGION.
    """
    _check_parameters(pixfrac, kernel, weight_type, pixmap_order, variance_mode,
                      {"output_shape": output_shape, "crpix": crpix, "crval": crval},
                      pixel_scale_ratio, pixel_scale)
    planned = plan_step(STEP, exposure.meta, cube=exposure.is_cube)
    if not planned.runs:
        raise StepSkipped(planned.reason)
    if exposure.wcs is None:
        raise StepError(STEP, "the exposure has no WCS (assign_wcs did not run or was skipped)")
    if isinstance(output_wcs, (str, bytes)) or hasattr(output_wcs, "__fspath__"):
        raise StepError(STEP, "output_wcs must be a gwcs object; read the ASDF file with image2.io.i2d.read_output_wcs")
    liger = family_of(exposure.meta) == LIGER_FORMAT
    region = exposure.meta.header("PRIMARY" if liger else "SCI").get("S_REGION")
    footprints = _footprints(region)
    exposure = nan_synced(exposure)
    if output_wcs is None:
        if footprints is None:
            raise StepError(STEP, "the exposure has no usable S_REGION to place the output grid on")
        pointing = _header_pointing(exposure) if liger else exposure.meta.pointing
        grid = default_grid(exposure.wcs, footprints, pointing, exposure.shape,
                            pixel_scale_ratio=pixel_scale_ratio, pixel_scale=pixel_scale, rotation=rotation,
                            crpix=crpix, crval=crval, output_shape=output_shape)
    else:
        grid = given_grid(output_wcs, exposure.wcs, exposure.shape, exposure.meta.photometry.pixar_sr,
                          pixel_scale=pixel_scale, output_shape=output_shape)
    arrays, notes = _drizzled(exposure, grid, pixfrac=pixfrac, kernel=kernel, fillval=fillval,
                              weight_type=weight_type, enable_ctx=enable_ctx, enable_err=enable_err,
                              propagate_dq=propagate_dq, stepsize=pixmap_stepsize, order=pixmap_order,
                              variance_mode=variance_mode)
    region_text, region_notes = output_region(footprints, grid)
    meta = _i2d_meta(exposure.meta, grid, region_text, weight_type=weight_type, pixfrac=pixfrac,
                     kernel=kernel, fillval=fillval, enable_err=enable_err)
    if not (enable_err and report_var):
        arrays.update(var_rnoise=None, var_flat=None, var_poisson=None)
    return Outcome(Resampled(**arrays, meta=meta, wcs=grid.wcs), (*notes, *region_notes))


def _header_pointing(exposure: Exposure) -> Pointing:
    """The pointing a Liger/IRIS-format frame's grid is placed by (it has no telescope pointing keywords):
    the sky position of the frame centre, North up and East left (position angle 0, sky parity)."""
    ny, nx = exposure.shape
    ra, dec = exposure.wcs((nx - 1) / 2, (ny - 1) / 2, with_bounding_box=False)
    return Pointing(ra_ref=float(ra), dec_ref=float(dec), roll_ref=0.0, vparity=-1, v3i_yang=0.0)


def _footprints(region: Any) -> list[np.ndarray] | None:
    if not isinstance(region, str) or not region.strip():
        return None
    try:
        return parse_s_region(region)
    except ValueError:
        return None


def _drizzled(exposure: Exposure, grid: OutputGrid, *, pixfrac: float, kernel: str, fillval: str, weight_type: str,
              enable_ctx: bool, enable_err: bool, propagate_dq: bool, stepsize: float, order: int,
              variance_mode: str) -> tuple[dict[str, np.ndarray | None], tuple[str, ...]]:
    """Drizzle SCI (and DQ) and the variances; return the output arrays by field name and notes."""
    squared = enable_err and variance_mode == "squared_weights"
    names = _variance_names(exposure)
    passes, notes = _passes(exposure, grid, pixfrac=pixfrac, kernel=kernel, fillval=fillval, weight_type=weight_type,
                            enable_ctx=enable_ctx, variances=names if enable_err else (), squared=squared,
                            propagate_dq=propagate_dq, stepsize=stepsize, order=order)
    out: dict[str, np.ndarray | None] = {
        "sci": passes.sci, "wht": passes.wht, "con": passes.con, "dq": passes.dq, "err": None,
        "var_rnoise": None, "var_flat": None, "var_poisson": None,
    }
    if not enable_err:
        return out, notes
    if squared:
        resampled = dict(zip(names, passes.sci2, strict=True))
    else:
        drizzled = {name: np.square(deviation, out=deviation)  # the pass's own arrays, squared in place
                    for name, deviation in zip(names, passes.deviations, strict=True) if deviation is not None}
        resampled = _jwst_variances(exposure, grid, weight_type, drizzled, names)
    out["err"] = _error(resampled, names)
    out.update({name: array for name, array in resampled.items() if name in VARIANCE_NAMES})
    return out, notes


def _passes(exposure: Exposure, grid: OutputGrid, *, pixfrac: float, kernel: str, fillval: str, weight_type: str,
            enable_ctx: bool, variances: Sequence[str], squared: bool, propagate_dq: bool, stepsize: float,
            order: int) -> tuple[Drizzled, tuple[str, ...]]:
    """Run the drizzle passes of SCI (and DQ) and of the ``variances`` (by name); return them and notes.

    The pixel map and the weights live only here: they are freed as soon as the passes have run.
    """
    pixmap = pixel_map(exposure.wcs, grid.wcs, exposure.shape, stepsize=stepsize, order=order)
    weights, notes = weight_map(exposure, weight_type)
    xmin, xmax, ymin, ymax = input_range(exposure.wcs, exposure.shape)
    data = exposure.sci
    level, subtracted = exposure.meta.header("PRIMARY").get("BKGLEVEL"), exposure.meta.header("PRIMARY").get("BKGSUB")
    if level is not None and not subtracted:
        data = data - level
    common = {"exptime": exposure.meta.exposure.effexptm, "pixmap": pixmap, "iscale": 1.0,
              "pixel_scale_ratio": grid.pixel_scale_ratio, "weight_map": weights, "wht_scale": 1.0,
              "pixfrac": pixfrac, "in_units": "cps", "xmin": xmin, "xmax": xmax, "ymin": ymin, "ymax": ymax}
    arrays = [_variance(exposure, name) for name in variances]
    passes = drizzle_passes(data, [] if squared else arrays, common, kernel=kernel, fillval=fillval,
                            enable_ctx=enable_ctx, shape=grid.shape, dq=exposure.dq if propagate_dq else None,
                            data2=arrays if squared else None, fillval2="NaN" if squared else None)
    return passes, notes + passes.warnings


def _variance_names(exposure: Exposure) -> tuple[str, ...]:
    """The variances drizzled: VAR_RNOISE/VAR_FLAT/VAR_POISSON, or for a Liger/IRIS-format frame
    (which has only ERR) ``"err"``, ERR² as one variance giving the i2d's ERR and no VAR_* arrays."""
    return ("err",) if family_of(exposure.meta) == LIGER_FORMAT else VARIANCE_NAMES


def _variance(exposure: Exposure, name: str) -> np.ndarray | None:
    """The variance array ``name`` of ``exposure`` (``"err"``: ERR squared)."""
    return np.square(exposure.err) if name == "err" else getattr(exposure, name)


VARIANCE_ROWS = 128
"""Output rows of the variance stage computed at once: its float64 and mask temporaries are a few MiB
for the block instead of whole frames (each pixel's arithmetic does not depend on it)."""


def _row_blocks(rows: int) -> list[slice]:
    return [slice(start, min(rows, start + VARIANCE_ROWS)) for start in range(0, rows, VARIANCE_ROWS)]


def _jwst_variances(exposure: Exposure, grid: OutputGrid, weight_type: str, drizzled: dict[str, np.ndarray],
                    names: Sequence[str] = VARIANCE_NAMES) -> dict[str, np.ndarray]:
    """Return the variances ``names`` (VAR_RNOISE/VAR_FLAT/VAR_POISSON) propagated as jwst 3.0 does
    (§7.3, precision rules); NaN arrays for those not drizzled.

    ``drizzled`` holds the squared drizzled deviation of each variance present: arrays the caller
    owns, which become the variances (computed in place, a block of rows at a time).
    """
    scaling = 1.0 / grid.pixel_scale_ratio**2
    present = [name for name in names if name in drizzled]
    for rows in _row_blocks(grid.shape[0]):
        weight = _output_weight(exposure, weight_type, drizzled.get("var_rnoise"), rows, grid.shape[1])
        for name in present:
            _propagated(drizzled[name][rows], weight, scaling, grid.ratio_is_exact)
    return {name: drizzled[name] if name in drizzled else np.full(grid.shape, np.nan, dtype=np.float32)
            for name in names}


def _output_weight(exposure: Exposure, weight_type: str, rnoise: np.ndarray | None, rows: slice,
                   width: int) -> np.ndarray:
    """The float64 weight jwst gives the output pixels of ``rows``: the measurement time (``exptime``), else
    the float32 reciprocal of the drizzled read-noise variance where it is positive and finite (0
    elsewhere), else 1."""
    shape = (rows.stop - rows.start, width)
    if weight_type == "exptime":
        return np.full(shape, _measurement_time(exposure.meta))
    if rnoise is None:
        return np.ones(shape)
    block = rnoise[rows]
    weight = np.zeros(shape)  # float64 holding the float32 reciprocals, as jwst has it
    with np.errstate(divide="ignore", invalid="ignore"):
        np.copyto(weight, np.reciprocal(block), where=(block > 0) & np.isfinite(block))
    return weight


def _propagated(value: np.ndarray, weight: np.ndarray, scaling: float, exact: bool) -> None:
    """Turn ``value``, a block of one squared drizzled deviation, into its variance in place, with the
    block's output ``weight`` (jwst 3.0's arithmetic, element by element)."""
    unused = ~((value >= 0) & np.isfinite(value) & (weight > 0))
    # jwst accumulates S = nansum(S, V·W·W) from S = NaN and T += W over its inputs; for the
    # one input here that is S = V·W·W (formed in float64, NaN → 0) and T = W, stored float32
    with np.errstate(over="ignore", invalid="ignore"):
        product = np.multiply(value, weight)
        product *= weight
    np.copyto(product, 0.0, where=np.isnan(product))
    total = product.astype(np.float32)
    total[unused] = np.nan
    weight_sum = weight.astype(np.float32)
    weight_sum[unused] = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if exact:
            variance = np.multiply(total, np.float32(scaling), out=total)
            variance /= weight_sum
            variance /= weight_sum
        else:
            variance = (total * np.float64(scaling) / weight_sum / weight_sum).astype(np.float32)
    value[...] = variance


def _error(variances: Mapping[str, np.ndarray], names: Sequence[str] = VARIANCE_NAMES) -> np.ndarray:
    """ERR = √(sum of the variances ``names``, NaN ignored); NaN where every variance is NaN (a block of
    rows at a time)."""
    components = [variances[name] for name in names]
    err = np.empty(components[0].shape, dtype=np.float32)
    for rows in _row_blocks(err.shape[0]):
        total = np.zeros(err[rows].shape, dtype=np.float32)
        all_nan = np.ones(err[rows].shape, dtype=bool)
        for component in components:
            finite_or_inf = ~np.isnan(component[rows])
            total += np.where(finite_or_inf, component[rows], np.float32(0))
            all_nan &= ~finite_or_inf
        np.sqrt(total, out=err[rows])
        err[rows][all_nan] = np.nan
    return err


# ---- footprint and metadata --------------------------------------------------------------------

def output_region(footprints: Sequence[np.ndarray] | None, grid: OutputGrid) -> tuple[str | None, tuple[str, ...]]:
    """Return the i2d S_REGION: the input footprint(s) clipped to the output grid (§7.4), and notes.

    Each input polygon is mapped to output pixels, clipped to the output box outline (its sky
    corners mapped back), cleared of near-duplicate and collinear vertices and mapped to the
    sky again. None (with a note) when there is no footprint or nothing overlaps.
    """
    if footprints is None:
        return None, ("S_REGION not set: the input has no usable S_REGION",)
    try:
        sky_to_pixel = grid.wcs.backward_transform
        pixel_to_sky = grid.wcs.forward_transform
        corners = grid.wcs.footprint()
        window = np.column_stack(sky_to_pixel(corners[:, 0], corners[:, 1]))
        texts = []
        for polygon in footprints:
            pixels = np.column_stack(sky_to_pixel(polygon[:, 0], polygon[:, 1]))
            clipped = simplified(clockwise(clip_convex(pixels, window)))
            if len(clipped) >= 3:
                ra, dec = pixel_to_sky(clipped[:, 0], clipped[:, 1])
                texts.append(PREFIX + " ".join(f"{a:.9f} {d:.9f}" for a, d in zip(ra, dec, strict=True)))
    except (ValueError, TypeError, np.linalg.LinAlgError) as error:
        return None, (f"S_REGION not set: {error}",)
    if not texts:
        return None, ("S_REGION not set: the input footprint does not overlap the output grid",)
    return "  ".join(texts), ()


def _i2d_meta(meta: Meta, grid: OutputGrid, region: str | None, *, weight_type: str, pixfrac: float, kernel: str,
              fillval: str, enable_err: bool) -> Meta:
    """Return the i2d metadata: the cal's, with the output WCS, pixel area, times and drizzle keywords (§7.4)."""
    exposure = meta.exposure
    effexptm = exposure.effexptm
    duration = exposure.duration if exposure.duration is not None else 0.0
    sci = meta.header("SCI").without_matching(lambda k: bool(_SIP_CARD.match(k)) or k in POINTING_CARDS)
    sci = sci.updated({**grid.wcs_cards(), "S_REGION": region, "XPOSURE": effexptm, "TELAPSE": duration})
    primary = meta.header("PRIMARY").without(("BKGLEVEL", "BKGSUB"))
    if family_of(meta) == LIGER_FORMAT:
        primary = primary.without(("DATAMODL",))  # the i2d is in our layout, not a Liger datamodel's
    primary = primary.without_matching(lambda k: bool(_PRIMARY_WCS_CARD.match(k))).updated({
        "NDRIZ": 1, "RESWHT": weight_type, "PIXFRAC": pixfrac, "PXSCLRT": float(grid.pixel_scale_ratio)})
    wcsinfo = {key: value for key, value in dict(meta.tree.get("wcsinfo") or {}).items()
               if not _SIP_KEY.match(key) and key not in POINTING_KEYS}
    wcsinfo["radesys"] = "ICRS"
    cards = {**meta.cards, "SCI": sci, "PRIMARY": primary}
    return meta.evolve(
        pointing=Pointing(va_scale=meta.pointing.va_scale),
        photometry=attrs.evolve(meta.photometry, pixar_sr=grid.pixar_sr, pixar_a2=grid.pixar_a2),
        exposure=attrs.evolve(exposure, effexptm=effexptm, duration=duration),
        units=meta.units if enable_err else attrs.evolve(meta.units, err=None),
        cards=cards,
    ).with_tree(wcsinfo=wcsinfo, resample={"kernel": kernel, "fillval": fillval})
