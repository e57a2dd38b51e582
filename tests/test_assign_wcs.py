"""assign_wcs: the imaging gwcs, its FITS SIP view, S_REGION, dispatch, the FITS-keyword route, files."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import asdf
import numpy as np
import pytest
from astropy.io import fits
from astropy.modeling import models
from astropy.wcs import WCS as FitsWCS

from image2.core.assign_wcs import FITS_KEYWORDS, assign_wcs
from image2.core.cards import Cards
from image2.core.exposure import Exposure
from image2.core.meta import ExposureInfo, Instrument, Meta, Pointing, Subarray
from image2.core.references import DistortionReference, FilterOffset, FilterOffsetReference
from image2.core.sky_region import parse_s_region, s_region
from image2.errors import StepError
from image2.io.fits import read_exposure, write_exposure
from image2.synthetic.references import default_distortion_model
from image2.synthetic.exposures import asdf_extension, make_rate

RA_REF, DEC_REF, ROLL_REF = 80.4875, -69.4975, 12.5
V2_REF, V3_REF = -63.0, -490.0
CENTRE = 1023.5
SCALE = 0.031
MAS = 1e-3 / 3600

APPROXIMATE_SCI_WCS = {
    "WCSAXES": 2, "CRPIX1": 1024.5, "CRPIX2": 1024.5, "CRVAL1": RA_REF, "CRVAL2": DEC_REF,
    "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
    "CDELT1": 8.61e-06, "CDELT2": 8.61e-06, "PC1_1": -0.976, "PC1_2": 0.216, "PC2_1": 0.216, "PC2_2": 0.976,
    "S_REGION": "POLYGON ICRS  1.0 1.0 1.1 1.0 1.1 1.1",
}
"""The approximate WCS a rate file's SCI header carries before assign_wcs."""


def known_distortion(parity: int = -1, theta_deg: float = -0.55) -> models.Model:
    """A polynomial distortion with an exact polynomial inverse; pixel (CENTRE, CENTRE) -> (V2_REF, V3_REF).

    About the detector centre: a cubic shear along x depending on y, then one along y depending
    on x (each exactly invertible: the other coordinate is unchanged), then a rotated 0.031"
    plate scale with the given parity, then the shift to the reference point. The distortion
    reaches ~3 pixels at the corners.
    """
    along_x = models.Mapping((0, 1, 1)) | (models.Polynomial2D(3, c1_0=1, c0_2=2e-6, c0_3=1e-9) & models.Identity(1))
    along_x.inverse = models.Mapping((0, 1, 1)) | (models.Polynomial2D(3, c1_0=1, c0_2=-2e-6, c0_3=-1e-9)
                                                   & models.Identity(1))
    along_y = models.Mapping((0, 0, 1)) | (models.Identity(1) & models.Polynomial2D(3, c0_1=1, c2_0=-1.5e-6, c3_0=2e-9))
    along_y.inverse = models.Mapping((0, 0, 1)) | (models.Identity(1)
                                                   & models.Polynomial2D(3, c0_1=1, c2_0=1.5e-6, c3_0=-2e-9))
    c, s = np.cos(np.radians(theta_deg)), np.sin(np.radians(theta_deg))
    matrix = SCALE * np.array([[c, -s], [s, c]]) @ np.diag([parity, 1.0])
    linear = models.AffineTransformation2D(matrix=matrix, translation=[V2_REF, V3_REF])
    return (models.Shift(-CENTRE) & models.Shift(-CENTRE)) | along_x | along_y | linear


def distortion(model: models.Model | None = None) -> DistortionReference:
    return DistortionReference("crds://jwst_nircam_distortion_0001.asdf",
                               known_distortion() if model is None else model)


def offsets(*entries: FilterOffset) -> FilterOffsetReference:
    return FilterOffsetReference("crds://jwst_nircam_filteroffset_0001.asdf",
                                 entries or (FilterOffset("F150W", "CLEAR", 0.4, -1.25),))


