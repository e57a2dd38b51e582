"""The distortion-free sky grid an exposure is drizzled onto (steps.md §7.2).

The default grid is a FITS-style TAN projection centred on the exposure's footprint, with
the input pixel scale times ``pixel_scale_ratio`` and the detector's orientation on the sky.
Every number is computed with the same models and in the same order as jwst 3.0, so the
output WCS (and through it the pixel map) agrees bit for bit. One deliberate difference: the
input pixel scale is measured at RA_REF/DEC_REF only when that point lies on the image; off
it (a pointing that contradicts the WCS) it is measured at the image centre.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import attrs
import gwcs
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.modeling import CompoundModel, models
from astropy.modeling.projections import Projection
from gwcs.fitswcs import FITSImagingWCSTransform

from image2.core.meta import Pointing
from image2.errors import StepError

ARCSEC_PER_RADIAN = np.rad2deg(3600.0)
"""206264.80624709636 as a numpy float64, computed as jwst does (``np.rad2deg(3600)``)."""

EDGE_SPACING = 15
"""Largest spacing (pixels) of the outline samples used for a mean pixel area."""


@attrs.frozen
class OutputGrid:
    """The output WCS and the FITS parameters that describe it.

    ``crpix`` is 0-based (the FITS CRPIX is ``crpix + 1``); ``pc`` is row-major
    ``((PC1_1, PC1_2), (PC2_1, PC2_2))``; ``pixel_scale`` is the output scale in arcsec
    (it sets PIXAR_*); ``pixel_scale_ratio`` is output/input scale (drizzle's kernel size
    and the variance scaling). ``ratio_is_exact`` is False when the ratio was derived from
    pixel areas rather than given, in which case jwst's variance arithmetic runs in float64.
    """

    wcs: Any
    shape: tuple[int, int]
    crpix: tuple[float, float]
    crval: tuple[float, float]
    cdelt: tuple[float, float]
    pc: tuple[tuple[float, float], tuple[float, float]]
    pixel_scale: float
    pixel_scale_ratio: float
    ratio_is_exact: bool = True
    ctype: tuple[str, str] = ("RA---TAN", "DEC--TAN")

    @property
    def pixar_a2(self) -> float:
        """Nominal output pixel area in arcsec²."""
        return self.pixel_scale**2

    @property
    def pixar_sr(self) -> float:
        """Nominal output pixel area in steradians."""
        return float(self.pixar_a2 / ARCSEC_PER_RADIAN**2)

    def wcs_cards(self) -> dict[str, Any]:
        """Return the plain FITS WCS cards of the SCI header (no SIP, no CD matrix)."""
        return {
            "CRPIX1": float(self.crpix[0] + 1), "CRPIX2": float(self.crpix[1] + 1),
            "CRVAL1": float(self.crval[0]), "CRVAL2": float(self.crval[1]),
            "CTYPE1": self.ctype[0], "CTYPE2": self.ctype[1],
            "CUNIT1": "deg", "CUNIT2": "deg",
            "CDELT1": float(self.cdelt[0]), "CDELT2": float(self.cdelt[1]),
            "PC1_1": float(self.pc[0][0]), "PC1_2": float(self.pc[0][1]),
            "PC2_1": float(self.pc[1][0]), "PC2_2": float(self.pc[1][1]),
        }


MAX_GRID_PIXELS = 2**28
"""Pixels an output grid may hold (16384 x 16384, 1 GiB per float32 plane): far beyond the i2d of
any one exposure, so a larger grid comes from a mistaken scale, and is refused before it is allocated."""


def _fail(problem: str) -> StepError:
    return StepError("resample", problem)


def fiducial(footprints: Sequence[np.ndarray]) -> tuple[float, float]:
    """Return the sky point midway between the extremes of the footprints' unit vectors (deg)."""
    lon, lat = np.deg2rad(np.vstack(footprints)).T
    x = np.cos(lat) * np.cos(lon)
    y = np.cos(lat) * np.sin(lon)
    z = np.sin(lat)
    x_mid = (np.max(x) + np.min(x)) / 2.0
    y_mid = (np.max(y) + np.min(y)) / 2.0
    z_mid = (np.max(z) + np.min(z)) / 2.0
    lon_mid = np.rad2deg(np.arctan2(y_mid, x_mid)) % 360.0
    lat_mid = np.rad2deg(np.arctan2(z_mid, np.sqrt(x_mid**2 + y_mid**2)))
    return lon_mid, lat_mid


