"""``image2 demo``: builds the synthetic NIRCam dataset and calibrates it end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from image2.cli.main import cli


@pytest.mark.slow
def test_demo_builds_and_calibrates_a_full_frame_field(tmp_path: Path):
    result = CliRunner().invoke(cli, ["--log-level", "WARNING", "demo", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    products = tmp_path / "demo" / "products"
    root = products / "jw02736001001_02101_00001_nrcb1"
    assert Path(f"{root}_i2d.png").read_bytes()[:4] == b"\x89PNG"
    with fits.open(f"{root}_cal.fits") as cal:
        assert cal["SCI"].data.shape == (2048, 2048)
        assert all(cal[0].header[k] == "COMPLETE" for k in ("S_BKDSUB", "S_WCS", "S_FLAT", "S_PHOTOM"))
        assert cal["SCI"].header["BUNIT"] == "MJy/sr"
        finite = np.isfinite(cal["SCI"].data)
        assert 0.99 < finite.mean() < 1.0  # bad pixels and flat holes are NaN, the rest calibrated
        # background subtracted: the sky is near zero, the sources stand out
        assert abs(np.median(cal["SCI"].data[finite])) < 0.01 and np.nanmax(cal["SCI"].data) > 1.0
    assert fits.getheader(f"{root}_i2d.fits")["S_RESAMP"] == "COMPLETE"
    assert "done in" in result.output
