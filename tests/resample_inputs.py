"""Calibrated exposures with a JWST-like imaging gwcs, built directly (steps.md §3 frames) for resample tests.

The WCS chain is the one assign_wcs builds: detector → v2v3 (subarray shift and a polynomial
distortion) → v2v3vacorr (velocity-aberration scale) → world (V2/V3 reference point placed at
RA_REF/DEC_REF with ROLL_REF), with the subarray's bounding box.
"""

from __future__ import annotations

from typing import Any

import gwcs
import numpy as np
from astropy import coordinates
from astropy import units as u
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

from image2.core.cards import Cards
from image2.core.exposure import Exposure
from image2.core.meta import (
    ExposureInfo,
    Instrument,
    Meta,
    Photometry,
    Pointing,
    Subarray,
    Units,
)
from image2.core.sky_region import s_region
from image2.synthetic.references import default_distortion_model

POINTING = {"ra_ref": 80.4875, "dec_ref": -69.4975, "roll_ref": 12.5, "v2_ref": -63.0, "v3_ref": -490.0,
            "v3i_yang": -0.55, "vparity": -1, "va_scale": 1.00001}
"""The synthetic NIRCam NRCB1 pointing of image2.synthetic.exposures."""

PIXAR_SR = 2.2758e-14
"""Nominal NIRCam short-wave pixel area (0.0311 arcsec pixels) in steradians."""


def imaging_wcs(shape: tuple[int, int], start: tuple[int, int] = (1, 1), *, ra_ref: float = POINTING["ra_ref"],
                dec_ref: float = POINTING["dec_ref"], roll_ref: float = POINTING["roll_ref"],
                v2_ref: float = POINTING["v2_ref"], v3_ref: float = POINTING["v3_ref"],
                va_scale: float = POINTING["va_scale"], distortion: models.Model | None = None) -> gwcs.WCS:
    """Return the gwcs of a ``shape`` (ny, nx) subarray starting at 1-based ``start`` on a 2048² detector."""
    ny, nx = shape
    transform = distortion if distortion is not None else default_distortion_model(
        (2048, 2048), v2_ref=v2_ref, v3_ref=v3_ref)
    if tuple(start) != (1, 1):
        transform = (models.Shift(start[0] - 1) & models.Shift(start[1] - 1)) | transform
    dva = (models.Scale(va_scale) & models.Scale(va_scale)) | (
        models.Shift((1 - va_scale) * v2_ref) & models.Shift((1 - va_scale) * v3_ref))
    rotation = models.RotationSequence3D([v2_ref / 3600, -v3_ref / 3600, roll_ref, dec_ref, -ra_ref], axes_order="zyxyz")
    sky = ((models.Scale(1 / 3600) & models.Scale(1 / 3600)) | SphericalToCartesian(wrap_lon_at=180)
           | rotation | CartesianToSpherical(wrap_lon_at=360))
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec))
    vacorr = cf.Frame2D(name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec))
    world = cf.CelestialFrame(reference_frame=coordinates.ICRS(), name="world")
    wcs = gwcs.WCS([(detector, transform), (v2v3, dva), (vacorr, sky), (world, None)])
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    return wcs


def footprint_region(wcs: gwcs.WCS) -> str:
    """Return the S_REGION of ``wcs``: its bounding-box corners on the sky."""
    corners = wcs.footprint(center=False)
    return s_region(corners[:, 0], corners[:, 1])