def scale_pixel(wcs: Any, ra: float, dec: float, shape: tuple[int, int]) -> tuple[Any, Any]:
    """Return the pixel where the input scale is measured: that of (ra, dec) when on the image, else its centre.

    jwst measures at RA_REF/DEC_REF wherever that falls. A point off the ``shape`` (ny, nx)
    image (edges included), or one the WCS cannot invert, comes from a pointing that
    contradicts the WCS or a reference point outside a subarray; the scale there is not the
    image's (far off, a TAN projection stretches it), so it is measured at the image centre.
    """
    x0, y0 = wcs.invert(ra, dec, with_bounding_box=False)
    ny, nx = shape
    if -0.5 <= x0 <= nx - 0.5 and -0.5 <= y0 <= ny - 0.5:
        return x0, y0
    return (nx - 1) / 2.0, (ny - 1) / 2.0


def pixel_scale_at(wcs: Any, ra: float, dec: float, shape: tuple[int, int]) -> float:
    """Return the input pixel scale (deg) at sky point (ra, dec): √(x step × y step) there.

    The point is moved to the image centre when it lies off the ``shape`` image (scale_pixel).
    """
    x0, y0 = scale_pixel(wcs, ra, dec, shape)
    x = np.array([x0, x0 + 1.0, x0])
    y = np.array([y0, y0, y0 + 1.0])
    lon, lat = wcs(x, y, with_bounding_box=False)
    coords = SkyCoord(ra=lon, dec=lat, unit="deg")
    xscale = np.abs(coords[0].separation(coords[1]).value)
    yscale = np.abs(coords[0].separation(coords[2]).value)
    return float(np.sqrt(xscale * yscale))


def orientation(pointing: Pointing, rotation: float | None) -> np.ndarray:
    """Return the 2×2 PC matrix for position angle ``rotation`` (deg), or the detector's own.

    θ = ROLL_REF − VPARITY·V3I_YANG by default; the angle arithmetic follows jwst's exactly.
    """
    vparity, yangle = pointing.vparity, pointing.v3i_yang
    if vparity not in (1, -1):
        raise _fail(f"VPARITY must be 1 or -1 to orient the output grid, not {vparity!r}")
    if yangle is None:
        raise _fail("V3I_YANG is missing; it is needed to orient the output grid")
    v3yangle = np.deg2rad(yangle)
    if rotation is None:
        if pointing.roll_ref is None:
            raise _fail("ROLL_REF is missing; give a rotation to orient the output grid")
        roll = np.deg2rad(pointing.roll_ref)
    else:
        roll = np.deg2rad(rotation) + (vparity * v3yangle)
    angle = roll - (vparity * v3yangle)
    return np.reshape([vparity * np.cos(angle), np.sin(angle), vparity * -np.sin(angle), np.cos(angle)], (2, 2))


def _placement(
    footprints: Sequence[np.ndarray],
    transform: Any,
    center: tuple[float, float],
    crpix: Sequence[float] | None,
    output_shape: Sequence[int] | None,
) -> tuple[tuple[tuple[float, float], ...], tuple[int, int], tuple[float, float]]:
    """Return the bounding box, the ``(ny, nx)`` shape and the 0-based CRPIX of the grid."""
    bounds = np.hstack([transform.inverse(*f.T) for f in footprints])
    low = np.min(bounds, axis=1)
    high = np.max(bounds, axis=1)
    native = transform.inverse(*center)
    if crpix is None:
        offsets = tuple(n - lo for n, lo in zip(native, low, strict=True))
    else:
        offsets = tuple(c - n for n, c in zip(native, crpix, strict=True))
    low += offsets
    high += offsets
    if output_shape is None:
        shape = tuple(int(h + 0.5) for h in high[::-1])
        box = tuple((-0.5, s - 0.5) for s in shape[::-1])
    else:
        nx, ny = output_shape
        shape = (int(ny), int(nx))
        box = tuple((max(0, int(lo + 0.5)) - 0.5, min(int(h + 0.5), n) - 0.5)
                    for lo, h, n in zip(low, high, (nx, ny), strict=True))
    if shape[0] * shape[1] > MAX_GRID_PIXELS:
        raise _fail(f"the output grid would be {shape[0]} x {shape[1]} pixels, over {MAX_GRID_PIXELS} "
                    "(a pixel_scale or pixel_scale_ratio far too small for this exposure?)")
    return box, shape, offsets


