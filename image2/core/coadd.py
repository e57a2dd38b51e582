"""One drizzle pass for SCI and the variance deviations: each input pixel's overlaps are computed once.

jwst drizzles SCI and then each variance's square root in passes of their own, with the same
pixel map and weights, so every pass computes the same overlaps and the same weight sequence.
The compiled ``image2.core._coadd`` computes them once and updates SCI and every deviation
together, reproducing drizzle 3.0's arithmetic step by step: each output array is bit-identical
to its own drizzle pass (tests compare them on random inputs and pixel maps). The output rows
are split into bands run on threads (the extension releases the GIL); each output pixel still
receives its updates in input-pixel order.

:func:`coadd_passes` returns None when the extension is not built or a call is not one it
reproduces (squared-weight channels, units other than cps, a pixel-scale ratio to estimate);
the caller then runs drizzle's own passes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

try:
    from image2.core import _coadd
except ImportError:  # not built (a pure install): drizzle's own passes are used
    _coadd = None

KERNEL_VERSION = 2
"""The interface of ``_coadd`` this module calls (2: variances drizzled as their square roots in the kernel);
a build of another version is not used, so a stale build falls back to drizzle's passes."""

KERNEL_CODES = {"square": 0, "gaussian": 1, "point": 2, "turbo": 3, "lanczos2": 4, "lanczos3": 5}
NOT_FLUX_CONSERVING = ("gaussian", "lanczos2", "lanczos3")


def available() -> bool:
    """True when the compiled one-pass kernel is importable and of this module's version."""
    return _coadd is not None and getattr(_coadd, "VERSION", 1) == KERNEL_VERSION


def fill_value(fillval: Any) -> np.float32:
    """The float32 value drizzle writes into output pixels without input (NaN for None, INDEF, NaN)."""
    text = "INDEF" if fillval is None else str(fillval).strip()
    if text.upper() in ("", "INDEF") or text in ("NaN", "nan"):
        return np.float32(np.nan)
    return np.float32(_coadd.parse_float32(text) if _coadd is not None else float(text))


def _section(pixmap: np.ndarray, xmin: int, xmax: int, ymin: int, ymax: int) -> tuple[int, int, int, int]:
    """The input section drizzle scans: the box shrunk to the rows and columns with a finite map value.

    drizzle takes the smallest first-valid column and the first valid row, then the largest
    last-valid column and the last valid row, never going below the first pair.
    """
    box = pixmap[ymin:ymax + 1, xmin:xmax + 1]
    valid = ~(np.isnan(box[..., 0]) | np.isnan(box[..., 1]))
    rows = np.flatnonzero(valid.any(axis=1))
    if rows.size == 0:
        raise ValueError("No or too few valid pixels in the pixel map.")
    first = xmin + int(np.argmax(valid[rows], axis=1).min())
    last = xmax - int(np.argmax(valid[rows, ::-1], axis=1).min())
    imin, jmin = min(xmax, first), min(ymax, ymin + int(rows[0]))
    imax, jmax = max(imin, last), max(jmin, ymin + int(rows[-1]))
    if imin >= imax or jmin >= jmax:
        raise ValueError("No or too few valid pixels in the pixel map.")
    return imin, imax, jmin, jmax