def exposure(shape: tuple[int, ...] = (2048, 2048), *, instrument: str = "NIRCAM", exp_type: str = "NRC_IMAGE",
             filter: str = "F150W", pupil: str | None = "CLEAR", substrt: tuple[int, int] = (1, 1),
             va_scale: float | None = 1.00001, sci: dict | None = None, primary: dict | None = None,
             **pointing: float | None) -> Exposure:
    """An in-memory rate exposure with JWST pointing keywords and the approximate SCI WCS."""
    ny, nx = shape[-2:]
    zeros = np.zeros(shape, np.float32)
    values = {"ra_ref": RA_REF, "dec_ref": DEC_REF, "roll_ref": ROLL_REF, "v2_ref": V2_REF, "v3_ref": V3_REF,
              "vparity": -1, "v3i_yang": -0.55, "va_scale": va_scale, **pointing}
    meta = Meta(
        instrument=Instrument(name=instrument, detector="NRCB1", filter=filter, pupil=pupil),
        exposure=ExposureInfo(type=exp_type),
        subarray=Subarray(name="FULL" if substrt == (1, 1) else "SUB160", xstart=substrt[0],
                          ystart=substrt[1], xsize=nx, ysize=ny),
        pointing=Pointing(**values),
        cards={"SCI": Cards(list((APPROXIMATE_SCI_WCS if sci is None else sci).items())),
               "PRIMARY": Cards(list((primary or {}).items()))},
    )
    return Exposure(sci=zeros, err=zeros, dq=np.zeros(shape, np.uint32), meta=meta)


def grid(box, n: int = 33) -> tuple[np.ndarray, np.ndarray]:
    """An ``n`` × ``n`` grid spanning ``box`` ((x_lo, x_hi), (y_lo, y_hi)) edge to edge."""
    (x0, x1), (y0, y1) = box
    y, x = np.meshgrid(np.linspace(y0, y1, n), np.linspace(x0, x1, n), indexing="ij")
    return x.ravel(), y.ravel()


def fits_wcs(cards: Cards) -> FitsWCS:
    """astropy.wcs's reading of header cards (SIP included)."""
    header = fits.Header()
    for card in cards:
        header[card.keyword] = card.value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FitsWCS(header)


def separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Small-angle separation in degrees."""
    return np.hypot((np.asarray(ra1) - ra2) * np.cos(np.radians(dec2)), np.asarray(dec1) - dec2)


def notes(out: Exposure) -> str:
    return " | ".join(out.meta.provenance[-1].notes)


# ---- the distortion route -----------------------------------------------------------------------

@pytest.mark.parametrize("parity", [-1, 1])
def test_pixel_sky_pixel_round_trip_within_a_micropixel(parity):
    out = assign_wcs(exposure(), distortion(known_distortion(parity)), None)
    x, y = grid(((0.0, 2047.0), (0.0, 2047.0)))  # pixel centres edge to edge
    ra, dec = out.wcs(x, y)
    assert np.all(np.isfinite(ra)) and np.ptp(ra) > 0.01
    x2, y2 = out.wcs.invert(ra, dec)
    assert np.max(np.abs(x2 - x)) < 1e-6 and np.max(np.abs(y2 - y)) < 1e-6


def test_reference_pixel_lands_on_ra_dec_ref():
    out = assign_wcs(exposure(va_scale=1.00003), distortion(), offsets(FilterOffset("F150W", "CLEAR", 0.0, 0.0)))
    assert out.wcs.get_transform("detector", "v2v3")(CENTRE, CENTRE) == pytest.approx((V2_REF, V3_REF), abs=1e-9)
    ra, dec = out.wcs(CENTRE, CENTRE)
    assert separation_deg(ra, dec, RA_REF, DEC_REF) < MAS
    assert out.wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]


def _spec_rotation(v2, v3):
    """steps.md §3.5 written out with explicit frame-rotation matrices (independent of astropy)."""
    def rx(t):
        c, s = np.cos(np.radians(t)), np.sin(np.radians(t))
        return np.array([[1, 0, 0], [0, c, s], [0, -s, c]])

    def ry(t):
        c, s = np.cos(np.radians(t)), np.sin(np.radians(t))
        return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])

    def rz(t):
        c, s = np.cos(np.radians(t)), np.sin(np.radians(t))
        return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])

    a, d = np.radians(v2 / 3600), np.radians(v3 / 3600)
    unit = np.array([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    matrix = rz(-RA_REF) @ ry(DEC_REF) @ rx(ROLL_REF) @ ry(-V3_REF / 3600) @ rz(V2_REF / 3600)
    w = matrix @ unit
    return np.degrees(np.arctan2(w[1], w[0])) % 360, np.degrees(np.arctan2(w[2], np.hypot(w[0], w[1])))


def test_sky_positions_follow_the_spec_formulas():
    s = 1.0002
    out = assign_wcs(exposure(va_scale=s), distortion(), None)
    model = known_distortion()
    for x, y in [(0.0, 0.0), (2047.0, 13.0), (700.25, 1900.5), (CENTRE, CENTRE)]:
        v2, v3 = model(x, y)
        v2c, v3c = s * v2 + (1 - s) * V2_REF, s * v3 + (1 - s) * V3_REF
        assert out.wcs.get_transform("v2v3", "v2v3vacorr")(v2, v3) == pytest.approx((v2c, v3c), abs=1e-9)
        ra, dec = out.wcs(x, y)
        expected = _spec_rotation(v2c, v3c)
        assert separation_deg(ra, dec, *expected) < 1e-10


def test_velocity_aberration_identity_scale_only_and_invalid():
    plain = assign_wcs(exposure(va_scale=None), distortion(), None).wcs
    assert plain.get_transform("v2v3", "v2v3vacorr")(12.5, -400.0) == (12.5, -400.0)
    one = assign_wcs(exposure(va_scale=1.0), distortion(), None).wcs
    assert one.get_transform("v2v3", "v2v3vacorr")(12.5, -400.0) == (12.5, -400.0)
    # V2_REF = V3_REF = 0: a pure scale about the V2/V3 origin
    at_origin = assign_wcs(exposure(va_scale=1.001, v2_ref=0.0, v3_ref=0.0), distortion(), None).wcs
    assert at_origin.get_transform("v2v3", "v2v3vacorr")(10.0, -20.0) == pytest.approx((10.01, -20.02), rel=1e-15)
    with pytest.raises(StepError, match="VA_SCALE = -1.0"):
        assign_wcs(exposure(va_scale=-1.0), distortion(), None)


def test_subarray_and_filter_offset_shift_pixels_before_the_distortion():
    out = assign_wcs(exposure((256, 320), substrt=(101, 201)), distortion(), offsets())
    model = known_distortion()
    x, y = np.array([0.0, 319.0, 17.5]), np.array([0.0, 255.0, 100.25])
    v2, v3 = out.wcs.get_transform("detector", "v2v3")(x, y)
    e2, e3 = model((x + 100.0) + 0.4, (y + 200.0) + -1.25)
    np.testing.assert_array_equal(v2, e2)
    np.testing.assert_array_equal(v3, e3)
    assert out.wcs.bounding_box.bounding_box(order="F") == ((-0.5, 319.5), (-0.5, 255.5))
    assert np.isnan(out.wcs(320.0, 10.0)[0]) and np.isfinite(out.wcs(319.4, 10.0)[0])
    assert "filter offset (0.4, -1.25) pixels applied for FILTER=F150W PUPIL=CLEAR" in notes(out)
    assert out.meta.refs == {"R_DISTOR": "crds://jwst_nircam_distortion_0001.asdf",
                             "R_FILOFF": "crds://jwst_nircam_filteroffset_0001.asdf"}
    assert out.meta.status == {"S_WCS": "COMPLETE"}


def test_one_axis_subarray_start_and_sizes_from_keywords():
    out = assign_wcs(exposure((64, 2048), substrt=(1, 1985)), distortion(), None)
    v2, v3 = out.wcs.get_transform("detector", "v2v3")(5.0, 7.0)
    assert (v2, v3) == known_distortion()(5.0, 7.0 + 1984.0)
    assert out.wcs.bounding_box.bounding_box(order="F") == ((-0.5, 2047.5), (-0.5, 63.5))


def test_full_frame_box_from_the_model_else_the_data_shape():
    boxed = known_distortion()
    boxed.bounding_box = ((-0.5, 2039.5), (3.5, 2047.5))  # C order: y then x
    out = assign_wcs(exposure(), distortion(boxed), offsets())
    assert out.wcs.bounding_box.bounding_box(order="F") == ((3.5, 2047.5), (-0.5, 2039.5))
    unboxed = distortion()
    out = assign_wcs(exposure(), unboxed, None)
    assert out.wcs.bounding_box.bounding_box(order="F") == ((-0.5, 2047.5), (-0.5, 2047.5))
    with pytest.raises(NotImplementedError):
        unboxed.model.bounding_box  # the shared reference model is never modified  # noqa: B018


def test_factory_distortion_with_fitted_inverse_and_own_box():
    out = assign_wcs(exposure(), distortion(default_distortion_model()), offsets())
    x, y = grid(((0.0, 2047.0), (0.0, 2047.0)), 9)
    x2, y2 = out.wcs.invert(*out.wcs(x, y))
    assert np.max(np.hypot(x2 - x, y2 - y)) < 1e-4


# ---- outputs -------------------------------------------------------------------------------

def test_s_region_is_the_box_corners_in_jwst_order():
    out = assign_wcs(exposure((256, 320), substrt=(101, 201)), distortion(), None)
    xs, ys = np.array([-0.5, -0.5, 319.5, 319.5]), np.array([-0.5, 255.5, 255.5, -0.5])
    ra, dec = out.wcs(xs, ys, with_bounding_box=False)
    assert out.meta.header("SCI").get("S_REGION") == s_region(ra, dec)
    (polygon,) = parse_s_region(out.meta.header("SCI").get("S_REGION"))
    assert polygon.shape == (4, 2)


def _sip_sum(cards: Cards, prefix: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The SIP polynomial ``prefix`` (e.g. AP) of the header at offsets (u, v) from CRPIX."""
    order = cards.get(f"{prefix}_ORDER")
    return sum(cards.get(f"{prefix}_{p}_{q}", 0.0) * u**p * v**q
               for p in range(order + 1) for q in range(order + 1 - p))