def default_grid(
    wcs: Any,
    footprints: Sequence[np.ndarray],
    pointing: Pointing,
    input_shape: tuple[int, int],
    *,
    pixel_scale_ratio: float = 1.0,
    pixel_scale: float | None = None,
    rotation: float | None = None,
    crpix: Sequence[float] | None = None,
    crval: Sequence[float] | None = None,
    output_shape: Sequence[int] | None = None,
) -> OutputGrid:
    """Return the TAN grid covering ``footprints`` (sky polygons, deg) of an exposure with ``wcs``.

    ``pixel_scale`` (arcsec) overrides ``pixel_scale_ratio``, which otherwise scales the input
    pixel scale at RA_REF/DEC_REF (at the image centre when that lies off the image);
    ``output_shape`` is ``(nx, ny)``; ``crpix`` is 0-based ``(x, y)``; ``crval`` is ``(ra, dec)`` in degrees.
    """
    if wcs.output_frame.naxes != 2:
        raise _fail(f"the input WCS has {wcs.output_frame.naxes} world axes; an imaging WCS has 2")
    if pixel_scale is None:
        if pointing.ra_ref is None or pointing.dec_ref is None:
            raise _fail("RA_REF/DEC_REF are missing; they are needed for the input pixel scale")
        scale = pixel_scale_at(wcs, pointing.ra_ref, pointing.dec_ref, input_shape) * pixel_scale_ratio
        ratio, exact = pixel_scale_ratio, True
    else:
        scale = pixel_scale / 3600.0
        mean_area = mean_pixel_area(wcs, input_shape)
        if mean_area is None:
            raise _fail("cannot measure the input pixel area to relate pixel_scale to the input scale")
        ratio, exact = scale / np.rad2deg(math.sqrt(mean_area)), False
    center = fiducial(footprints) if crval is None else tuple(crval)
    pc = orientation(pointing, rotation)
    projection = models.Pix2Sky_TAN()
    transform = (models.AffineTransformation2D(matrix=pc) | models.Scale(scale) & models.Scale(scale)
                 | projection | models.RotateNative2Celestial(center[0], center[1], 180))
    box, shape, offsets = _placement(footprints, transform, center, crpix, output_shape)
    if any(n < 2 for n in shape):
        raise _fail(f"the output grid would be {shape[1]}×{shape[0]} pixels; check crpix, output_shape and the footprint")
    fits = FITSImagingWCSTransform(projection, crpix=offsets, crval=center, cdelt=[scale, scale], pc=pc)
    out = gwcs.WCS([gwcs.Step(wcs.input_frame, fits), gwcs.Step(wcs.output_frame, None)])
    out.bounding_box = box
    out.pixel_shape = shape[::-1]
    return OutputGrid(
        wcs=out, shape=shape, crpix=(offsets[0], offsets[1]), crval=(center[0], center[1]),
        cdelt=(scale, scale), pc=((pc[0, 0], pc[0, 1]), (pc[1, 0], pc[1, 1])),
        pixel_scale=3600.0 * scale, pixel_scale_ratio=ratio, ratio_is_exact=exact,
    )


