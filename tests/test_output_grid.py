"""The output grid of resample (steps.md §7.2): centre, scale, orientation, shape, pixel areas."""

from __future__ import annotations

import math

import attrs
import gwcs
import numpy as np
import pytest
from astropy import coordinates
from astropy import units as u
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs.fitswcs import FITSImagingWCSTransform

from image2.core.meta import Pointing
from image2.core.output_grid import (
    default_grid,
    fiducial,
    given_grid,
    mean_pixel_area,
    orientation,
    pixel_scale_at,
    spherical_polygon_area,
)
from image2.core.sky_region import parse_s_region
from image2.errors import StepError
from tests.resample_inputs import POINTING, cal_exposure

SCALE = 0.0311 / 3600  # deg


def tan_wcs(crpix=(50.0, 40.0), crval=(150.0, 2.0), scale=SCALE, pc=((1.0, 0.0), (0.0, 1.0)), shape=(80, 100),
            box=True) -> gwcs.WCS:
    """A plain TAN gwcs (0-based crpix), with a bounding box over ``shape`` (ny, nx) unless ``box`` is False."""
    transform = FITSImagingWCSTransform(models.Pix2Sky_TAN(), crpix=list(crpix), crval=list(crval),
                                        cdelt=[scale, scale], pc=np.array(pc))
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    world = cf.CelestialFrame(reference_frame=coordinates.ICRS(), name="world")
    wcs = gwcs.WCS([gwcs.Step(detector, transform), gwcs.Step(world, None)])
    if box:
        wcs.bounding_box = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    return wcs


def test_fiducial_is_the_midpoint_of_the_extremes_and_wraps_at_ra_zero():
    square = np.array([[1.0, 0.0], [0.0, 1.0], [359.0, 0.0], [0.0, -1.0]])
    ra, dec = fiducial([square])
    assert ra == pytest.approx(0.0, abs=1e-12) or ra == pytest.approx(360.0)
    assert dec == pytest.approx(0.0, abs=1e-12)
    # two footprints, extremes over both: x from (10,0) and (12,1), y from (12,0.5) and (10,2),
    # z from (10,2) and (10,0); by hand: atan2(0.1907222, 0.9814047), atan2(0.0174497, 0.9997657)
    ra, dec = fiducial([np.array([[10.0, 0.0], [10.0, 2.0], [11.0, 1.0]]), np.array([[12.0, 1.0], [12.0, 0.5], [11.5, 0.2]])])
    assert ra == pytest.approx(10.9976164, abs=1e-7) and dec == pytest.approx(0.9999317, abs=1e-7)


def test_orientation_follows_roll_v3_angle_and_parity():
    pointing = Pointing(roll_ref=12.5, v3i_yang=-0.55, vparity=-1)
    theta = math.radians(12.5 - 0.55)  # ROLL_REF - VPARITY * V3I_YANG
    np.testing.assert_allclose(orientation(pointing, None),
                               [[-math.cos(theta), math.sin(theta)], [math.sin(theta), math.cos(theta)]], rtol=1e-14)
    # north up with parity -1: +x points to decreasing RA (east left)
    np.testing.assert_allclose(orientation(pointing, 0.0), [[-1.0, 0.0], [0.0, 1.0]], atol=1e-15)
    np.testing.assert_allclose(orientation(Pointing(roll_ref=0.0, v3i_yang=0.0, vparity=1), 90.0),
                               [[0.0, 1.0], [-1.0, 0.0]], atol=1e-15)


@pytest.mark.parametrize("pointing, problem", [
    (Pointing(roll_ref=1.0, v3i_yang=0.0, vparity=None), "VPARITY"),
    (Pointing(roll_ref=1.0, v3i_yang=0.0, vparity=2), "VPARITY"),
    (Pointing(roll_ref=1.0, v3i_yang=None, vparity=1), "V3I_YANG"),
    (Pointing(roll_ref=None, v3i_yang=0.0, vparity=1), "ROLL_REF"),
])
def test_orientation_needs_the_pointing_keywords(pointing, problem):
    with pytest.raises(StepError, match=problem):
        orientation(pointing, None)


