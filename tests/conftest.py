"""Shared fixtures: temporary rate files laid out like real JWST products."""

from __future__ import annotations

from pathlib import Path

import pytest

from image2.synthetic.exposures import make_rate


@pytest.fixture
def rate_file(tmp_path: Path) -> Path:
    """A small 2-D NIRCam rate file with the real keyword set and an ASDF extension."""
    return make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits")


@pytest.fixture
def rateints_file(tmp_path: Path) -> Path:
    """A small 3-D rateints file with an INT_TIMES table."""
    return make_rate(tmp_path / "jw01234001001_01101_00002_nrcb1_rateints.fits", shape=(4, 32, 40),
                     primary={"EXP_TYPE": "NRC_TSIMAGE", "TSOVISIT": True}, int_times=True)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> None:
    """Keep reference-store indexes out of the user's ~/.cache during tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    monkeypatch.delenv("CRDS_PATH", raising=False)