@pytest.mark.parametrize("parity", [-1, 1])
def test_sip_header_agrees_with_the_gwcs_inside_the_box(parity):
    out = assign_wcs(exposure(), distortion(known_distortion(parity)), offsets())
    cards = out.meta.header("SCI")
    assert cards.get("CTYPE1") == "RA---TAN-SIP" and cards.get("CTYPE2") == "DEC--TAN-SIP"
    assert (cards.get("CRPIX1"), cards.get("CRPIX2")) == (1024.5, 1024.5)  # the input's reference pixel
    assert not any(k in cards for k in ("CDELT1", "CDELT2", "PC1_1", "PC2_2"))
    assert {"CD1_1", "CD1_2", "CD2_1", "CD2_2", "A_ORDER", "AP_ORDER"} <= set(cards.keywords())
    assert "AP_1_0" not in cards and "SIPMXERR" not in cards and "LONPOLE" not in cards
    header_wcs = fits_wcs(cards)
    x, y = grid(((-0.5, 2047.5), (-0.5, 2047.5)), 41)
    ra, dec = out.wcs(x, y)
    fx, fy = header_wcs.all_world2pix(ra, dec, 0, tolerance=1e-8)  # forward A/B, inverted exactly
    assert np.max(np.hypot(fx - x, fy - y)) < 0.01
    px, py = header_wcs.wcs_world2pix(ra, dec, 0)  # linear part only, then the AP/BP inverse by hand
    x0, y0 = cards.get("CRPIX1") - 1, cards.get("CRPIX2") - 1
    u, v = px - x0, py - y0
    ix, iy = u + _sip_sum(cards, "AP", u, v) + x0, v + _sip_sum(cards, "BP", u, v) + y0
    assert np.max(np.hypot(ix - x, iy - y)) < 0.01
    wcsinfo = out.meta.tree["wcsinfo"]
    assert wcsinfo["sipmxerr"] <= 0.01 and wcsinfo["sipiverr"] <= 0.01
    asdf_only = {"lonpole", "latpole", "mjdref", "radesys", "wcsname", "ap_1_0", "ap_0_1", "bp_1_0", "bp_0_1"}
    assert asdf_only <= set(wcsinfo)
    assert wcsinfo["wcs_source"] == "distortion"
    assert f"max error {wcsinfo['sipmxerr']:.3g} pixel" in notes(out)


def test_stale_wcsinfo_of_an_earlier_run_is_replaced():
    rate = exposure()
    old = {"a_order": 5, "a_4_1": 1.0, "ap_1_0": 2.0, "crpix1": 5.0, "s_region": "POLYGON ICRS  0 0 1 0 1 1",
           "sipiverr": 9.9, "v2_ref": V2_REF, "roll_ref": ROLL_REF}
    rate = rate.evolve(meta=rate.meta.with_tree(wcsinfo=old))
    wcsinfo = assign_wcs(rate, distortion(), None, sip_degree=2, sip_inv_degree=2).meta.tree["wcsinfo"]
    assert not {"a_order", "a_4_1", "crpix1", "s_region"} & set(wcsinfo)
    assert wcsinfo["sipiverr"] < 9.9 and wcsinfo["ap_1_0"] != 2.0
    assert (wcsinfo["v2_ref"], wcsinfo["roll_ref"]) == (V2_REF, ROLL_REF)
    assert rate.meta.tree["wcsinfo"] == old


