"""resample (steps.md §7): the i2d of one calibrated exposure — flux, positions, masks, variances, switches."""

from __future__ import annotations

import math

import numpy as np
import pytest
from drizzle.resample import Drizzle
from drizzle.utils import calc_pixmap

from image2.core.cards import Cards
from image2.core.dq import DO_NOT_USE, FLAGS, NON_SCIENCE
from image2.core.exposure import Exposure
from image2.core.polygon import signed_area
from image2.core.resample import Resampled, input_range, pixel_map, resample, weight_map
from image2.core.sky_region import parse_s_region
from image2.errors import StepError
from tests.resample_inputs import (
    cal_exposure,
    gaussian_image,
    imaging_wcs,
    pixel_areas_on,
)

SHAPE = (96, 128)
JUMP_DET = FLAGS["JUMP_DET"]
SOURCES = ((40.3, 52.7, 1.6, 30.0), (90.8, 30.2, 2.2, 12.0), (64.0, 70.5, 3.0, 5.0))
"""(x, y, sigma, amplitude) of Gaussian sources well inside the input."""


def uniform_noise(exposure: Exposure) -> Exposure:
    """Equal VAR_RNOISE everywhere, so ivm weights do not bias flux sums."""
    return exposure.evolve(var_rnoise=np.full(exposure.shape, 2.5e-3, np.float32))


def sources_only(**kwargs) -> Exposure:
    """Gaussian sources on a zero background (no pixel rejected), uniform read noise."""
    sci = sum(gaussian_image(SHAPE, *source) for source in SOURCES)
    return uniform_noise(cal_exposure(SHAPE, sci=sci, **kwargs))


def i2d_of(exposure: Exposure, **parameters) -> Resampled:
    result = resample(exposure, **parameters)
    assert isinstance(result, Resampled), result.meta.provenance[-1]
    return result


def flux_in(exposure: Exposure, i2d: Resampled) -> float:
    """Σ SCI × pixel solid angle of the input, each pixel's area measured exactly on the output grid."""
    areas = pixel_areas_on(i2d.wcs, exposure.wcs, exposure.shape)
    return float(np.sum(exposure.sci.astype(np.float64) * areas) * i2d.meta.photometry.pixar_sr)


def flux_out(i2d: Resampled) -> float:
    return float(np.nansum(i2d.sci.astype(np.float64)) * i2d.meta.photometry.pixar_sr)


# ---- acceptance ------------------------------------------------------------------------------

def test_flux_is_conserved():
    exposure = sources_only()
    i2d = i2d_of(exposure)
    assert flux_out(i2d) == pytest.approx(flux_in(exposure, i2d), rel=1e-3)
    assert flux_out(i2d) > 0.9 * float(np.sum(exposure.sci)) * i2d.meta.photometry.pixar_sr


def test_a_point_source_lands_at_its_sky_position():
    probe = cal_exposure(SHAPE)
    x0, y0 = 70.37, 41.81
    ra, dec = probe.wcs(x0, y0)
    exposure = uniform_noise(cal_exposure(SHAPE, sci=gaussian_image(SHAPE, x0, y0, 1.4, 50.0)))
    i2d = i2d_of(exposure)
    x_expected, y_expected = i2d.wcs.invert(ra, dec)
    y, x = np.indices(i2d.shape)
    near = (np.hypot(x - x_expected, y - y_expected) < 9) & np.isfinite(i2d.sci)
    weights = i2d.sci[near].astype(np.float64)
    x_found = np.sum(x[near] * weights) / np.sum(weights)
    y_found = np.sum(y[near] * weights) / np.sum(weights)
    assert math.hypot(x_found - x_expected, y_found - y_expected) < 0.05


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_pixel_scale_ratio_gives_the_expected_shape_and_flux(ratio):
    exposure = sources_only()
    base, scaled = i2d_of(exposure), i2d_of(exposure, pixel_scale_ratio=ratio)
    for n_base, n in zip(base.shape, scaled.shape, strict=True):
        assert abs(n - n_base / ratio) <= 1.5
    assert scaled.meta.photometry.pixar_sr == pytest.approx(base.meta.photometry.pixar_sr * ratio**2, rel=1e-12)
    assert flux_out(scaled) == pytest.approx(flux_in(exposure, base), rel=1e-3)