def test_pixel_scale_at_the_tangent_point_of_a_tan_wcs_is_its_cdelt():
    wcs = tan_wcs()
    assert pixel_scale_at(wcs, 150.0, 2.0, (80, 100)) == pytest.approx(SCALE, rel=1e-9)
    assert pixel_scale_at(tan_wcs(scale=2 * SCALE), 150.0, 2.0, (80, 100)) == pytest.approx(2 * SCALE, rel=1e-9)


FAR = dict(crpix=(-5000.0, 40.0), scale=0.01)
"""A TAN WCS whose tangent point lies 50° off its 100×80 image, so the pixel scale varies across it."""


def scale_at_pixel(wcs: gwcs.WCS, x: float, y: float) -> float:
    """The pixel scale (deg) at pixel (x, y) by definition: √(x step × y step) on the sky."""
    ra, dec = wcs(np.array([x, x + 1.0, x]), np.array([y, y, y + 1.0]), with_bounding_box=False)
    points = coordinates.SkyCoord(ra=ra, dec=dec, unit="deg")
    return float(np.sqrt(points[0].separation(points[1]).value * points[0].separation(points[2]).value))


def test_pixel_scale_is_measured_where_the_point_lies_when_it_lies_on_the_image():
    wcs, shape = tan_wcs(**FAR), (80, 100)
    for pixel in [(-0.4, 10.0), (99.4, 79.4), (20.0, 30.0)]:
        ra, dec = wcs(*pixel, with_bounding_box=False)
        x0, y0 = wcs.invert(ra, dec, with_bounding_box=False)
        assert pixel_scale_at(wcs, ra, dec, shape) == scale_at_pixel(wcs, x0, y0)
    assert scale_at_pixel(wcs, -0.4, 10.0) / scale_at_pixel(wcs, 49.5, 39.5) - 1 > 1e-3  # the scale varies


@pytest.mark.parametrize("pixel", [(-0.6, 10.0), (130.0, 40.0), (100.0, -300.0), (-5000.0, 40.0)])
def test_pixel_scale_at_a_point_off_the_image_is_the_scale_at_its_centre(pixel):
    wcs, shape = tan_wcs(**FAR), (80, 100)
    ra, dec = wcs(*pixel, with_bounding_box=False)
    centre = scale_at_pixel(wcs, 49.5, 39.5)
    assert pixel_scale_at(wcs, ra, dec, shape) == centre
    assert abs(scale_at_pixel(wcs, *pixel) / centre - 1) > 1e-3  # the scale where the point lies is not used


def test_a_point_the_wcs_cannot_invert_gives_the_scale_at_the_centre():
    wcs, shape = tan_wcs(), (80, 100)
    assert not np.all(np.isfinite(wcs.invert(330.0, -2.0, with_bounding_box=False)))  # behind the TAN plane
    assert pixel_scale_at(wcs, 330.0, -2.0, shape) == scale_at_pixel(wcs, 49.5, 39.5)


def test_default_grid_takes_the_scale_at_the_image_centre_when_ra_ref_lies_off_the_image():
    exposure = cal_exposure()
    footprints = parse_s_region(exposure.meta.header("SCI").get("S_REGION"))
    ny, nx = exposure.shape
    wrong = attrs.evolve(exposure.meta.pointing, ra_ref=53.1625, dec_ref=-27.7914)  # 43° away
    grid = default_grid(exposure.wcs, footprints, wrong, exposure.shape)
    assert grid.cdelt[0] == scale_at_pixel(exposure.wcs, (nx - 1) / 2, (ny - 1) / 2)
    right = default_grid(exposure.wcs, footprints, exposure.meta.pointing, exposure.shape)
    assert grid.shape == right.shape and grid.pixel_scale == pytest.approx(right.pixel_scale, rel=1e-4)


def test_spherical_polygon_area_of_an_octant_and_of_a_small_square():
    assert spherical_polygon_area([0.0, 90.0, 0.0], [0.0, 0.0, 90.0], (30.0, 30.0)) == pytest.approx(math.pi / 2, rel=1e-12)
    assert spherical_polygon_area([0.0, 0.0, 90.0], [0.0, 90.0, 0.0], (30.0, 30.0)) == pytest.approx(math.pi / 2, rel=1e-12)
    # a 1 arcsec square on the equator: area ≈ (1/206264.8)² sr (flat to 1e-11)
    side = 1 / 3600
    ra, dec = [0.0, side, side, 0.0], [-side / 2, -side / 2, side / 2, side / 2]
    assert spherical_polygon_area(ra, dec, (side / 2, 0.0)) == pytest.approx(math.radians(side) ** 2, rel=1e-9)


