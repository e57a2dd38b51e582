"""The pointing check (RA_REF/DEC_REF against the header WCS) and self-consistent synthetic headers."""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import attrs
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from image2.core.assign_wcs import assign_wcs
from image2.core.exposure import Exposure
from image2.core.meta import Meta, Pointing
from image2.core.output_grid import default_grid
from image2.core.pointing import MAX_WIDTHS, pointing_mismatch
from image2.core.references import DistortionReference
from image2.core.sky_region import parse_s_region
from image2.io.fits import meta_from_headers, open_exposure, read_exposure, write_exposure
from image2.synthetic import demo
from image2.synthetic.exposures import make_rate, rate_headers
from image2.synthetic.references import NOMINAL_SCALE, default_distortion_model

OLD_DEMO = {"RA_REF": 53.1625, "DEC_REF": -27.7914, "CRVAL1": 80.4875, "CRVAL2": -69.4975}
"""The demo's SCI header before the fix: pointing at the HUDF, WCS 43° away at the LMC."""

FACTORY_CASES = {
    "default": {},
    "full_frame": {"shape": (2048, 2048)},
    "corner_subarray": {"shape": (64, 80), "primary": {"SUBSTRT1": 33, "SUBSTRT2": 1},
                        "sci": {"VPARITY": 1, "ROLL_REF": 287.25}},
    "tso_stripe": {"shape": (3, 64, 2048), "primary": {"SUBSTRT2": 1985, "EXP_TYPE": "NRC_TSIMAGE"}},
    "miri": {"shape": (256, 256), "primary": {"INSTRUME": "MIRI", "DETECTOR": "MIRIMAGE", "FILTER": "F770W",
                                              "EXP_TYPE": "MIR_IMAGE", "SUBSTRT1": 413, "SUBSTRT2": 51}},
    "demo": {"shape": demo.SHAPE, "sci": demo.POINTING},
}
"""make_rate layouts the tests use (those of the parity tier among them) and the demo's."""


def header_meta(shape: tuple[int, ...], **overrides) -> Meta:
    """The metadata of a synthetic rate file, read from its headers as the FITS reader does (no arrays)."""
    primary, sci = rate_headers(shape, **overrides)
    return meta_from_headers(Path("synthetic_rate.fits"), {"PRIMARY": primary, "SCI": sci}, {})


def header_wcs(path: Path) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(fits.getheader(path, "SCI"), naxis=2)


def numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+\.\d+", text)]


# ---- the synthetic headers agree with their pointing ------------------------------------------

@pytest.mark.parametrize("case", FACTORY_CASES)
def test_synthetic_headers_place_the_reference_pixel_at_ra_ref(case, tmp_path: Path, caplog):
    layout = dict(FACTORY_CASES[case])
    shape = layout.pop("shape", (64, 80))
    if len(shape) == 2 and shape[0] * shape[1] > 1e6:  # a full frame: headers only, no 80 MB file
        meta = header_meta(shape, **layout)
        assert pointing_mismatch(meta, shape) is None
        return
    path = make_rate(tmp_path / "x_rate.fits", shape=shape, **layout)
    with caplog.at_level(logging.WARNING, logger="image2"), open_exposure(path) as handle:
        meta = handle.meta
    assert not caplog.records
    assert pointing_mismatch(meta, shape[-2:]) is None
    sci, primary = fits.getheader(path, "SCI"), fits.getheader(path, 0)
    ra_ref, dec_ref = sci["RA_REF"], sci["DEC_REF"]
    assert (sci["CRVAL1"], sci["CRVAL2"]) == (ra_ref, dec_ref) == (primary["TARG_RA"], primary["TARG_DEC"])
    wcs = header_wcs(path)
    x, y = wcs.all_world2pix([ra_ref], [dec_ref], 1)
    assert (x[0], y[0]) == pytest.approx((sci["CRPIX1"], sci["CRPIX2"]), abs=1e-6)
    assert np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600 == pytest.approx(NOMINAL_SCALE, rel=1e-12)
    ny, nx = shape[-2:]
    ra, dec = wcs.all_pix2world([-0.5, -0.5, nx - 0.5, nx - 0.5], [-0.5, ny - 0.5, ny - 0.5, -0.5], 0)
    (polygon,) = parse_s_region(sci["S_REGION"])
    np.testing.assert_allclose(polygon, np.column_stack([ra, dec]), atol=1e-9)