def test_sip_without_input_crpix_uses_the_box_centre():
    sci = {k: v for k, v in APPROXIMATE_SCI_WCS.items() if k not in ("CRPIX1", "CRPIX2")}
    out = assign_wcs(exposure((256, 320), substrt=(101, 201), sci=sci), distortion(), None)
    assert (out.meta.header("SCI").get("CRPIX1"), out.meta.header("SCI").get("CRPIX2")) == (160.5, 128.5)


def test_sip_fit_failure_keeps_the_previous_cards():
    out = assign_wcs(exposure(), distortion(), None, sip_npoints=4)
    cards = out.meta.header("SCI")
    assert cards.get("CTYPE1") == "RA---TAN" and cards.get("CDELT1") == 8.61e-06 and "A_ORDER" not in cards
    assert "FITS SIP approximation failed, previous WCS cards kept" in notes(out)
    assert out.meta.status["S_WCS"] == "COMPLETE" and "sipmxerr" not in out.meta.tree["wcsinfo"]


def test_unreached_sip_accuracy_is_reported():
    out = assign_wcs(exposure(), distortion(), None, sip_max_pix_error=1e-12, sip_max_inv_pix_error=1e-12)
    wcsinfo = out.meta.tree["wcsinfo"]
    assert wcsinfo["sipmxerr"] > 1e-12
    assert "Failed to achieve requested SIP approximation accuracy." in notes(out)
    assert "(requested 1e-12 / 1e-12)" in notes(out)


def test_sip_with_a_fixed_degree_and_disabled():
    out = assign_wcs(exposure(), distortion(), None, sip_degree=2, sip_inv_degree=2)
    assert out.meta.header("SCI").get("A_ORDER") == 2 and out.meta.header("SCI").get("AP_ORDER") == 2
    off = assign_wcs(exposure(), distortion(), None, sip_approx=False)
    assert off.meta.header("SCI").without(["S_REGION"]) == exposure().meta.header("SCI").without(["S_REGION"])
    with pytest.raises(StepError, match="sip_degree = 7"):
        assign_wcs(exposure(), distortion(), None, sip_degree=7)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_footprint_keeps_s_region_and_sip_cards():
    # x -> x + 0*sqrt(x + 0.25): NaN at the box edge x = -0.5 only
    nan_at_edge = models.Identity(1) + (models.Shift(0.25) | models.PowerLaw1D(amplitude=0.0, x_0=1.0, alpha=-0.5))
    model = (nan_at_edge & models.Identity(1)) | known_distortion()
    out = assign_wcs(exposure(), distortion(model), None)
    assert np.isfinite(out.wcs(0.0, 0.0)[0])
    assert out.meta.header("SCI").get("S_REGION") == APPROXIMATE_SCI_WCS["S_REGION"]
    assert out.meta.header("SCI").get("CTYPE1") == "RA---TAN"
    assert "S_REGION not updated" in notes(out) and out.meta.status["S_WCS"] == "COMPLETE"


def test_input_exposure_is_not_modified():
    before = exposure()
    assign_wcs(before, distortion(), offsets())
    assert before.wcs is None and before.meta.header("SCI") == exposure().meta.header("SCI")
    assert before.meta.tree == {} and before.meta.status == {}


# ---- dispatch ------------------------------------------------------------------------------

@pytest.mark.parametrize("instrument, exp_type", [
    ("NIRCAM", "NRC_DARK"), ("NIRCAM", "NRC_LED"), ("NIRISS", "NIS_LAMP"), ("MIRI", "MIR_FLATIMAGE"),
    ("MIRI", "MIR_DARKIMG"), ("FGS", "FGS_INTFLAT")])