def test_mean_pixel_area_of_a_tan_grid_is_cdelt_squared():
    wcs = tan_wcs()
    assert mean_pixel_area(wcs, (80, 100)) == pytest.approx(math.radians(SCALE) ** 2, rel=1e-7)
    assert mean_pixel_area(tan_wcs(box=False), (80, 100)) == pytest.approx(math.radians(SCALE) ** 2, rel=1e-7)


def test_mean_pixel_area_moves_edges_inward_past_undefined_sky_positions():
    wcs = tan_wcs()
    wcs.bounding_box = ((-0.5, 99.5), (-0.5, 79.5))
    inner = tan_wcs()
    inner.bounding_box = ((9.5, 89.5), (4.5, 69.5))  # NaN outside: the outline must shrink to it
    area = mean_pixel_area(inner, (80, 100))
    assert area == pytest.approx(math.radians(SCALE) ** 2, rel=1e-7)


def exposure_grid(**parameters):
    exposure = cal_exposure()
    footprints = parse_s_region(exposure.meta.header("SCI").get("S_REGION"))
    return exposure, footprints, default_grid(exposure.wcs, footprints, exposure.meta.pointing, exposure.shape,
                                              **parameters)


def test_default_grid_covers_the_footprint_with_the_input_scale():
    exposure, footprints, grid = exposure_grid()
    ny, nx = grid.shape
    x, y = grid.wcs.invert(footprints[0][:, 0], footprints[0][:, 1], with_bounding_box=False)
    # the lowest vertex sits at pixel 0 of each axis, the highest within half a pixel of the last edge
    assert min(x) == pytest.approx(0.0, abs=1e-6) and min(y) == pytest.approx(0.0, abs=1e-6)
    assert nx - 1 <= max(x) + 0.5 < nx + 1 and ny - 1 <= max(y) + 0.5 < ny + 1
    assert grid.wcs.bounding_box.bounding_box(order="F") == ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    assert grid.wcs.pixel_shape == (nx, ny)
    scale = pixel_scale_at(exposure.wcs, POINTING["ra_ref"], POINTING["dec_ref"], exposure.shape)
    assert grid.cdelt == (scale, scale) and grid.pixel_scale == 3600.0 * scale
    assert grid.pixar_a2 == pytest.approx((3600 * scale) ** 2, rel=1e-15)
    assert grid.pixar_sr == pytest.approx(grid.pixar_a2 / 206264.80624709636**2, rel=1e-15)
    # the reference pixel maps to the footprint's centre
    ra, dec = grid.wcs(*grid.crpix, with_bounding_box=False)
    assert (ra, dec) == pytest.approx(fiducial(footprints), abs=1e-10)
    cards = grid.wcs_cards()
    assert cards["CRPIX1"] == grid.crpix[0] + 1 and cards["CTYPE2"] == "DEC--TAN" and "CD1_1" not in cards


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_pixel_scale_ratio_scales_the_pixels_and_the_shape(ratio):
    _, _, base = exposure_grid()
    _, _, grid = exposure_grid(pixel_scale_ratio=ratio)
    assert grid.cdelt[0] == pytest.approx(base.cdelt[0] * ratio, rel=1e-15)
    assert grid.pixel_scale_ratio == ratio and grid.ratio_is_exact
    for n_base, n in zip(base.shape, grid.shape, strict=True):
        assert abs(n - n_base / ratio) <= 1.5


def test_pixel_scale_in_arcsec_sets_the_scale_and_derives_the_ratio():
    exposure, _, grid = exposure_grid(pixel_scale=0.05)
    assert grid.cdelt[0] == 0.05 / 3600 and grid.pixel_scale == pytest.approx(0.05, rel=1e-15)
    nominal = math.degrees(math.sqrt(mean_pixel_area(exposure.wcs, exposure.shape)))
    assert grid.pixel_scale_ratio == pytest.approx(0.05 / 3600 / nominal, rel=1e-12)
    assert grid.pixel_scale_ratio == pytest.approx(0.05 / 0.0311, rel=0.01)
    assert not grid.ratio_is_exact