@pytest.mark.parametrize("case", ["default", "corner_subarray", "tso_stripe"])
def test_the_header_reference_pixel_is_where_the_distortion_puts_v2_v3_ref(case, tmp_path: Path):
    layout = dict(FACTORY_CASES[case])
    path = make_rate(tmp_path / "x_rate.fits", shape=layout.pop("shape", (64, 80)), **layout)
    exposure = read_exposure(path)
    out = assign_wcs(exposure, DistortionReference("synthetic", default_distortion_model()), None)
    sci = fits.getheader(path, "SCI")
    ra, dec = out.wcs(sci["CRPIX1"] - 1, sci["CRPIX2"] - 1, with_bounding_box=False)
    assert SkyCoord(ra, dec, unit="deg").separation(SkyCoord(sci["RA_REF"], sci["DEC_REF"], unit="deg")) < 1 * u.mas


def test_caller_given_wcs_cards_win_and_s_region_follows_them(tmp_path: Path):
    path = make_rate(tmp_path / "x_rate.fits", sci={"CRVAL1": 80.5, "CRPIX2": 10.0})
    sci = fits.getheader(path, "SCI")
    assert (sci["CRVAL1"], sci["CRPIX2"], sci["CRVAL2"]) == (80.5, 10.0, sci["DEC_REF"])
    ra, dec = header_wcs(path).all_pix2world([-0.5], [-0.5], 0)
    assert parse_s_region(sci["S_REGION"])[0][0] == pytest.approx([ra[0], dec[0]], abs=1e-9)


# ---- the demo ----------------------------------------------------------------------------------

def demo_exposure(meta: Meta) -> Exposure:
    zeros = np.zeros(demo.SHAPE, np.float32)
    return Exposure(sci=zeros, err=zeros, dq=np.zeros(demo.SHAPE, np.uint32), meta=meta)


def assert_detector_grid(exposure: Exposure) -> None:
    """Without references the WCS is the header's TAN, whose PC is exactly the resample orientation
    (ROLL_REF − VPARITY·V3I_YANG, the same formula), so the default grid is the detector's own:
    the scale is CDELT (measured over one pixel at the tangent point: equal to ~1e-10) and the
    shape 2048 ± 1 per axis (the fiducial is the footprint's box midpoint; int(h + 0.5) truncates).
    Before the fix the scale was measured 43° away: 0.0191"/px and 3843×3843."""
    out = assign_wcs(exposure, None, None)
    assert out.meta.tree["wcsinfo"]["wcs_source"] == "fits_keywords"
    footprints = parse_s_region(out.meta.header("SCI").get("S_REGION"))
    grid = default_grid(out.wcs, footprints, out.meta.pointing, out.shape)
    assert grid.pixel_scale == pytest.approx(NOMINAL_SCALE, rel=1e-8)
    assert all(abs(n - 2048) <= 1 for n in grid.shape), grid.shape


def test_the_demo_headers_pass_the_pointing_check_and_give_the_detector_grid():
    meta = header_meta(demo.SHAPE, sci=demo.POINTING)
    assert pointing_mismatch(meta, demo.SHAPE) is None
    sci = meta.header("SCI")
    assert (sci.get("CRVAL1"), sci.get("CRVAL2")) == (meta.pointing.ra_ref, meta.pointing.dec_ref)
    assert_detector_grid(demo_exposure(meta))


@pytest.mark.slow
def test_the_built_demo_reads_without_pointing_warnings_and_resamples_at_the_detector_scale(tmp_path: Path, caplog):
    built = demo.build(tmp_path / "demo")
    with caplog.at_level(logging.WARNING, logger="image2"):
        exposures = [read_exposure(path) for path in built.inputs]
    assert not caplog.records
    for exposure in exposures:
        assert pointing_mismatch(exposure.meta, exposure.shape) is None
    assert_detector_grid(exposures[0])


# ---- the check ---------------------------------------------------------------------------------

def test_a_header_wcs_far_from_ra_ref_is_reported_with_both_positions(tmp_path: Path, caplog):
    path = make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits", sci=OLD_DEMO)
    with caplog.at_level(logging.WARNING, logger="image2"):
        read_exposure(path)
    (record,) = caplog.records
    assert record.levelname == "WARNING" and record.name == "image2.io.fits"
    assert record.file == str(path) and record.getMessage().startswith(f"{path}: ")
    message = record.getMessage()
    assert "RA_REF/DEC_REF (53.162500, -27.791400)" in message
    centre = header_wcs(path).all_pix2world([39.5], [31.5], 0)  # the 80 × 64 image's centre
    reported = numbers(message.split("header WCS")[1])
    assert reported == pytest.approx([centre[0][0], centre[1][0]], abs=2e-6)
    separation = SkyCoord(53.1625, -27.7914, unit="deg").separation(
        SkyCoord(centre[0][0], centre[1][0], unit="deg")).deg
    assert f"lie {separation:.4g} deg" in message