def test_a_quarter_turn_transposes_the_shape_and_keeps_the_flux():
    exposure = sources_only()
    pointing = exposure.meta.pointing
    theta = pointing.roll_ref - pointing.vparity * pointing.v3i_yang  # the default orientation
    base, turned = i2d_of(exposure), i2d_of(exposure, rotation=theta + 90.0)
    assert abs(turned.shape[0] - base.shape[1]) <= 1 and abs(turned.shape[1] - base.shape[0]) <= 1
    assert flux_out(turned) == pytest.approx(flux_out(base), rel=1e-3)
    north_up = i2d_of(exposure, rotation=0.0)
    assert north_up.meta.header("SCI").get("PC1_2") == pytest.approx(0.0, abs=1e-15)
    assert flux_out(north_up) == pytest.approx(flux_out(base), rel=1e-3)


def masked_pair() -> tuple[Exposure, Exposure, np.ndarray]:
    """Two exposures that differ only in the values of excluded (NON_SCIENCE / DO_NOT_USE) pixels."""
    dq = np.zeros(SHAPE, np.uint32)
    dq[40:52, 60:72] = NON_SCIENCE
    dq[10, 10] = DO_NOT_USE
    dq[20, 30] = JUMP_DET  # not excluded
    clean = cal_exposure(SHAPE, dq=dq)
    hot_sci = np.array(clean.sci)
    hot_sci[dq & (DO_NOT_USE | NON_SCIENCE) != 0] = 1e6
    hot_var = np.array(clean.var_rnoise)
    hot_var[40:52, 60:72] = 1e-9
    return clean, clean.evolve(sci=hot_sci, var_rnoise=hot_var), dq