def given_grid(
    wcs: Any,
    input_wcs: Any,
    input_shape: tuple[int, int],
    input_pixar_sr: float | None,
    *,
    pixel_scale: float | None = None,
    output_shape: Sequence[int] | None = None,
) -> OutputGrid:
    """Return the grid of a caller's output gwcs (the ``output_wcs`` option).

    Its shape is ``output_shape`` ``(nx, ny)``, else the WCS's ``array_shape``, else its
    bounding box. The output scale is ``pixel_scale`` (arcsec) when known, else the square
    root of the mean output pixel area; the ratio divides it by the input's nominal scale
    (√PIXAR_SR, or the mean input pixel area when PIXAR_SR is unset).
    """
    wcs = copy.deepcopy(wcs)
    if wcs.output_frame.naxes != 2:
        raise _fail(f"output_wcs has {wcs.output_frame.naxes} world axes; an imaging WCS has 2")
    if output_shape is not None:
        shape = (int(output_shape[1]), int(output_shape[0]))
    elif wcs.array_shape is not None:
        shape = tuple(int(n) for n in wcs.array_shape)
    elif wcs.bounding_box is not None:
        shape = tuple(int(high + 0.5) for _low, high in wcs.bounding_box.bounding_box(order="C"))
    else:
        raise _fail("output_wcs has no array_shape, pixel_shape or bounding box; give output_shape")
    if any(n < 1 for n in shape):
        raise _fail(f"output_wcs gives an empty output shape {shape}")
    wcs.array_shape = shape
    if pixel_scale is None:
        out_area = mean_pixel_area(wcs, shape)
        if out_area is None:
            raise _fail("cannot measure the pixel area of output_wcs; give pixel_scale")
        pixel_scale = 3600.0 * np.rad2deg(math.sqrt(out_area))
    in_area = input_pixar_sr if input_pixar_sr else mean_pixel_area(input_wcs, input_shape)
    if not in_area or in_area <= 0:
        raise _fail("cannot determine the input pixel area (PIXAR_SR unset and the WCS outline failed)")
    ratio = pixel_scale / (3600.0 * np.rad2deg(math.sqrt(in_area)))
    crpix, crval, cdelt, pc, ctype = _fits_parameters(wcs, shape)
    return OutputGrid(wcs=wcs, shape=shape, crpix=crpix, crval=crval, cdelt=cdelt, pc=pc,
                      pixel_scale=pixel_scale, pixel_scale_ratio=ratio, ratio_is_exact=False, ctype=ctype)


def _projection_code(transform: Any) -> str:
    if isinstance(transform, FITSImagingWCSTransform):
        return transform.projection.prjprm.code
    if isinstance(transform, CompoundModel):
        for model in transform.traverse_postorder():
            if isinstance(model, Projection):
                return model.prjprm.code
    raise _fail("output_wcs has no sky projection; it is not an imaging WCS")