def test_the_mismatch_record_measures_the_distance_in_detector_widths():
    meta = header_meta((64, 80), sci=OLD_DEMO)
    mismatch = pointing_mismatch(meta, (64, 80))
    assert mismatch.reference == (53.1625, -27.7914) and mismatch.hdu == "SCI"
    centre = SkyCoord(*mismatch.centre, unit="deg")
    assert mismatch.separation == pytest.approx(SkyCoord(53.1625, -27.7914, unit="deg").separation(centre).deg,
                                                rel=1e-9)
    width = 2048 * NOMINAL_SCALE / 3600  # the full frame is wider than the subarray
    assert mismatch.widths == pytest.approx(mismatch.separation / width, rel=1e-9)


@pytest.mark.parametrize("widths, reported", [(0.7, False), (MAX_WIDTHS - 0.1, False), (MAX_WIDTHS + 0.1, True),
                                              (40.0, True)])
def test_ra_ref_may_lie_up_to_a_few_detector_widths_from_the_image(widths, reported):
    shape = (64, 80)
    centre = header_meta(shape)  # consistent: the check's own centre is the one to offset from
    wcs = WCS(fits.Header([(c.keyword, c.value) for c in centre.header("SCI") if c.keyword != "S_REGION"]), naxis=2)
    (ra,), (dec,) = wcs.all_pix2world([(shape[1] - 1) / 2], [(shape[0] - 1) / 2], 0)
    step = widths * 2048 * NOMINAL_SCALE / 3600
    moved = SkyCoord(ra, dec, unit="deg").directional_offset_by(30 * u.deg, step * u.deg)
    meta = header_meta(shape, sci={"RA_REF": moved.ra.deg, "DEC_REF": moved.dec.deg, "CRVAL1": 80.4875,
                                   "CRVAL2": -69.4975})
    mismatch = pointing_mismatch(meta, shape)
    assert (mismatch is not None) == reported
    if reported:
        assert mismatch.widths == pytest.approx(widths, rel=1e-6)


def test_the_calibrated_cd_and_sip_header_is_checked_too(tmp_path: Path):
    exposure = read_exposure(make_rate(tmp_path / "x_rate.fits"))
    out = assign_wcs(exposure, DistortionReference("synthetic", default_distortion_model()), None)
    assert "CD1_1" in out.meta.header("SCI") and "PC1_1" not in out.meta.header("SCI")
    assert pointing_mismatch(out.meta, out.shape) is None
    moved = out.meta.evolve(pointing=attrs.evolve(out.meta.pointing, dec_ref=0.0))
    assert pointing_mismatch(moved, out.shape).widths > 1000
    cal = write_exposure(out, tmp_path / "x_cal.fits")
    assert pointing_mismatch(read_exposure(cal).meta, out.shape) is None


def test_a_wcs_in_the_primary_header_is_used_when_sci_has_none():
    meta = header_meta((64, 80), sci=OLD_DEMO)
    sci = meta.header("SCI")
    wcs_keys = [c.keyword for c in sci if c.keyword.startswith(("CTYPE", "CRVAL", "CRPIX", "CDELT", "PC", "CUNIT"))]
    moved = meta.evolve(cards={**meta.cards, "SCI": sci.without(wcs_keys),
                               "PRIMARY": meta.header("PRIMARY").updated({k: sci.get(k) for k in wcs_keys})})
    assert pointing_mismatch(moved, (64, 80)).hdu == "PRIMARY"


@pytest.mark.parametrize("change", [
    {"CRVAL1": "eighty"}, {"CTYPE1": "GLON-TAN"}, {"CDELT1": None}, {"CDELT1": 0.0}, {"CRPIX1": float("nan")},
])
def test_a_malformed_or_missing_header_wcs_is_left_to_assign_wcs(change):
    meta = header_meta((64, 80), sci=OLD_DEMO)
    broken = meta.with_cards("SCI", change)
    assert pointing_mismatch(broken, (64, 80)) is None


def test_missing_pointing_keywords_are_not_a_mismatch():
    meta = header_meta((64, 80), sci=OLD_DEMO)
    assert pointing_mismatch(meta.evolve(pointing=Pointing()), (64, 80)) is None