def test_masked_pixels_never_contribute():
    clean, hot, _ = masked_pair()
    a, b = i2d_of(clean), i2d_of(hot)
    for name in ("sci", "wht", "con", "err", "var_rnoise", "var_poisson", "var_flat"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert np.nanmax(b.sci) < 3.0


def output_to_input(i2d: Resampled, exposure: Exposure) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.indices(i2d.shape, dtype=float)
    return exposure.wcs.invert(*i2d.wcs(x, y, with_bounding_box=False), with_bounding_box=False)


def test_weight_is_zero_exactly_where_nothing_contributed():
    clean, _, _ = masked_pair()
    i2d = i2d_of(clean)
    empty = i2d.wht == 0
    np.testing.assert_array_equal(empty, np.isnan(i2d.sci))
    np.testing.assert_array_equal(empty, i2d.con[0] == 0)
    assert np.all(i2d.con[0][~empty] == 1)
    xin, yin = output_to_input(i2d, clean)
    ny, nx = SHAPE
    outside = (xin < -1.5) | (xin > nx + 0.5) | (yin < -1.5) | (yin > ny + 0.5)
    in_hole = (xin > 61.5) & (xin < 69.5) & (yin > 41.5) & (yin < 49.5)  # inside the masked block by > 1.5 px
    good = (xin > 1.5) & (xin < nx - 2.5) & (yin > 1.5) & (yin < ny - 2.5) & ~(
        (xin > 57.5) & (xin < 73.5) & (yin > 37.5) & (yin < 53.5))
    assert outside.any() and in_hole.any() and good.any()
    assert np.all(empty[outside]) and np.all(empty[in_hole]) and not empty[good].any()


def test_variances_are_positive_wherever_there_is_weight():
    clean, _, _ = masked_pair()
    i2d = i2d_of(clean)
    has_weight = i2d.wht > 0
    for name, variance in i2d.variances().items():
        assert np.all(variance[has_weight] > 0) and np.all(np.isfinite(variance[has_weight])), name
        assert np.all(np.isnan(variance[~has_weight])), name
    assert np.all(i2d.err[has_weight] > 0) and np.all(np.isnan(i2d.err[~has_weight]))


# ---- variances ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_constant_variance_comes_out_divided_by_the_squared_ratio(ratio):
    exposure = cal_exposure(SHAPE)
    constant = np.full(SHAPE, 4e-3, np.float32)
    exposure = exposure.evolve(var_rnoise=constant, var_poisson=constant / 2, var_flat=constant / 4)
    i2d = i2d_of(exposure, pixel_scale_ratio=ratio)
    used = i2d.wht > 0
    np.testing.assert_allclose(i2d.var_rnoise[used], 4e-3 / ratio**2, rtol=2e-6)
    np.testing.assert_allclose(i2d.var_poisson[used], 2e-3 / ratio**2, rtol=2e-6)
    np.testing.assert_allclose(i2d.err[used], math.sqrt(7e-3) / ratio, rtol=2e-6)


def test_variances_follow_the_spec_precision_rules_bit_for_bit():
    """§7.3 by hand: R = drizzled(√V)², W = float32 1/R_rnoise held in float64, VAR = float32(R·W·W)·s/T/T."""
    exposure = cal_exposure(SHAPE)
    ratio = 0.8
    i2d = i2d_of(exposure, pixel_scale_ratio=ratio)
    pixmap = pixel_map(exposure.wcs, i2d.wcs, SHAPE)
    weights, _ = weight_map(exposure, "ivm")

    def drizzled(variance):
        driz = Drizzle(out_shape=i2d.shape, kernel="square", fillval=np.nan, disable_ctx=True)
        driz.add_image(np.sqrt(variance), exptime=exposure.meta.exposure.effexptm, pixmap=pixmap, iscale=1.0,
                       pixel_scale_ratio=ratio, weight_map=weights, wht_scale=1.0, pixfrac=1.0, in_units="cps",
                       xmin=0, xmax=SHAPE[1] - 1, ymin=0, ymax=SHAPE[0] - 1)
        return driz.out_img**2

    rnoise = drizzled(exposure.var_rnoise)
    valid = (rnoise > 0) & np.isfinite(rnoise)
    weight = np.zeros(i2d.shape, np.float64)
    weight[valid] = np.reciprocal(rnoise[valid])
    for name in ("var_rnoise", "var_poisson", "var_flat"):
        r = drizzled(getattr(exposure, name))
        use = (r >= 0) & np.isfinite(r) & (weight > 0)
        s = np.full(i2d.shape, np.nan, np.float32)
        t = np.zeros(i2d.shape, np.float32)
        s[use] = r[use].astype(np.float64) * weight[use] * weight[use]
        t[use] = weight[use]
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = s * np.float32(1.0 / ratio**2) / t / t
        np.testing.assert_array_equal(getattr(i2d, name), expected, err_msg=name)


def test_err_is_the_root_of_the_summed_variances():
    i2d = i2d_of(cal_exposure(SHAPE))
    used = i2d.wht > 0
    total = i2d.var_rnoise.astype(np.float64) + i2d.var_poisson + i2d.var_flat
    np.testing.assert_allclose(i2d.err[used], np.sqrt(total[used]), rtol=1e-6)


def test_absent_variance_gives_a_nan_plane_and_no_share_of_err():
    exposure = cal_exposure(SHAPE).evolve(var_flat=None)
    i2d = i2d_of(exposure)
    assert np.all(np.isnan(i2d.var_flat))
    used = i2d.wht > 0
    np.testing.assert_allclose(i2d.err[used], np.sqrt(i2d.var_rnoise[used].astype(float) + i2d.var_poisson[used]),
                               rtol=1e-6)


def test_squared_weight_variances_are_those_of_a_weighted_mean():
    exposure = cal_exposure(SHAPE)
    constant = np.full(SHAPE, 4e-3, np.float32)
    exposure = exposure.evolve(var_rnoise=constant, var_poisson=constant, var_flat=constant)
    jwst, squared = i2d_of(exposure), i2d_of(exposure, variance_mode="squared_weights")
    np.testing.assert_array_equal(jwst.sci, squared.sci)
    np.testing.assert_array_equal(jwst.wht, squared.wht)
    used = squared.wht > 0
    interior = used & (squared.wht > 0.9 * np.max(squared.wht))  # fully covered output pixels
    # equal weights: Σa²v/(Σa)², with up to four overlapping input pixels: between v/4 and v
    values = squared.var_rnoise[interior]
    assert np.all(values <= 4e-3 * (1 + 1e-6)) and np.all(values >= 1e-3 * (1 - 1e-6))
    assert np.mean(values) < 0.8 * 4e-3  # averaging really reduces the variance
    assert np.all(np.isnan(squared.var_rnoise[~used]))
    np.testing.assert_allclose(squared.err[used], np.sqrt(3 * squared.var_rnoise[used].astype(float)), rtol=1e-6)


# ---- weights, pixel map and ranges -------------------------------------------------------------

def test_ivm_weights_are_inverse_read_noise_on_good_pixels():
    dq = np.zeros((2, 3), np.uint32)
    dq[0, 1] = DO_NOT_USE
    dq[1, 2] = NON_SCIENCE | JUMP_DET
    dq[1, 0] = JUMP_DET
    rnoise = np.array([[4.0, 4.0, 0.0], [0.5, 2.0, 1.0]], np.float32)
    exposure = Exposure(sci=np.ones((2, 3)), err=np.ones((2, 3)), dq=dq, var_rnoise=rnoise)
    weights, notes = weight_map(exposure, "ivm")
    assert weights.dtype == np.float32 and notes == ()
    np.testing.assert_array_equal(weights, [[0.25, 0.0, 0.0], [2.0, 0.5, 0.0]])
    equal, notes = weight_map(exposure.evolve(var_rnoise=None), "ivm")
    np.testing.assert_array_equal(equal, [[1, 0, 1], [1, 1, 0]]) and notes


def test_exptime_weights_prefer_tmeasure():
    exposure = cal_exposure((4, 5), exposure={"tmeasure": 600.0, "effexptm": 700.0})
    weights, _ = weight_map(exposure, "exptime")
    np.testing.assert_array_equal(weights, np.full((4, 5), 600.0, np.float32))
    weights, _ = weight_map(cal_exposure((4, 5), exposure={"tmeasure": None, "effexptm": 700.0}), "exptime")
    np.testing.assert_array_equal(weights, np.full((4, 5), 700.0, np.float32))


def test_pixel_map_equals_drizzles_calc_pixmap():
    exposure = cal_exposure(SHAPE)
    grid_wcs = i2d_of(exposure).wcs
    ours = pixel_map(exposure.wcs, grid_wcs, SHAPE)
    box_before = grid_wcs.bounding_box.bounding_box(order="F")
    np.testing.assert_array_equal(ours, calc_pixmap(exposure.wcs, grid_wcs, shape=SHAPE))
    assert grid_wcs.bounding_box.bounding_box(order="F") == box_before


@pytest.mark.parametrize("order, tolerance", [(1, 2e-3), (3, 1e-6)])
def test_coarse_pixel_map_is_close_to_the_exact_one(order, tolerance):
    exposure = cal_exposure(SHAPE)
    grid_wcs = i2d_of(exposure).wcs
    exact = pixel_map(exposure.wcs, grid_wcs, SHAPE)
    coarse = pixel_map(exposure.wcs, grid_wcs, SHAPE, stepsize=16, order=order)
    error = np.max(np.abs(coarse - exact))
    assert 0 < error < tolerance


@pytest.mark.parametrize("block", [1 << 18, 1000])  # one block, or rows 0-6, 7-13, ... some inside the box
def test_pixel_map_honours_a_box_smaller_than_the_array_like_calc_pixmap(block, monkeypatch):
    monkeypatch.setattr("image2.core.resample._pixmap_block", lambda: block)
    wcs = imaging_wcs(SHAPE, (961, 977))
    wcs.bounding_box = ((4.5, 120.5), (2.5, 90.5))
    grid_wcs = i2d_of(cal_exposure(SHAPE)).wcs
    ours = pixel_map(wcs, grid_wcs, SHAPE)
    np.testing.assert_array_equal(ours, calc_pixmap(wcs, grid_wcs, shape=SHAPE))
    assert np.isnan(ours[:3]).all() and np.isfinite(ours[3:91, 5:121]).all()


def test_coarse_pixel_map_is_nan_outside_the_input_box():
    wcs = imaging_wcs(SHAPE, (961, 977))
    wcs.bounding_box = ((4.5, 120.5), (2.5, 90.5))
    grid_wcs = i2d_of(cal_exposure(SHAPE)).wcs
    coarse = pixel_map(wcs, grid_wcs, SHAPE, stepsize=10)
    exact = pixel_map(wcs, grid_wcs, SHAPE)
    np.testing.assert_array_equal(np.isnan(coarse), np.isnan(exact))
    assert np.isnan(coarse[:3]).all() and np.isnan(coarse[:, 121:]).all()
    assert np.nanmax(np.abs(coarse - exact)) < 2e-3


def test_input_range_follows_the_wcs_box():
    wcs = imaging_wcs(SHAPE, (961, 977))
    assert input_range(wcs, SHAPE) == (0, 127, 0, 95)
    wcs.bounding_box = ((3.2, 100.7), (-3.0, 150.0))
    assert input_range(wcs, SHAPE) == (3, 101, 0, 95)


# ---- parameters, skips, failures ---------------------------------------------------------------

@pytest.mark.parametrize("changes, reason", [
    ({"exposure": {"effexptm": 0.0}}, "EFFEXPTM"),
    ({"exposure": {"effexptm": None}}, "EFFEXPTM"),
    ({"exposure": {"type": "NRC_CORON"}}, "EXP_TYPE NRC_CORON"),
    ({"exposure": {"tsovisit": True}}, "time-series"),
])
def test_exposures_that_are_not_resampled_come_back_marked_skipped(changes, reason):
    exposure = cal_exposure(SHAPE, **changes)
    result = resample(exposure)
    assert isinstance(result, Exposure)
    assert result.meta.status["S_RESAMP"] == "SKIPPED"
    assert reason in result.meta.provenance[-1].notes[0]
    assert np.shares_memory(result.sci, exposure.sci) and result.wcs is exposure.wcs


def test_a_cube_is_never_resampled():
    exposure = cal_exposure(SHAPE)
    cube = Exposure(sci=np.stack([exposure.sci] * 2), err=np.stack([exposure.err] * 2),
                    dq=np.zeros((2, *SHAPE), np.uint32), meta=exposure.meta, wcs=exposure.wcs)
    result = resample(cube)
    assert result.meta.status["S_RESAMP"] == "SKIPPED" and "3-D" in result.meta.provenance[-1].notes[0]


@pytest.mark.parametrize("parameters, problem", [
    ({"kernel": "sinc"}, "unknown kernel"),
    ({"pixfrac": 1.5}, "pixfrac"),
    ({"weight_type": "ivm-sky"}, "weight_type"),
    ({"pixmap_order": 2}, "pixmap_order"),
    ({"variance_mode": "exact"}, "variance_mode"),
    ({"crpix": [1.0]}, "crpix must have two values"),
    ({"output_shape": [10, 0]}, "output_shape must be positive"),
    ({"pixel_scale_ratio": 0.0}, "positive"),
    ({"output_wcs": "grid.asdf"}, "read_output_wcs"),
])
def test_invalid_parameters_fail_clearly(parameters, problem):
    with pytest.raises(StepError, match=problem):
        resample(cal_exposure(SHAPE), **parameters)


def test_an_exposure_without_wcs_or_s_region_fails():
    with pytest.raises(StepError, match="no WCS"):
        resample(cal_exposure(SHAPE, wcs=None))
    exposure = cal_exposure(SHAPE)
    unplaced = exposure.evolve(meta=exposure.meta.with_cards("SCI", {"S_REGION": None}))
    with pytest.raises(StepError, match="S_REGION"):
        resample(unplaced)


def test_background_level_is_subtracted_unless_already_subtracted():
    base = i2d_of(cal_exposure(SHAPE))
    leveled = i2d_of(cal_exposure(SHAPE, primary={"BKGLEVEL": 0.25, "BKGSUB": False}))
    done = i2d_of(cal_exposure(SHAPE, primary={"BKGLEVEL": 0.25, "BKGSUB": True}))
    used = base.wht > 0
    np.testing.assert_allclose(leveled.sci[used], base.sci[used] - 0.25, atol=2e-6)
    np.testing.assert_array_equal(done.sci, base.sci)
    assert "BKGLEVEL" not in leveled.meta.header("PRIMARY") and "BKGSUB" not in done.meta.header("PRIMARY")


@pytest.mark.parametrize("kernel", ["square", "point", "turbo", "gaussian", "lanczos2", "lanczos3"])
def test_every_drizzle_kernel_runs_and_flags_the_ones_that_do_not_conserve_flux(kernel):
    i2d = i2d_of(sources_only(), kernel=kernel, pixfrac=0.8 if kernel != "point" else 1.0)
    assert np.isfinite(i2d.sci).mean() > 0.8
    notes = " ".join(i2d.meta.provenance[-1].notes)
    assert ("not a flux-conserving kernel" in notes) == (kernel in ("gaussian", "lanczos2", "lanczos3"))


def test_fillval_fills_pixels_without_contribution():
    i2d = i2d_of(cal_exposure(SHAPE), fillval="-7")
    assert np.all(i2d.sci[i2d.wht == 0] == -7.0) and (i2d.wht == 0).any()


# ---- switches and products ---------------------------------------------------------------------

def test_switches_drop_context_errors_and_variances():
    exposure = cal_exposure(SHAPE)
    full = i2d_of(exposure)
    assert full.con is not None and full.err is not None and len(full.variances()) == 3 and full.dq is None
    no_ctx = i2d_of(exposure, enable_ctx=False)
    assert no_ctx.con is None
    np.testing.assert_array_equal(no_ctx.sci, full.sci)
    no_var = i2d_of(exposure, report_var=False)
    assert no_var.variances() == {}
    np.testing.assert_array_equal(no_var.err, full.err)
    no_err = i2d_of(exposure, enable_err=False)
    assert no_err.err is None and no_err.variances() == {} and no_err.meta.units.err is None
    assert full.meta.units.err == "MJy/sr"
    with_dq = i2d_of(cal_exposure(SHAPE, dq=masked_pair()[2]), propagate_dq=True)
    assert with_dq.dq.dtype == np.uint32 and (with_dq.dq & JUMP_DET).any() and not (with_dq.dq & NON_SCIENCE).any()


def test_output_metadata():
    exposure = cal_exposure(SHAPE)
    sip = {"A_ORDER": 2, "A_2_0": 1e-7, "B_ORDER": 2, "AP_1_0": 1e-9, "CD1_1": -8e-6, "CRPIX1": 1024.5}
    exposure = exposure.evolve(meta=exposure.meta.with_cards("SCI", sip))
    i2d = i2d_of(exposure, pixel_scale_ratio=0.8, pixfrac=0.7, weight_type="exptime")
    meta, sci = i2d.meta, i2d.meta.header("SCI")
    assert meta.status["S_RESAMP"] == "COMPLETE" and meta.status["S_FLAT"] == "COMPLETE"
    primary = meta.header("PRIMARY")
    assert (primary.get("NDRIZ"), primary.get("RESWHT"), primary.get("PIXFRAC"), primary.get("PXSCLRT")) == (
        1, "exptime", 0.7, 0.8)
    assert not any(key in sci for key in ("A_ORDER", "A_2_0", "B_ORDER", "AP_1_0", "CD1_1"))
    assert sci.get("CTYPE1") == "RA---TAN" and sci.get("CUNIT2") == "deg"
    assert sci.get("CDELT1") == sci.get("CDELT2") > 0 and sci.get("CRPIX1") != 1024.5
    assert sci.get("XPOSURE") == 1030.73 and sci.get("TELAPSE") == 1073.682
    assert meta.exposure.effexptm == 1030.73 and meta.exposure.start == 60000.5
    assert meta.pointing.ra_ref is None and meta.pointing.vparity is None and meta.pointing.va_scale == 1.00001
    assert meta.photometry.pixar_a2 == pytest.approx((sci.get("CDELT1") * 3600) ** 2, rel=1e-12)
    assert meta.photometry.photmjsr == exposure.meta.photometry.photmjsr
    assert meta.tree["resample"] == {"kernel": "square", "fillval": "NAN"}
    assert "ap_1_0" not in meta.tree["wcsinfo"] and "v2_ref" not in meta.tree["wcsinfo"]
    assert meta.tree["wcsinfo"]["radesys"] == "ICRS" and meta.tree["wcsinfo"]["lonpole"] == 180.0
    record = meta.provenance[-1]
    assert record.step == "resample" and record.status == "COMPLETE" and record.parameters["pixfrac"] == 0.7
    assert exposure.meta.header("SCI").get("A_ORDER") == 2  # the cal record is untouched


def test_output_footprint_is_the_input_footprint_inside_the_grid():
    exposure = cal_exposure(SHAPE)
    i2d = i2d_of(exposure)
    (polygon,) = parse_s_region(i2d.meta.header("SCI").get("S_REGION"))
    x, y = i2d.wcs.invert(polygon[:, 0], polygon[:, 1], with_bounding_box=False)
    ny, nx = i2d.shape
    edge = 1e-3  # S_REGION's 9 decimals are ~1e-4 pixel
    assert np.all((x > -0.5 - edge) & (x < nx - 0.5 + edge) & (y > -0.5 - edge) & (y < ny - 0.5 + edge))
    (source,) = parse_s_region(exposure.meta.header("SCI").get("S_REGION"))
    xs, ys = i2d.wcs.invert(source[:, 0], source[:, 1], with_bounding_box=False)
    clipped, whole = abs(signed_area(np.column_stack([x, y]))), abs(signed_area(np.column_stack([xs, ys])))
    assert 0.97 * whole < clipped <= whole + 1e-6
    assert signed_area(np.column_stack([x, y])) < 0  # clockwise, as jwst's shapely writes it
    # a grid covering only part of the footprint clips it
    part = i2d_of(exposure, output_shape=(60, 40), crpix=(10.0, 10.0))
    (cut,) = parse_s_region(part.meta.header("SCI").get("S_REGION"))
    xc, yc = part.wcs.invert(cut[:, 0], cut[:, 1], with_bounding_box=False)
    assert abs(signed_area(np.column_stack([xc, yc]))) < 0.5 * whole
    assert np.all((xc < 60) & (yc < 40))


def test_missing_footprint_with_a_given_grid_leaves_s_region_unset():
    exposure = cal_exposure(SHAPE)
    grid = i2d_of(exposure).wcs
    unplaced = exposure.evolve(meta=exposure.meta.with_cards("SCI", {"S_REGION": None}))
    i2d = i2d_of(unplaced, output_wcs=grid, pixel_scale=0.0311)
    assert "S_REGION" not in i2d.meta.header("SCI")
    assert any("S_REGION not set" in note for note in i2d.meta.provenance[-1].notes)


def test_the_cal_record_is_returned_untouched_and_the_i2d_is_read_only():
    exposure = cal_exposure(SHAPE, sci=np.where(np.eye(*SHAPE, dtype=bool), np.nan, 1.0))
    i2d = i2d_of(exposure)
    assert "S_RESAMP" not in exposure.meta.status and not exposure.dq.any()  # NaN sync happened on a copy
    with pytest.raises(ValueError):
        i2d.sci[0, 0] = 1.0
    assert isinstance(exposure.meta.header("SCI"), Cards)


def _whole_frame_variances(exposure, grid, weight_type, drizzled, names):
    """The variance stage as one whole-frame computation (how resample did it before working in row blocks):
    the oracle the blockwise stage must equal bit for bit."""
    shape = grid.shape
    if weight_type == "exptime":
        weight = np.full(shape, exposure.meta.exposure.tmeasure or exposure.meta.exposure.effexptm)
    elif "var_rnoise" in drizzled:
        rnoise = drizzled["var_rnoise"]
        weight = np.zeros(shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.copyto(weight, np.reciprocal(rnoise), where=(rnoise > 0) & np.isfinite(rnoise))
    else:
        weight = np.ones(shape)
    scaling = 1.0 / grid.pixel_scale_ratio**2
    positive, weight32, infinite = weight > 0, weight.astype(np.float32), np.isinf(weight)
    product, weight_sum = np.empty(shape), np.empty(shape, dtype=np.float32)
    result = {}
    for name in names:
        if name not in drizzled:
            result[name] = np.full(shape, np.nan, dtype=np.float32)
            continue
        value = drizzled[name]
        unused = ~((value >= 0) & np.isfinite(value) & positive)
        with np.errstate(over="ignore", invalid="ignore"):
            np.multiply(value, weight, out=product)
            product *= weight
        if infinite.any():
            np.copyto(product, 0.0, where=np.isnan(product))
        total = product.astype(np.float32)
        total[unused] = np.nan
        np.copyto(weight_sum, weight32)
        weight_sum[unused] = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            if grid.ratio_is_exact:
                variance = np.multiply(total, np.float32(scaling), out=total)
                variance /= weight_sum
                variance /= weight_sum
            else:
                variance = (total * np.float64(scaling) / weight_sum / weight_sum).astype(np.float32)
        result[name] = variance
    total = np.zeros(shape, dtype=np.float32)
    all_nan = np.ones(shape, dtype=bool)
    for name in names:
        finite_or_inf = ~np.isnan(result[name])
        total += np.where(finite_or_inf, result[name], np.float32(0))
        all_nan &= ~finite_or_inf
    err = np.sqrt(total)
    err[all_nan] = np.nan
    return result, err


def _squared_deviations(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Random float32 squared deviations with every awkward value: NaN, ±inf, negative, zero, huge, subnormal
    (whose reciprocal, the weight, is infinite)."""
    values = rng.lognormal(-2, 3, shape).astype(np.float32)
    special = np.array([np.nan, np.inf, -np.inf, -1.0, 0.0, 3e38, 1e-40, 1e-45], np.float32)
    picks = rng.random(shape) < 0.2
    values[picks] = rng.choice(special, picks.sum())
    return values


@pytest.mark.parametrize("weight_type, exact, present", [
    ("ivm", True, ("var_rnoise", "var_flat", "var_poisson")),
    ("ivm", False, ("var_rnoise", "var_flat", "var_poisson")),
    ("ivm", True, ("var_flat", "var_poisson")),  # no read noise: weights of 1
    ("exptime", True, ("var_rnoise", "var_poisson")),  # VAR_FLAT absent: NaN
    ("exptime", False, ("var_rnoise", "var_flat", "var_poisson")),
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_blockwise_variances_and_error_equal_the_whole_frame_computation(monkeypatch, weight_type, exact, present):
    import types

    import image2.core.resample as resample_module

    rng = np.random.default_rng(7)
    shape = (61, 45)
    monkeypatch.setattr(resample_module, "VARIANCE_ROWS", 8)  # blocks, the last one short
    grid = types.SimpleNamespace(shape=shape, pixel_scale_ratio=0.7 if exact else 0.6180339887, ratio_is_exact=exact)
    exposure = cal_exposure(SHAPE)
    drizzled = {name: _squared_deviations(rng, shape) for name in present}
    copies = {name: values.copy() for name, values in drizzled.items()}
    expected, expected_err = _whole_frame_variances(exposure, grid, weight_type, copies, resample_module.VARIANCE_NAMES)
    variances = resample_module._jwst_variances(exposure, grid, weight_type, drizzled, resample_module.VARIANCE_NAMES)
    err = resample_module._error(variances, resample_module.VARIANCE_NAMES)
    for name in resample_module.VARIANCE_NAMES:
        assert variances[name].tobytes() == expected[name].tobytes(), name
        if name in present:
            assert variances[name] is drizzled[name]  # computed in place of the squared deviations
    assert err.tobytes() == expected_err.tobytes()
    assert np.isinf(expected_err).any() or np.isnan(expected_err).any()  # the awkward values reached the output


def test_the_pixel_map_takes_bigger_blocks_only_where_blas_is_single_threaded(monkeypatch):
    from image2.core.resample import PIXMAP_BLOCK, PIXMAP_BLOCK_SERIAL_BLAS, _pixmap_block

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert _pixmap_block() == PIXMAP_BLOCK_SERIAL_BLAS > PIXMAP_BLOCK
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert _pixmap_block() == PIXMAP_BLOCK
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    assert _pixmap_block() == PIXMAP_BLOCK
