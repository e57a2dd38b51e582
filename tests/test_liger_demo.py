"""The Liger demo dataset, calibrated end to end from its Liger-form association."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from image2.core.liger.calibrate import calibrate_liger
from image2.core.references import References
from image2.io.association import load_input
from image2.io.fits import read_exposure, write_exposure
from image2.io.refs.readers import read_reference
from image2.synthetic.liger import build_demo

pytestmark = pytest.mark.slow


def test_the_liger_demo_calibrates_from_its_association(tmp_path):
    pytest.importorskip("photutils")
    demo = build_demo(tmp_path / "demo")
    product = load_input(demo.association).products[0]
    references = References(dark=read_reference("dark", next(demo.references.glob("*DARK*"))),
                            flat=read_reference("flat", next(demo.references.glob("*FLAT*"))))
    science = read_exposure(product.science[0].path)
    sky = [read_exposure(member.path) for member in product.background]
    result = calibrate_liger([science], references, sky)
    cal = write_exposure(result.science[0], tmp_path / f"{product.name}_cal.fits")
    assert result.background.source == "SKY" and len(result.background.scales) == 2
    with fits.open(cal) as hdul:
        primary = hdul[0].header
        assert [primary[k] for k in ("S_PARSSA", "S_DARK", "S_FLAT", "S_SKYSUB", "S_WCS")] == ["COMPLETE"] * 5
        data = hdul["DATA"].data
        inside = hdul["SUBARR_MAP"].data != 0
        assert ((hdul["DQ"].data[inside] & 16) != 0).all() and not (hdul["DQ"].data[~inside] & 16).any()
        sky_level = np.nanmedian(data[~inside])
        assert abs(sky_level) < 0.05 * np.nanmedian(science.sci)  # the sky is gone (SKY frames average 40 e-/s)