def test_calibration_types_are_skipped(instrument, exp_type):
    out = assign_wcs(exposure((32, 32), instrument=instrument, exp_type=exp_type), distortion(), offsets())
    assert out.meta.status == {"S_WCS": "SKIPPED"} and out.wcs is None
    assert out.meta.provenance[-1].notes == (f"WCS for EXP_TYPE {exp_type} is not implemented",)


@pytest.mark.parametrize("instrument, exp_type", [
    ("NIRCAM", "NRC_WFSS"), ("NIRISS", "NIS_SOSS"), ("MIRI", "MIR_LRS-FIXEDSLIT"), ("FGS", "NRC_IMAGE")])
def test_types_outside_the_table_fail(instrument, exp_type):
    with pytest.raises(StepError, match=f"EXP_TYPE {exp_type} is not an imaging type of {instrument}"):
        assign_wcs(exposure((32, 32), instrument=instrument, exp_type=exp_type), distortion(), offsets())


@pytest.mark.parametrize("instrument, exp_type, shape", [
    ("NIRCAM", "NRC_TSIMAGE", (3, 64, 64)), ("NIRCAM", "NRC_CORON", (64, 64)), ("NIRISS", "NIS_AMI", (80, 80)),
    ("MIRI", "MIR_4QPM", (2, 32, 32)), ("MIRI", "MIR_IMAGE", (1024, 1032)), ("FGS", "FGS_FOCUS", (64, 64))])
def test_imaging_tso_and_coronagraphic_types_get_the_wcs(instrument, exp_type, shape):
    entries = FilterOffset("F150W", None, 1.0, 2.0), FilterOffset("F150W", "CLEAR", 3.0, 4.0)
    out = assign_wcs(exposure(shape, instrument=instrument, exp_type=exp_type), distortion(),
                     offsets(*entries) if instrument == "MIRI" else None)
    assert out.meta.status == {"S_WCS": "COMPLETE"}
    assert out.wcs.bounding_box.bounding_box(order="F") == ((-0.5, shape[-1] - 0.5), (-0.5, shape[-2] - 0.5))
    if instrument == "MIRI":  # the first entry with the filter, pupil not considered
        assert out.wcs.get_transform("detector", "v2v3")(0.0, 0.0) == known_distortion()(1.0, 2.0)


def test_miri_needs_a_filteroffset_reference():
    with pytest.raises(StepError, match="MIRI imaging needs a FILTEROFFSET"):
        assign_wcs(exposure((32, 32), instrument="MIRI", exp_type="MIR_IMAGE"), distortion(), None)


def test_nircam_filteroffset_matching():
    ambiguous = offsets(FilterOffset("F150W", "CLEAR", 1.0, 1.0), FilterOffset("F150W", "CLEAR", 2.0, 2.0))
    with pytest.raises(StepError, match="2 entries match FILTER=F150W PUPIL=CLEAR"):
        assign_wcs(exposure(), distortion(), ambiguous)
    other = assign_wcs(exposure(), distortion(), offsets(FilterOffset("F150W", "F162M", 1.0, 1.0)))
    assert other.wcs.get_transform("detector", "v2v3")(5.0, 6.0) == known_distortion()(5.0, 6.0)
    assert "no filter offset for FILTER=F150W PUPIL=CLEAR" in notes(other)
    assert other.meta.refs["R_FILOFF"] == "crds://jwst_nircam_filteroffset_0001.asdf"


def test_fgs_has_no_filter_offset():
    out = assign_wcs(exposure(instrument="FGS", exp_type="FGS_IMAGE", pupil=None), distortion(),
                     offsets(FilterOffset("F150W", None, 5.0, 5.0)))
    assert out.wcs.get_transform("detector", "v2v3")(5.0, 6.0) == known_distortion()(5.0, 6.0)


def test_missing_pointing_keywords_fail():
    with pytest.raises(StepError, match="lacks RA_REF, V3_REF"):
        assign_wcs(exposure(ra_ref=None, v3_ref=None), distortion(), None)


def test_a_distortion_for_liger_is_refused():
    with pytest.raises(StepError, match="not to LIGER"):
        assign_wcs(exposure((32, 32), instrument="LIGER", exp_type="IMG_IMAGE"), distortion(), None)


# ---- the FITS keyword route --------------------------------------------------------------------

def _assert_same_sky(out: Exposure, header_cards: Cards, box) -> None:
    x, y = grid(box, 17)
    ra, dec = out.wcs(x, y)
    reference = fits_wcs(header_cards).all_pix2world(x, y, 0)
    assert np.max(separation_deg(ra, dec, *reference)) < 1e-10