def _fits_parameters(wcs: Any, shape: tuple[int, int]) -> tuple[Any, ...]:
    """Return CRPIX (0-based), CRVAL, CDELT, PC and CTYPE describing ``wcs`` as plain FITS."""
    transform = wcs.forward_transform
    code = _projection_code(transform)
    ctype = (f"RA---{code}", f"DEC--{code}")
    if isinstance(transform, FITSImagingWCSTransform):
        crpix = (float(transform.crpix[0]), float(transform.crpix[1]))
        crval = (float(transform.crval[0]), float(transform.crval[1]))
        cdelt = (float(transform.cdelt[0]), float(transform.cdelt[1]))
        pc = tuple(tuple(float(v) for v in row) for row in np.asarray(transform.pc.value).reshape(2, 2))
        return crpix, crval, cdelt, pc, ctype
    box = wcs.bounding_box.bounding_box(order="F") if wcs.bounding_box is not None else (
        (-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    header = wcs.to_fits_sip(bounding_box=box, degree=1, max_inv_pix_error=None, npoints=12,
                             projection=code)
    cd = np.array([[header["CD1_1"], header["CD1_2"]], [header["CD2_1"], header["CD2_2"]]])
    crpix = (header["CRPIX1"] - 1.0, header["CRPIX2"] - 1.0)
    crval = (header["CRVAL1"], header["CRVAL2"])
    pc = tuple(tuple(float(v) for v in row) for row in cd)
    return crpix, crval, (1.0, 1.0), pc, ctype


def _outline(xmin: int, xmax: int, ymin: int, ymax: int, dx: int, dy: int) -> tuple[np.ndarray, ...]:
    """Return counter-clockwise points along a pixel rectangle's edges and the slices of each edge."""
    nx, ny = xmax - xmin + 1, ymax - ymin + 1
    sx = max(1, math.ceil(nx / (dx if dx > 0 else nx)))
    sy = max(1, math.ceil(ny / (dy if dy > 0 else ny)))
    x = np.concatenate([np.linspace(xmin, xmax, sx, False), np.full(sy, float(xmax)),
                        np.linspace(xmax, xmin, sx, False), np.full(sy, float(xmin))])
    y = np.concatenate([np.full(sx, float(ymin)), np.linspace(ymin, ymax, sy, False),
                        np.full(sx, float(ymax)), np.linspace(ymax, ymin, sy, False)])
    edges = (slice(0, sx), slice(sx, sx + sy), slice(sx + sy, 2 * sx + sy), slice(2 * sx + sy, 2 * sx + 2 * sy))
    return x, y, edges


def mean_pixel_area(wcs: Any, shape: tuple[int, int]) -> float | None:
    """Return the mean pixel solid angle (sr) inside the WCS bounding box (or the whole array).

    The box outline through the edge pixel centres, sampled every ≤ 15 pixels, is mapped to
    the sky; its solid angle is divided by the enclosed area in pixels. Edges whose sky
    positions are not finite are moved inwards a pixel at a time. None when no valid outline
    remains.
    """
    ny, nx = shape
    if wcs.bounding_box is None:
        (x1, x2), (y1, y2) = (-0.5, nx - 0.5), (-0.5, ny - 0.5)
    else:
        (x1, x2), (y1, y2) = wcs.bounding_box.bounding_box(order="F")
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    limits = [max(0, int(y1 + 0.5)), min(nx - 1, int(x2 - 0.5)), min(ny - 1, int(y2 - 0.5)), max(0, int(x1 + 0.5))]
    inward = (1, -1, -1, 1)  # bottom, right, top, left
    k = 0
    while limits[3] < limits[1] and limits[0] < limits[2]:
        ymin, xmax, ymax, xmin = limits
        x, y, edges = _outline(xmin, xmax, ymin, ymax, min((xmax - xmin) // 4, EDGE_SPACING),
                               min((ymax - ymin) // 4, EDGE_SPACING))
        ra, dec = wcs(x, y)
        for _ in range(4):
            edge = edges[k]
            if not (np.all(np.isfinite(ra[edge])) and np.all(np.isfinite(dec[edge]))):
                limits[k] += inward[k]
                k = (k + 1) % 4
                break
            k = (k + 1) % 4
        else:
            center = wcs(0.5 * (xmin + xmax), 0.5 * (ymin + ymax))
            area = spherical_polygon_area(ra, dec, center)
            pixels = (xmax - xmin) * (ymax - ymin)
            return area / pixels if pixels else None
    return None


def _unit_vectors(ra: Any, dec: Any) -> np.ndarray:
    lon, lat = np.deg2rad(np.asarray(ra, dtype=float)), np.deg2rad(np.asarray(dec, dtype=float))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def spherical_polygon_area(ra: Any, dec: Any, center: tuple[float, float]) -> float:
    """Return the solid angle (sr) of the spherical polygon with vertices (ra, dec) in degrees.

    The polygon is fanned into triangles from ``center`` (a sky point it is star-shaped about);
    each triangle's signed solid angle comes from the Van Oosterom–Strackee formula, which
    stays accurate for arcminute-sized pixels where the angle-sum (Girard) formula loses
    digits. The result is at most 2π: the smaller of the two regions the outline bounds.
    """
    a = _unit_vectors(ra, dec)
    b = np.roll(a, -1, axis=0)
    c = _unit_vectors(*center)
    triple = np.einsum("ij,ij->i", np.broadcast_to(c, a.shape), np.cross(a, b))
    denominator = 1.0 + a @ c + b @ c + np.einsum("ij,ij->i", a, b)
    area = abs(float(np.sum(2.0 * np.arctan2(triple, denominator))))
    return 4.0 * math.pi - area if area > 2.0 * math.pi else area
