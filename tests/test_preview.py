"""Quick-look PNGs (image2.io.preview): stretch, North-up resampling, caption, and the CLI option."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.wcs import WCS
from click.testing import CliRunner
from PIL import Image

from image2.cli.main import cli
from image2.cli.options import PREVIEW_ORIENTATIONS
from image2.io.fits import read_exposure
from image2.io.preview import (
    ORIENTATIONS,
    QuickLook,
    asinh_stretch,
    block_average,
    north_up,
    quick_look,
    render,
    sky_directions,
)
from image2.synthetic.exposures import make_rate


def rotated_wcs(shape: tuple[int, int], angle: float, flip: bool) -> WCS:
    """A TAN WCS of 0.1"/pixel whose North points ``angle`` degrees from +y (mirrored when ``flip``)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.16, -27.78]
    wcs.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    scale = 0.1 / 3600.0
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    wcs.wcs.cd = np.array([[-scale * c, scale * s], [scale * s, scale * c]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
    return wcs


def test_stretch_limits_follow_the_sky_and_invert() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(10.0, 2.0, (200, 200)).astype(np.float32)
    image[100, 100] = 5000.0
    image[:5] = np.nan
    stretch = asinh_stretch(image)
    finite = image[np.isfinite(image)]
    sky = np.median(finite)
    sigma = 1.4826 * np.median(np.abs(finite - sky))
    assert stretch.low == pytest.approx(sky - 2 * sigma)
    assert stretch.high == pytest.approx(max(np.percentile(finite, 99.97), sky + 50 * sigma))
    assert stretch(stretch.low) == pytest.approx(0.0) and stretch(stretch.high) == pytest.approx(1.0)
    values = np.linspace(stretch.low, stretch.high, 11)
    np.testing.assert_allclose(stretch.inverse(stretch(values)), values, rtol=1e-9)
    assert np.all(np.diff(stretch(values)) > 0)


def test_block_average_ignores_nans() -> None:
    image = np.arange(16.0, dtype=np.float32).reshape(4, 4)
    image[0, 0] = np.nan
    shown, factor = block_average(image, limit=2)
    assert factor == 2
    np.testing.assert_allclose(shown, [[(1 + 4 + 5) / 3, (2 + 3 + 6 + 7) / 4], [(8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]])


@pytest.mark.parametrize("angle, flip", [(0.0, False), (30.0, False), (-120.0, True)])
def test_north_up_puts_north_up_and_keeps_sources_where_the_sky_says(angle: float, flip: bool) -> None:
    shape, factor = (400, 600), 2
    wcs = rotated_wcs(shape, angle, flip)
    image = np.zeros(shape, np.float32)
    source = (451.0, 97.0)  # (x, y): block (225, 48) of the displayed image
    image[97:99, 450:452] = 100.0
    display, got = block_average(image, limit=300)
    assert got == factor
    resampled, out = north_up(display, factor, wcs)
    north, east, scale = sky_directions(out.pixel_to_world_values, out.world_to_pixel_values,
                                        resampled.shape[1] / 2, resampled.shape[0] / 2)
    np.testing.assert_allclose(north, [0.0, 1.0], atol=1e-4)
    np.testing.assert_allclose(east, [-1.0, 0.0], atol=1e-4)
    assert scale == pytest.approx(0.1 * factor, rel=1e-6)
    row, column = np.unravel_index(np.nanargmax(resampled), resampled.shape)
    expected = out.world_to_pixel_values(*wcs.pixel_to_world_values(*source))
    assert math.hypot(column - expected[0], row - expected[1]) <= 1.0
    # every displayed pixel lands somewhere: the output covers the input's footprint, outside is NaN
    assert np.isfinite(resampled).sum() == pytest.approx(display.size, rel=0.05)


def test_quick_look_of_a_record_has_units_wcs_and_caption(rate_file: Path) -> None:
    look = quick_look(read_exposure(rate_file), rate_file.name)
    assert look.unit == "DN/s" and look.grid == "detector" and look.wcs is not None and look.wcs.has_celestial
    assert look.details.split() == ["NIRCAM", "NRCB1", "F150W", "1030.73", "s", "2023-02-25", "12:00:00"]


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_render_gives_a_png_in_each_orientation(orientation: str) -> None:
    wcs = rotated_wcs((300, 300), 40.0, False)
    rng = np.random.default_rng(2)
    look = QuickLook(rng.normal(1.0, 0.1, (300, 300)).astype(np.float32), "x_i2d.fits", "MJy/sr", "NIRCAM", wcs)
    png = Image.open(io.BytesIO(render(look, orientation)))
    assert png.format == "PNG" and png.size == (740, 700)
    plain = Image.open(io.BytesIO(render(QuickLook(look.image, "x_cal.fits"), orientation)))
    assert plain.size == (740, 700)
    with pytest.raises(ValueError, match="orientation"):
        render(look, "sideways")


def test_the_cli_names_the_same_orientations() -> None:
    assert PREVIEW_ORIENTATIONS == ORIENTATIONS


def test_process_writes_a_north_up_quick_look(tmp_path: Path) -> None:
    rate = make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits", shape=(64, 80))
    declined = [arg for reftype in ("flat", "photom", "area", "distortion", "filteroffset")
                for arg in ("--ref", f"{reftype}=N/A")]
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["process", str(rate), "-o", str(out), *declined, "--preview=north-up"])
    assert result.exit_code == 0, result.output
    png = out / "jw01234001001_01101_00001_nrcb1_i2d.png"
    assert Image.open(png).size == (740, 700)
    result = CliRunner().invoke(cli, ["process", str(rate), "-o", str(out), *declined, "--preview=sideways"])
    assert result.exit_code == 2 and "north-up" in result.output