def cal_exposure(shape: tuple[int, int] = (96, 128), start: tuple[int, int] = (961, 977), *,
                 sci: np.ndarray | None = None, dq: np.ndarray | None = None, seed: int = 3,
                 pointing: dict[str, Any] | None = None, exposure: dict[str, Any] | None = None,
                 primary: dict[str, Any] | None = None, variances: bool = True, wcs: Any = "default") -> Exposure:
    """Return a 2-D NRC_IMAGE cal exposure (MJy/sr) with a gwcs, S_REGION and realistic variances.

    ``sci``/``dq`` replace the default sky-plus-noise image and clean DQ; ``pointing`` and
    ``exposure`` override Pointing/ExposureInfo fields; ``primary`` adds PRIMARY cards;
    ``variances=False`` leaves out VAR_*; ``wcs=None`` gives an exposure without WCS.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    if sci is None:
        sci = (1.5 + rng.normal(0.0, 0.05, shape)).astype(np.float32)
    sci = np.asarray(sci, np.float32)
    var_rnoise = np.full(shape, 2.5e-3, np.float32) * (1 + 0.2 * rng.random(shape)).astype(np.float32)
    var_poisson = (np.abs(sci) * 1e-3 + 1e-5).astype(np.float32)
    var_flat = (sci * sci * 1e-4 + 1e-6).astype(np.float32)
    err = np.sqrt(var_rnoise + var_poisson + var_flat)
    point = {**POINTING, **(pointing or {})}
    if wcs == "default":
        wcs = imaging_wcs(shape, start, **{k: point[k] for k in ("ra_ref", "dec_ref", "roll_ref", "v2_ref",
                                                                   "v3_ref", "va_scale")})
    sci_cards = Cards().updated({"S_REGION": footprint_region(wcs)}) if wcs is not None else Cards()
    info = {"type": "NRC_IMAGE", "tsovisit": False, "nints": 1, "effexptm": 1030.73, "tmeasure": 966.31,
            "duration": 1073.682, "start": 60000.5, "mid": 60000.50621, "end": 60000.51242, **(exposure or {})}
    meta = Meta(
        instrument=Instrument(name="NIRCAM", detector="NRCB1", filter="F150W", pupil="CLEAR", module="B",
                              channel="SHORT"),
        exposure=ExposureInfo(**info),
        subarray=Subarray(name="SUBCUSTOM", xstart=start[0], ystart=start[1], xsize=nx, ysize=ny),
        pointing=Pointing(**point),
        photometry=Photometry(photmjsr=0.2538, photuja2=0.2538 * 23.50443053909789, pixar_sr=PIXAR_SR,
                              pixar_a2=0.0009682),
        units=Units(data="MJy/sr", err="MJy/sr"),
        status={"S_WCS": "COMPLETE", "S_FLAT": "COMPLETE", "S_PHOTOM": "COMPLETE"},
        cards={"SCI": sci_cards, "PRIMARY": Cards().updated(primary or {})},
        tree={"wcsinfo": {"lonpole": 180.0, "sipmxerr": 0.001, "ap_1_0": 1e-9, "v2_ref": point["v2_ref"],
                          "wcs_source": "distortion"}},
    )
    return Exposure(
        sci=sci, err=err, dq=np.zeros(shape, np.uint32) if dq is None else dq,
        var_poisson=var_poisson if variances else None, var_rnoise=var_rnoise if variances else None,
        var_flat=var_flat if variances else None, meta=meta, wcs=wcs,
    )


def gaussian_image(shape: tuple[int, int], x0: float, y0: float, sigma: float, amplitude: float) -> np.ndarray:
    """Return a float32 image of a circular Gaussian centred at pixel (x0, y0)."""
    y, x = np.indices(shape, dtype=np.float64)
    return (amplitude * np.exp(-0.5 * ((x - x0) ** 2 + (y - y0) ** 2) / sigma**2)).astype(np.float32)


def pixel_areas_on(grid_wcs: Any, wcs: gwcs.WCS, shape: tuple[int, int]) -> np.ndarray:
    """Return each input pixel's area measured in output pixels of ``grid_wcs`` (corners mapped exactly)."""
    ny, nx = shape
    yc, xc = np.mgrid[-0.5:ny, -0.5:nx]
    ra, dec = wcs(xc, yc, with_bounding_box=False)
    x, y = grid_wcs.invert(ra, dec, with_bounding_box=False)
    # shoelace over the four corners of every pixel, counter-clockwise
    x0, y0, x1, y1 = x[:-1, :-1], y[:-1, :-1], x[:-1, 1:], y[:-1, 1:]
    x2, y2, x3, y3 = x[1:, 1:], y[1:, 1:], x[1:, :-1], y[1:, :-1]
    return 0.5 * np.abs((x0 * y1 - x1 * y0) + (x1 * y2 - x2 * y1) + (x2 * y3 - x3 * y2) + (x3 * y0 - x0 * y3))