def test_user_crpix_crval_shape_and_rotation():
    crval = (80.4873, -69.4976)
    _, footprints, grid = exposure_grid(crpix=(30.0, 20.5), crval=crval, output_shape=(70, 50), rotation=30.0)
    assert grid.shape == (50, 70) and grid.crpix == pytest.approx((30.0, 20.5), abs=1e-9)
    assert grid.wcs(30.0, 20.5, with_bounding_box=False) == pytest.approx(crval, abs=1e-12)
    theta = math.radians(30.0)
    np.testing.assert_allclose(grid.pc, [[-math.cos(theta), math.sin(theta)], [math.sin(theta), math.cos(theta)]],
                               atol=1e-15)
    # the box is the footprint's extent, trimmed to the array
    x, y = grid.wcs.invert(footprints[0][:, 0], footprints[0][:, 1], with_bounding_box=False)
    (x1, x2), (y1, y2) = grid.wcs.bounding_box.bounding_box(order="F")
    assert x1 == max(0, int(min(x) + 0.5)) - 0.5 and x2 == min(int(max(x) + 0.5), 70) - 0.5
    assert y1 == max(0, int(min(y) + 0.5)) - 0.5 and y2 == min(int(max(y) + 0.5), 50) - 0.5


def test_a_grid_too_small_fails():
    with pytest.raises(StepError, match="output grid would be"):
        exposure_grid(crpix=(-500.0, -500.0))


def test_given_fits_grid_is_read_back_and_its_ratio_uses_the_input_pixar():
    exposure = cal_exposure()
    wcs = tan_wcs(crpix=(40.0, 30.0), crval=(80.4875, -69.4975), scale=0.04 / 3600, pc=((0.0, 1.0), (-1.0, 0.0)))
    wcs.array_shape = None
    grid = given_grid(wcs, exposure.wcs, exposure.shape, 2.2758e-14, pixel_scale=0.04)
    assert grid.shape == (80, 100) and grid.crpix == (40.0, 30.0) and grid.crval == (80.4875, -69.4975)
    assert grid.pc == ((0.0, 1.0), (-1.0, 0.0)) and grid.cdelt == (0.04 / 3600, 0.04 / 3600)
    nominal = 3600 * math.degrees(math.sqrt(2.2758e-14))
    assert grid.pixel_scale_ratio == pytest.approx(0.04 / nominal, rel=1e-15)
    assert wcs.array_shape is None  # the caller's object is not modified
    unknown_scale = given_grid(wcs, exposure.wcs, exposure.shape, 2.2758e-14, output_shape=(60, 50))
    assert unknown_scale.shape == (50, 60)
    assert unknown_scale.pixel_scale == pytest.approx(0.04, rel=1e-6)  # from the mean output pixel area


def test_given_non_fits_grid_gets_a_linear_fit():
    transform = (models.Shift(-20.0) & models.Shift(-10.0)) | (models.Scale(SCALE) & models.Scale(SCALE)) | \
        models.Pix2Sky_TAN() | models.RotateNative2Celestial(80.0, -69.0, 180.0)
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    world = cf.CelestialFrame(reference_frame=coordinates.ICRS(), name="world")
    wcs = gwcs.WCS([gwcs.Step(detector, transform), gwcs.Step(world, None)])
    wcs.bounding_box = ((-0.5, 39.5), (-0.5, 19.5))
    exposure = cal_exposure()
    grid = given_grid(wcs, exposure.wcs, exposure.shape, None, pixel_scale=0.0311)
    assert grid.shape == (20, 40) and grid.ctype == ("RA---TAN", "DEC--TAN")
    ra, dec = grid.crval
    x, y = wcs.invert(ra, dec, with_bounding_box=False)
    assert grid.crpix == pytest.approx((x, y), abs=1e-6)
    np.testing.assert_allclose(grid.pc, [[SCALE, 0.0], [0.0, SCALE]], atol=SCALE * 1e-6)


def test_given_grid_without_any_shape_fails():
    wcs = tan_wcs(box=False)
    exposure = cal_exposure()
    with pytest.raises(StepError, match="output_shape"):
        given_grid(wcs, exposure.wcs, exposure.shape, None)