def _limits(common: Mapping[str, Any], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The input range as drizzle's add_image and tdriz clip it (note: xmax 0 means the whole width)."""
    ny, nx = shape
    xmin, xmax, ymin, ymax = (common.get(key) for key in ("xmin", "xmax", "ymin", "ymax"))
    xmin = 0 if xmin is None or xmin < 0 else int(xmin)
    ymin = 0 if ymin is None or ymin < 0 else int(ymin)
    xmax = nx - 1 if xmax is None or xmax > nx - 1 else int(xmax)
    ymax = ny - 1 if ymax is None or ymax > ny - 1 else int(ymax)
    xmax = nx - 1 if xmax == 0 else xmax
    ymax = ny - 1 if ymax == 0 else ymax
    return xmin, xmax, ymin, ymax


def _warn_like_drizzle(kernel: str, pixfrac: float) -> str:
    """Issue drizzle's warnings for this call and return the kernel it really uses."""
    if kernel in NOT_FLUX_CONSERVING:
        warnings.warn(f"Kernel '{kernel}' is not a flux-conserving kernel.", Warning, stacklevel=3)
    if pixfrac <= 0.001:
        warnings.warn("Kernel reset to 'point' due to input 'pixfrac'  being too small.", Warning, stacklevel=3)
        return "point"
    if kernel in ("lanczos2", "lanczos3") and abs(pixfrac - 1.0) > 1.0e-5:
        warnings.warn("In lanczos kernel, pixel_fraction is ignored and assumed to be 1.0", Warning, stacklevel=3)
    return kernel


def coadd(images: Sequence[np.ndarray], common: Mapping[str, Any], *, kernel: str, fills: Sequence[Any],
          shape: tuple[int, int], context: np.ndarray | None = None, dq: np.ndarray | None = None,
          out_dq: np.ndarray | None = None, threads: int = 2,
          variances: Sequence[np.ndarray] = ()) -> tuple[list[np.ndarray], np.ndarray]:
    """Drizzle each image, then the square root of each of ``variances``, with the shared pixel map and weights of
    ``common``; return the outputs (images first) and the weights.

    Each output equals ``Drizzle(kernel=kernel, fillval=fills[k], out_shape=shape).add_image(
    images[k], **common)``'s ``out_img`` (for a variance: of ``np.sqrt(variance)``, taken pixel by
    pixel in the kernel, so no array of square roots is made), and the weights its ``out_wht``.
    ``context`` (int32, bit 1 set where a pixel contributes) and ``out_dq`` (DQ OR'ed, only with
    ``dq``) are updated in place when given.
    """
    data = [np.ascontiguousarray(image, dtype=np.float32) for image in (*images, *variances)]
    in_ny, in_nx = data[0].shape
    pixmap = np.ascontiguousarray(common["pixmap"], dtype=np.float64)
    weights = common.get("weight_map")
    weights = np.ones_like(data[0]) if weights is None else np.ascontiguousarray(weights, dtype=np.float32)
    if pixmap.shape != (in_ny, in_nx, 2) or weights.shape != data[0].shape or any(d.shape != data[0].shape for d in data):
        raise ValueError("'pixmap', 'weight_map' and the images must have the same shape")
    if not float(common["exptime"]) > 0:
        raise ValueError("'exptime' *must* be a strictly positive number.")
    iscale, ratio = np.float32(common.get("iscale", 1.0)), np.float32(common.get("pixel_scale_ratio", 1.0))
    wtscale, pixfrac = np.float32(common.get("wht_scale", 1.0)), float(common.get("pixfrac", 1.0))
    if not (iscale > 0 and np.isfinite(iscale)):
        raise ValueError("Argument 'iscale' must be positive and finite.")
    if not (ratio > 0 and np.isfinite(ratio)):
        raise ValueError("Argument 'pscale_ratio' must be positive and finite.")
    xmin, xmax, ymin, ymax = _section(pixmap, *_limits(common, (in_ny, in_nx)))
    kernel = _warn_like_drizzle(kernel, pixfrac)
    if not wtscale > 0:
        raise ValueError("weight scale must be > 0")
    outputs = [np.empty(shape, dtype=np.float32) for _ in data]
    counts = np.zeros(shape, dtype=np.float32)
    dq_in = None if dq is None else np.ascontiguousarray(dq, dtype=np.uint32)
    bands = _bands(shape[0], threads)

    def band(rows: tuple[int, int]) -> None:
        _coadd.coadd(tuple(data), tuple(outputs), weights, pixmap, counts, context, dq_in,
                     out_dq if dq_in is not None else None, in_nx, in_ny, shape[1], shape[0], xmin, xmax, ymin, ymax,
                     KERNEL_CODES[kernel], float(iscale), float(ratio), float(wtscale), pixfrac, 1, *rows, len(images))

    if len(bands) == 1:
        band(bands[0])
    else:
        with ThreadPoolExecutor(max_workers=len(bands)) as pool:
            list(pool.map(band, bands))
    empty = counts == 0
    for output, fill in zip(outputs, fills, strict=True):
        output[empty] = fill_value(fill)
    return outputs, counts


def _bands(rows: int, threads: int) -> list[tuple[int, int]]:
    """Output rows split into ``threads`` bands of nearly equal height."""
    count = max(1, min(threads, rows))
    step = math.ceil(rows / count)
    return [(start, min(rows, start + step)) for start in range(0, rows, step)]


def supports(common: Mapping[str, Any], data2: Any) -> bool:
    """True when the one-pass kernel reproduces this drizzle call exactly."""
    ratio = common.get("pixel_scale_ratio", 1.0)
    return (available() and data2 is None and common.get("in_units", "cps") == "cps"
            and ratio is not None and math.isfinite(float(ratio))
            and not (set(common) - {"exptime", "pixmap", "iscale", "pixel_scale_ratio", "weight_map", "wht_scale",
                                    "pixfrac", "in_units", "xmin", "xmax", "ymin", "ymax"}))