def test_without_distortion_the_sci_keywords_give_the_wcs():
    rate = exposure((2048, 2048))
    out = assign_wcs(rate, None, None)
    assert out.wcs.available_frames == ["detector", "world"]
    _assert_same_sky(out, rate.meta.header("SCI"), ((-0.5, 2047.5), (-0.5, 2047.5)))
    assert out.meta.refs == {"R_DISTOR": "N/A", "R_FILOFF": "N/A"}
    assert out.meta.tree["wcsinfo"]["wcs_source"] == FITS_KEYWORDS
    assert "no distortion model: WCS built from the FITS WCS keywords of the SCI header" in notes(out)
    cards = out.meta.header("SCI")  # a linear WCS: SIP degree 1, plain TAN with a CD matrix
    assert cards.get("CTYPE1") == "RA---TAN" and "A_ORDER" not in cards and "CDELT1" not in cards
    assert cards.get("CD1_1") == pytest.approx(-0.976 * 8.61e-06, rel=1e-9)


def test_liger_keywords_in_primary_with_cdelt_only():
    primary = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg", "CRPIX1": 1024.0,
               "CRPIX2": 1020.0, "CRVAL1": 266.4168, "CRVAL2": -29.0078, "CDELT1": -1.1e-06, "CDELT2": 1.1e-06,
               "RADECSYS": "ICRS"}
    rate = exposure((2048, 2048), instrument="LIGER", exp_type="IMG_IMAGE", sci={}, primary=primary,
                    ra_ref=None, dec_ref=None, roll_ref=None, v2_ref=None, v3_ref=None)
    out = assign_wcs(rate, None, None)
    _assert_same_sky(out, rate.meta.header("PRIMARY"), ((-0.5, 2047.5), (-0.5, 2047.5)))
    assert out.meta.header("SCI").get("CRPIX1") == 1024.0 and out.meta.header("SCI").get("CTYPE2") == "DEC--TAN"
    assert "FITS WCS keywords of the PRIMARY header" in notes(out)


def test_sip_keywords_are_read_back_as_a_distortion():
    fitted = assign_wcs(exposure(), distortion(), offsets())
    again = assign_wcs(exposure(sci=dict((c.keyword, c.value) for c in fitted.meta.header("SCI"))), None, None)
    _assert_same_sky(again, fitted.meta.header("SCI"), ((-0.5, 2047.5), (-0.5, 2047.5)))
    x, y = grid(((0.0, 2047.0), (0.0, 2047.0)), 9)
    x2, y2 = again.wcs.invert(*again.wcs(x, y))  # AP/BP give the inverse
    assert np.max(np.hypot(x2 - x, y2 - y)) < 0.01
    ra, dec = again.wcs(x, y)
    assert np.max(separation_deg(ra, dec, *fitted.wcs(x, y))) < 0.01 * SCALE / 3600


@pytest.mark.parametrize("code", ["SIN", "ZEA", "STG", "ARC"])
def test_other_zenithal_projections(code):
    sci = {**APPROXIMATE_SCI_WCS, "CTYPE1": f"RA---{code}", "CTYPE2": f"DEC--{code}"}
    out = assign_wcs(exposure(sci=sci), None, None, sip_approx=False)
    _assert_same_sky(out, Cards(list(sci.items())), ((-0.5, 2047.5), (-0.5, 2047.5)))


def test_lonpole_keyword_is_honoured():
    sci = {**APPROXIMATE_SCI_WCS, "LONPOLE": 170.0}
    out = assign_wcs(exposure(sci=sci), None, None, sip_approx=False)
    _assert_same_sky(out, Cards(list(sci.items())), ((-0.5, 2047.5), (-0.5, 2047.5)))


