"""assign_wcs (steps.md §3): the imaging gwcs of an exposure, its S_REGION and its FITS SIP view.

Two routes to the WCS, recorded in the provenance and as ``wcsinfo.wcs_source`` in the ASDF tree:

* ``distortion`` — NIRCam, NIRISS, MIRI and FGS imaging with a DISTORTION reference:
  detector → v2v3 (filter offset, subarray offset, distortion) → v2v3vacorr (differential
  velocity aberration) → world (the V2/V3 reference point placed at RA_REF/DEC_REF, ROLL_REF).
* ``fits_keywords`` — Liger/IRIS, and any exposure without a distortion reference: detector →
  world from the FITS WCS keywords (CRPIX, CRVAL, CTYPE, CD or PC+CDELT, optional SIP) of the
  SCI header, or of PRIMARY where Liger keeps them.

Every transform is an astropy/gwcs model, so the result serialises to ASDF and any gwcs reader
evaluates it exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy import coordinates
from astropy import units as u
from astropy.modeling import Model, bind_bounding_box, models
from astropy.modeling.projections import projcodes
from gwcs import WCS
from gwcs import coordinate_frames as cf
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian
from gwcs.utils import fitswcs_nonlinear

from image2.core.cards import Cards
from image2.core.exposure import Exposure
from image2.core.meta import Meta, Pointing
from image2.core.provenance import Outcome, StepSkipped, step
from image2.core.references import DistortionReference, FilterOffset, FilterOffsetReference
from image2.core.scope import IMAGING_TYPES, NOT_IMPLEMENTED
from image2.core.sky_region import s_region
from image2.errors import StepError

STEP = "assign_wcs"

DISTORTION = "distortion"
FITS_KEYWORDS = "fits_keywords"

SIP_DEGREES = range(1, 6)
"""Degrees tried when none is given (jwst: ``range(1, 6)``)."""

FITS_CARD_WCS = frozenset(
    {"WCSAXES", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2",
     "CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CD1_1", "CD1_2", "CD2_1", "CD2_2",
     "A_ORDER", "B_ORDER", "AP_ORDER", "BP_ORDER"}
    | {f"{prefix}_{p}_{n - p}" for prefix in ("A", "B", "AP", "BP") for n in range(2, 7) for p in range(n + 1)}
)
"""SIP-fit keywords written as SCI cards (jwst's FITS schema); the others live only in ASDF wcsinfo."""

OLD_SIP_CARDS = frozenset(
    {"CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "A_ORDER", "B_ORDER", "AP_ORDER", "BP_ORDER"}
    | {f"{prefix}_{i}_{j}" for prefix in ("A", "B", "AP", "BP") for i in range(10) for j in range(10)}
)
"""Cards removed before a new SIP fit is written, so no stale term survives."""


def _detector_frame() -> cf.Frame2D:
    return cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))


def _v2v3_frame(name: str) -> cf.Frame2D:
    return cf.Frame2D(name=name, axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec))


def _world_frame() -> cf.CelestialFrame:
    return cf.CelestialFrame(reference_frame=coordinates.ICRS(), name="world")


