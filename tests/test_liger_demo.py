"""``image2 demo --instrument liger``: the Liger dataset built and calibrated end to end from its association."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from image2.cli.main import cli
from image2.io.association import load_input
from image2.io.fits import read_exposure

pytestmark = pytest.mark.slow


def test_the_liger_demo_calibrates_from_its_association(tmp_path: Path):
    pytest.importorskip("photutils")
    folder = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["--log-level", "WARNING", "demo", "--instrument", "liger", str(folder)])
    assert result.exit_code == 0, result.output
    product = load_input(folder / "inputs" / "liger_asn.json").products[0]
    assert [member.path.name for member in product.background] == [
        "2024B-P001-001_Liger_IMG_SKY_LVL1_0002.fits", "2024B-P001-001_Liger_IMG_SKY_LVL1_0003.fits"]
    science = read_exposure(product.science[0].path)
    cal = folder / "products" / f"{product.name}_cal.fits"
    assert str(cal) in result.output
    with fits.open(cal) as hdul:
        primary = hdul[0].header
        assert [primary[k] for k in ("S_PARSSA", "S_DARK", "S_FLAT", "S_SKYSUB", "S_WCS")] == ["COMPLETE"] * 5
        assert primary["R_DARK"].endswith("DARK_20241017000000_0.0.1.fits") and primary["DATALVL"] == 2
        assert [hdu.name for hdu in hdul[1:5]] == ["DATA", "ERR", "DQ", "SUBARR_MAP"]
        data = hdul["DATA"].data
        inside = hdul["SUBARR_MAP"].data != 0
        assert ((hdul["DQ"].data[inside] & 16) != 0).all() and not (hdul["DQ"].data[~inside] & 16).any()
        sky_level = np.nanmedian(data[~inside])
        assert abs(sky_level) < 0.05 * np.nanmedian(science.sci)  # the sky is gone (SKY frames average 40 e-/s)