@pytest.mark.parametrize("sci, message", [
    ({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 1.0},
     "lacks the FITS WCS keywords CRPIX2, CRVAL1, CRVAL2, CDELT1, CDELT2"),
    ({}, "lacks the FITS WCS keywords CTYPE1, CTYPE2"),
    ({**APPROXIMATE_SCI_WCS, "CTYPE1": "GLON-TAN"}, "expected RA---xxx/DEC--xxx"),
    ({**APPROXIMATE_SCI_WCS, "RADESYS": "FK5"}, "only ICRS"),
    ({**APPROXIMATE_SCI_WCS, "CTYPE1": "RA---XYZ", "CTYPE2": "DEC--XYZ"}, "'XYZ' is not a FITS projection"),
    ({**APPROXIMATE_SCI_WCS, "CUNIT1": "rad"}, "must be in deg"),
    ({**APPROXIMATE_SCI_WCS, "CRVAL1": "eighty"}, "CRVAL1 = 'eighty' is not a number"),
    ({**APPROXIMATE_SCI_WCS, "CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP"}, "A_ORDER/B_ORDER are missing"),
])
def test_unusable_fits_keywords_fail_clearly(sci, message):
    with pytest.raises(StepError, match=message):
        assign_wcs(exposure(sci=sci), None, None)


# ---- files -------------------------------------------------------------------------------

@pytest.fixture
def written(tmp_path: Path) -> tuple[Exposure, Path]:
    out = assign_wcs(exposure((64, 80), substrt=(1001, 901)), distortion(default_distortion_model()), offsets())
    return out, write_exposure(out, tmp_path / "jw01234001001_01101_00001_nrcb1_cal.fits")


def test_written_file_reopens_with_the_same_wcs(written):
    out, path = written
    back = read_exposure(path)
    x, y = grid(((-0.5, 79.5), (-0.5, 63.5)), 11)
    ra, dec = out.wcs(x, y)
    ra2, dec2 = back.wcs(x, y)
    assert np.max(np.abs(ra2 - ra)) <= 1e-9 and np.max(np.abs(dec2 - dec)) <= 1e-9
    assert back.wcs.bounding_box.bounding_box(order="F") == ((-0.5, 79.5), (-0.5, 63.5))
    assert back.meta.header("SCI").get("S_REGION") == out.meta.header("SCI").get("S_REGION")
    assert back.meta.tree["wcsinfo"]["sipmxerr"] == out.meta.tree["wcsinfo"]["sipmxerr"]
    assert back.meta.status["S_WCS"] == "COMPLETE" and back.meta.refs["R_DISTOR"] == out.meta.refs["R_DISTOR"]


def test_written_wcs_is_readable_with_plain_asdf(written):
    out, path = written
    with fits.open(path) as hdul:
        raw = hdul["ASDF"].data["ASDF_METADATA"][0].tobytes()
    with asdf.open(io.BytesIO(raw)) as handle:
        wcs = handle.tree["meta"]["wcs"]
        assert wcs(10.0, 20.0) == out.wcs(10.0, 20.0)
        assert handle.tree["meta"]["wcsinfo"]["wcs_source"] == "distortion"


def test_written_file_is_readable_by_stdatamodels(written):
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    out, path = written
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = datamodels.open(str(path))
    assert not [w for w in caught if "Validation" in w.category.__name__], [str(w.message) for w in caught]
    with model:
        assert type(model).__name__ == "ImageModel"
        x, y = np.array([0.0, 40.0, 79.0]), np.array([0.0, 30.0, 63.0])
        np.testing.assert_array_equal(model.meta.wcs(x, y), out.wcs(x, y))
        assert model.meta.wcsinfo.s_region == out.meta.header("SCI").get("S_REGION")
        assert model.meta.wcsinfo.ctype1 == "RA---TAN-SIP"
        assert model.meta.wcsinfo.sipmxerr == out.meta.tree["wcsinfo"]["sipmxerr"]
        assert model.meta.cal_step.assign_wcs == "COMPLETE"
        assert model.meta.ref_file.distortion.name == "crds://jwst_nircam_distortion_0001.asdf"


def test_a_gwcs_in_a_datamodels_style_asdf_extension_comes_back_on_read(tmp_path: Path):
    wcs = assign_wcs(exposure((64, 80), substrt=(1001, 901)), distortion(), offsets()).wcs
    path = make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits")
    with fits.open(path) as hdul:
        hdus = [hdu.copy() for hdu in hdul if hdu.name != "ASDF"]
    hdus.append(asdf_extension({"model_type": "ImageModel", "wcs": wcs, "wcsinfo": {"v2_ref": V2_REF}}))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    back = read_exposure(path)
    assert back.wcs(10.0, 20.0) == wcs(10.0, 20.0)
    assert back.meta.tree["wcsinfo"] == {"v2_ref": V2_REF}