def _shape_box(nx: int, ny: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """The bounding box ``((x_lo, x_hi), (y_lo, y_hi))`` of an ``nx`` × ``ny`` pixel grid (edges)."""
    return (-0.5, nx - 0.5), (-0.5, ny - 0.5)


# ---- dispatch ---------------------------------------------------------------------------------

def wcs_route(exposure: Exposure, distortion: DistortionReference | None,
              filteroffset: FilterOffsetReference | None) -> str:
    """Return which way the WCS is built (DISTORTION or FITS_KEYWORDS) per the §3.1 dispatch table.

    Raises StepSkipped for calibration EXP_TYPEs without a WCS and StepError for EXP_TYPEs
    outside the table, a distortion given for a non-JWST instrument, or MIRI without filteroffset.
    """
    instrument = (exposure.meta.instrument.name or "").upper()
    if instrument not in IMAGING_TYPES:
        if distortion is not None:
            raise StepError(STEP, f"a DISTORTION reference applies to NIRCam, NIRISS, MIRI and FGS, "
                                  f"not to {instrument or 'an exposure without INSTRUME'}")
        return FITS_KEYWORDS
    exp_type = (exposure.meta.exposure.type or "").upper()
    if not exp_type:
        raise StepError(STEP, "EXP_TYPE is missing, so the WCS type cannot be chosen")
    if exp_type.startswith(NOT_IMPLEMENTED[instrument]):
        raise StepSkipped(f"WCS for EXP_TYPE {exp_type} is not implemented")
    if exp_type not in IMAGING_TYPES[instrument]:
        raise StepError(STEP, f"EXP_TYPE {exp_type} is not an imaging type of {instrument} "
                              f"(expected one of {', '.join(sorted(IMAGING_TYPES[instrument]))})")
    if distortion is None:
        return FITS_KEYWORDS
    if instrument == "MIRI" and filteroffset is None:
        raise StepError(STEP, "MIRI imaging needs a FILTEROFFSET reference next to the DISTORTION")
    return DISTORTION


# ---- the distortion route -----------------------------------------------------------------------

def matching_offset(exposure: Exposure, filteroffset: FilterOffsetReference) -> FilterOffset | None:
    """Return the filteroffset entry for the exposure's filter (and pupil), None when none matches.

    MIRI takes the first entry with its FILTER; NIRCam/NIRISS need FILTER and PUPIL to match
    exactly one entry; FGS has no filter offsets.
    """
    instrument = (exposure.meta.instrument.name or "").upper()
    filter_name, pupil = exposure.meta.instrument.filter, exposure.meta.instrument.pupil
    if instrument == "FGS":
        return None
    if instrument == "MIRI":
        return next((entry for entry in filteroffset.filters if entry.filter == filter_name), None)
    found = [entry for entry in filteroffset.filters if entry.filter == filter_name and entry.pupil == pupil]
    if len(found) > 1:
        raise StepError(STEP, f"{filteroffset.source}: {len(found)} entries match FILTER={filter_name} "
                              f"PUPIL={pupil}; expected one")
    return found[0] if found else None


def detector_to_v2v3(exposure: Exposure, distortion: DistortionReference,
                     offset: FilterOffset | None) -> Model:
    """Return D_total of §3.3: filter offset and subarray shift before the distortion, with its box."""
    model = distortion.model.copy()  # the reference record is shared; never bind a box to it
    ny, nx = exposure.shape
    try:
        box = model.bounding_box.bounding_box(order="F")
    except NotImplementedError:
        box = _shape_box(nx, ny)
    if offset is not None:
        model = (models.Shift(offset.column_offset) & models.Shift(offset.row_offset)) | model
    bind_bounding_box(model, box, order="F")
    subarray = exposure.meta.subarray
    xstart = 1 if subarray.xstart is None else subarray.xstart
    ystart = 1 if subarray.ystart is None else subarray.ystart
    if (xstart, ystart) == (1, 1):
        return model
    to_full = ((models.Shift(xstart - 1) if xstart != 1 else models.Identity(1))
               & (models.Shift(ystart - 1) if ystart != 1 else models.Identity(1)))
    model = to_full | model
    xsize = nx if subarray.xsize is None else subarray.xsize
    ysize = ny if subarray.ysize is None else subarray.ysize
    bind_bounding_box(model, _shape_box(xsize, ysize), order="F")
    return model


def _required_pointing(pointing: Pointing) -> dict[str, float]:
    names = {"ra_ref": "RA_REF", "dec_ref": "DEC_REF", "roll_ref": "ROLL_REF", "v2_ref": "V2_REF", "v3_ref": "V3_REF"}
    missing = [keyword for field, keyword in names.items() if getattr(pointing, field) is None]
    if missing:
        raise StepError(STEP, f"the SCI header lacks {', '.join(missing)}, needed to place the "
                              "distortion model on the sky")
    return {field: float(getattr(pointing, field)) for field in names}


def velocity_aberration(va_scale: float | None, v2_ref: float, v3_ref: float) -> Model:
    """Return the DVA model of §3.4: scale V2/V3 about the reference point by VA_SCALE."""
    if va_scale is None or va_scale == 1:
        return models.Identity(2)
    if va_scale <= 0:
        raise StepError(STEP, f"VA_SCALE = {va_scale} is not a positive scale factor")
    scale = models.Scale(va_scale, name="dva_scale_v2") & models.Scale(va_scale, name="dva_scale_v3")
    if v2_ref == 0 and v3_ref == 0:
        return scale
    return scale | (models.Shift((1 - va_scale) * v2_ref, name="dva_shift_v2")
                    & models.Shift((1 - va_scale) * v3_ref, name="dva_shift_v3"))


def v2v3_to_sky(ra_ref: float, dec_ref: float, roll_ref: float, v2_ref: float, v3_ref: float) -> Model:
    """Return V23toSky of §3.5: arcsec (V2, V3) → ICRS (RA, Dec) deg, (V2_REF, V3_REF) → (RA_REF, DEC_REF)."""
    angles = [v2_ref / 3600, -(v3_ref / 3600), roll_ref, dec_ref, -ra_ref]
    return ((models.Scale(1 / 3600) & models.Scale(1 / 3600))
            | SphericalToCartesian(wrap_lon_at=180)
            | models.RotationSequence3D(angles, axes_order="zyxyz")
            | CartesianToSpherical(wrap_lon_at=360))


def distortion_wcs(exposure: Exposure, distortion: DistortionReference,
                   filteroffset: FilterOffsetReference | None) -> tuple[WCS, tuple[str, ...]]:
    """Return the imaging gwcs detector → v2v3 → v2v3vacorr → world and notes on the filter offset."""
    pointing = _required_pointing(exposure.meta.pointing)
    notes: list[str] = []
    offset = matching_offset(exposure, filteroffset) if filteroffset is not None else None
    if offset is not None:
        notes.append(f"filter offset ({offset.column_offset}, {offset.row_offset}) pixels applied "
                     f"for FILTER={offset.filter}" + (f" PUPIL={offset.pupil}" if offset.pupil else ""))
    elif filteroffset is not None:
        notes.append(f"no filter offset for FILTER={exposure.meta.instrument.filter} "
                     f"PUPIL={exposure.meta.instrument.pupil} in {filteroffset.source}")
    pipeline = [
        (_detector_frame(), detector_to_v2v3(exposure, distortion, offset)),
        (_v2v3_frame("v2v3"), velocity_aberration(exposure.meta.pointing.va_scale,
                                                  pointing["v2_ref"], pointing["v3_ref"])),
        (_v2v3_frame("v2v3vacorr"), v2v3_to_sky(**pointing)),
        (_world_frame(), None),
    ]
    return WCS(pipeline), tuple(notes)


# ---- the FITS keyword route ------------------------------------------------------------------

def _number(cards: Cards, hdu: str, keyword: str, default: float | None = None) -> float:
    value = cards.get(keyword, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise StepError(STEP, f"{hdu} keyword {keyword} = {value!r} is not a number")
    return float(value)


def _celestial_axes(cards: Cards, hdu: str) -> tuple[str, bool]:
    """Return the projection code of CTYPE1/2 and whether they carry -SIP distortion terms."""
    ctype1, ctype2 = (str(cards.get(k, "")).strip().upper() for k in ("CTYPE1", "CTYPE2"))
    if not (ctype1.startswith("RA--") and ctype2.startswith("DEC-")) or ctype1[5:8] != ctype2[5:8]:
        raise StepError(STEP, f"{hdu} CTYPE1/CTYPE2 = {ctype1!r}/{ctype2!r}; expected RA---xxx/DEC--xxx")
    if ctype1[5:8] not in projcodes:
        raise StepError(STEP, f"{hdu} CTYPE1 = {ctype1!r}: projection {ctype1[5:8]!r} is not a FITS projection")
    suffixes = {ctype1[8:], ctype2[8:]}
    if not suffixes <= {"", "-SIP"} or len(suffixes) != 1:
        raise StepError(STEP, f"{hdu} CTYPE1/CTYPE2 = {ctype1!r}/{ctype2!r} carry an unsupported suffix")
    for keyword in ("CUNIT1", "CUNIT2"):
        unit = str(cards.get(keyword, "deg")).strip().lower()
        if unit not in ("deg", ""):
            raise StepError(STEP, f"{hdu} {keyword} = {unit!r}; celestial axes must be in deg")
    frame = str(cards.get("RADESYS", cards.get("RADECSYS", "ICRS"))).strip().upper()
    if frame != "ICRS":
        raise StepError(STEP, f"{hdu} RADESYS = {frame!r}; only ICRS is supported")
    return ctype1[5:8], suffixes == {"-SIP"}


def _sip_polynomial(cards: Cards, hdu: str, prefix_x: str, prefix_y: str, linear: bool) -> Model | None:
    """Return (u, v) → (u + X(u, v), v + Y(u, v)) from SIP coefficients, or None when absent."""
    if any(cards.get(f"{prefix}_ORDER") is None for prefix in (prefix_x, prefix_y)):
        return None
    pair = []
    for prefix, identity in ((prefix_x, "c1_0"), (prefix_y, "c0_1")):
        degree = int(_number(cards, hdu, f"{prefix}_ORDER"))
        lowest = 0 if linear else 2
        coefficients = {f"c{p}_{n - p}": _number(cards, hdu, f"{prefix}_{p}_{n - p}")
                        for n in range(lowest, degree + 1) for p in range(n + 1)
                        if f"{prefix}_{p}_{n - p}" in cards}
        coefficients[identity] = coefficients.get(identity, 0.0) + 1.0
        pair.append(models.Polynomial2D(max(degree, 1), **coefficients, name=f"sip_{prefix.lower()}"))
    return models.Mapping((0, 1, 0, 1)) | (pair[0] & pair[1])


def fits_keyword_transform(cards: Cards, hdu: str) -> Model:
    """Return detector (0-based) → ICRS (RA, Dec) deg from FITS WCS keywords (CD or PC+CDELT, SIP)."""
    has_cd = any(f"CD{i}_{j}" in cards for i in (1, 2) for j in (1, 2))
    needed = ["CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2"] + ([] if has_cd else ["CDELT1", "CDELT2"])
    missing = [keyword for keyword in needed if cards.get(keyword) is None]
    if missing:
        raise StepError(STEP, f"no DISTORTION reference and the {hdu} header lacks the FITS WCS "
                              f"keywords {', '.join(missing)}, so no WCS can be built")
    projection, has_sip = _celestial_axes(cards, hdu)
    crpix = [_number(cards, hdu, f"CRPIX{i}") for i in (1, 2)]
    crval = [_number(cards, hdu, f"CRVAL{i}") for i in (1, 2)]
    name = "CD" if has_cd else "PC"
    matrix = np.array([[_number(cards, hdu, f"{name}{i}_{j}", 0.0 if has_cd or i != j else 1.0)
                        for j in (1, 2)] for i in (1, 2)])
    transform = models.Shift(1 - crpix[0], name="crpix1") & models.Shift(1 - crpix[1], name="crpix2")
    if has_sip:
        forward = _sip_polynomial(cards, hdu, "A", "B", linear=False)
        if forward is None:
            raise StepError(STEP, f"{hdu} CTYPE says -SIP but A_ORDER/B_ORDER are missing")
        backward = _sip_polynomial(cards, hdu, "AP", "BP", linear=True)
        if backward is not None:
            forward.inverse = backward
        transform = transform | forward
    transform = transform | models.AffineTransformation2D(matrix=matrix, name=f"{name.lower()}_matrix")
    if not has_cd:
        transform = transform | (models.Scale(_number(cards, hdu, "CDELT1"), name="cdelt1")
                                 & models.Scale(_number(cards, hdu, "CDELT2"), name="cdelt2"))
    sky = fitswcs_nonlinear({"CTYPE": [f"RA---{projection}", f"DEC--{projection}"], "CRVAL": crval})
    if cards.get("LONPOLE") is not None:
        sky = sky[0] | models.RotateNative2Celestial(crval[0], crval[1], _number(cards, hdu, "LONPOLE"))
    return transform | sky


def fits_keyword_wcs(exposure: Exposure) -> tuple[WCS, str]:
    """Return the gwcs detector → world of the FITS WCS keywords and the HDU they came from.

    The SCI header is used when it has CTYPE1; otherwise PRIMARY (Liger/IRIS keep them there).
    The bounding box is the data's pixel grid.
    """
    hdu = next((name for name in ("SCI", "PRIMARY") if "CTYPE1" in exposure.meta.header(name)), "SCI")
    transform = fits_keyword_transform(exposure.meta.header(hdu), hdu)
    wcs = WCS([(_detector_frame(), transform), (_world_frame(), None)])
    ny, nx = exposure.shape
    wcs.bounding_box = _shape_box(nx, ny)
    return wcs, hdu


# ---- outputs -------------------------------------------------------------------------------

def footprint_region(wcs: WCS) -> str:
    """Return S_REGION: the WCS (box ignored) at box corners (xmin, ymin), (xmin, ymax), (xmax, ymax), (xmax, ymin)."""
    corners = np.asarray(wcs.footprint(center=False))
    return s_region(corners[:, 0], corners[:, 1])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def sip_header(wcs: WCS, crpix: list[float] | None, *, max_pix_error: float, degree: int | None,
               max_inv_pix_error: float, inv_degree: int | None, npoints: int) -> tuple[list[tuple], tuple[str, ...]]:
    """Return the FITS TAN-SIP approximation (keyword, value, comment) of ``wcs`` and warnings raised.

    ``crpix`` is 1-based (None: the box centre). Raises whatever gwcs raises when it cannot fit
    (ValueError for too few points or too small a box; other errors on a non-finite WCS).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        header = wcs.to_fits_sip(
            max_pix_error=max_pix_error, degree=SIP_DEGREES if degree is None else degree,
            max_inv_pix_error=max_inv_pix_error, inv_degree=SIP_DEGREES if inv_degree is None else inv_degree,
            npoints=npoints, crpix=crpix, projection="TAN")
    cards = [(card.keyword, _plain(card.value), card.comment) for card in header.cards
             if not card.keyword.startswith("NAXIS")]
    return cards, tuple(dict.fromkeys(str(w.message) for w in caught))


def _sip_crpix(cards: Cards) -> list[float] | None:
    values = [cards.get("CRPIX1"), cards.get("CRPIX2")]
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    return None


def _sip_note(fit: Mapping[str, Any], max_pix_error: float, max_inv_pix_error: float) -> str:
    degree = fit.get("A_ORDER", 1)
    note = f"FITS SIP approximation of degree {degree}: max error {fit['SIPMXERR']:.3g} pixel"
    if "SIPIVERR" in fit:
        note += f", inverse degree {fit['AP_ORDER']} max error {fit['SIPIVERR']:.3g} pixel"
    if fit["SIPMXERR"] > max_pix_error or fit.get("SIPIVERR", 0.0) > max_inv_pix_error:
        note += f" (requested {max_pix_error} / {max_inv_pix_error})"
    return note


def _check_degree(name: str, degree: int | None) -> None:
    if degree is not None and not 1 <= degree <= 6:
        raise StepError(STEP, f"{name} = {degree}; the SIP degree must be 1 to 6 (or None to choose)")


@step(STEP)
def assign_wcs(
    exposure: Exposure,
    distortion: DistortionReference | None,
    filteroffset: FilterOffsetReference | None,
    *,
    sip_approx: bool = True,
    sip_max_pix_error: float = 0.01,
    sip_degree: int | None = None,
    sip_max_inv_pix_error: float = 0.01,
    sip_inv_degree: int | None = None,
    sip_npoints: int = 12,
) -> Exposure | Outcome:
    """Attach the imaging gwcs and write S_REGION, the SIP cards and the ASDF wcsinfo items (§3)."""
    _check_degree("sip_degree", sip_degree)
    _check_degree("sip_inv_degree", sip_inv_degree)
    route = wcs_route(exposure, distortion, filteroffset)
    if route == DISTORTION:
        wcs, notes = distortion_wcs(exposure, distortion, filteroffset)
        notes = (f"WCS built from the distortion model {distortion.source}", *notes)
        crpix_hdu = "SCI"
    else:
        wcs, crpix_hdu = fits_keyword_wcs(exposure)
        notes = (f"no distortion model: WCS built from the FITS WCS keywords of the {crpix_hdu} header",)
    meta = exposure.meta
    wcsinfo = dict(meta.tree.get("wcsinfo") or {})
    try:
        meta = meta.with_cards("SCI", {"S_REGION": footprint_region(wcs)})
        wcsinfo.pop("s_region", None)  # the card is the one value; an old tree copy would be stale
    except Exception as error:  # §3.6: a footprint failure is reported, never fatal
        notes += (f"S_REGION not updated: {error}",)
    if sip_approx:
        meta, wcsinfo, sip_notes = _with_sip(meta, wcsinfo, wcs, _sip_crpix(meta.header(crpix_hdu)),
                                             sip_max_pix_error, sip_degree, sip_max_inv_pix_error,
                                             sip_inv_degree, sip_npoints)
        notes += sip_notes
    wcsinfo["wcs_source"] = route
    return Outcome(exposure.evolve(wcs=wcs, meta=meta.with_tree(wcsinfo=wcsinfo)), notes)


def _with_sip(meta: Meta, wcsinfo: dict[str, Any], wcs: WCS, crpix: list[float] | None,
              max_pix_error: float, degree: int | None, max_inv_pix_error: float, inv_degree: int | None,
              npoints: int) -> tuple[Meta, dict[str, Any], tuple[str, ...]]:
    """Replace the SCI WCS cards by the SIP fit; ASDF-only items (LONPOLE, SIPMXERR, ...) go to wcsinfo."""
    try:
        fitted, warned = sip_header(wcs, crpix, max_pix_error=max_pix_error, degree=degree,
                                    max_inv_pix_error=max_inv_pix_error, inv_degree=inv_degree, npoints=npoints)
    except Exception as error:  # §3.6: whatever stops the fit, the old cards stay and the step completes
        return meta, wcsinfo, (f"FITS SIP approximation failed, previous WCS cards kept: {error!r}",)
    if not all(np.isfinite(value) for _, value, _ in fitted if isinstance(value, float)):
        return meta, wcsinfo, (*warned, "FITS SIP approximation gave non-finite terms (the WCS is not "
                                        "finite over the whole bounding box), previous WCS cards kept")
    cards = [row for row in fitted if row[0] in FITS_CARD_WCS]
    asdf_only = {keyword.lower(): value for keyword, value, _ in fitted if keyword not in FITS_CARD_WCS}
    stale = {keyword.lower() for keyword in OLD_SIP_CARDS | FITS_CARD_WCS} | {"sipmxerr", "sipiverr"}
    wcsinfo = {key: value for key, value in wcsinfo.items() if key not in stale} | asdf_only
    meta = meta.evolve(cards={**meta.cards, "SCI": meta.header("SCI").without(OLD_SIP_CARDS).updated(cards)})
    fit = {keyword: value for keyword, value, _ in fitted}
    return meta, wcsinfo, (*warned, _sip_note(fit, max_pix_error, max_inv_pix_error))
