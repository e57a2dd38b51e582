"""The cal staged on a thread while resample runs: published last, restaged when the record changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from image2.io.atomic import Staging
from image2.io.fits import read_exposure
from image2.run.publish import SettledCal
from image2.synthetic.exposures import make_rate


@pytest.fixture
def exposure(tmp_path: Path):
    return read_exposure(make_rate(tmp_path / "x_rate.fits", shape=(16, 20)))


def test_the_settled_record_is_staged_on_a_thread_and_published_last(tmp_path: Path, exposure) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with Staging() as staging:
        with SettledCal(staging, out / "x_cal.fits") as settled:
            settled.stage(exposure)
            with staging.open(out / "x_i2d.fits") as handle:
                handle.write(b"i2d")
            assert settled.finished(exposure) is True
        assert staging.publish() == [out / "x_i2d.fits", out / "x_cal.fits"]
    with fits.open(out / "x_cal.fits") as hdul:
        assert (hdul["SCI"].data == exposure.sci).all()


def test_a_record_changed_after_it_settled_is_withdrawn_for_the_caller_to_stage(tmp_path: Path, exposure) -> None:
    with Staging() as staging:
        with SettledCal(staging, tmp_path / "x_cal.fits") as settled:
            settled.stage(exposure)
            assert settled.finished(exposure.evolve(sci=exposure.sci + 1)) is False
        assert staging.publish() == []
    assert list(tmp_path.glob("*cal*")) == []


def test_nothing_settled_leaves_the_staging_to_the_caller(tmp_path: Path, exposure) -> None:
    with Staging() as staging, SettledCal(staging, tmp_path / "x_cal.fits") as settled:
        assert settled.finished(exposure) is False


def test_an_early_write_that_fails_fails_the_product_and_leaves_no_file(tmp_path: Path, exposure) -> None:
    (tmp_path / "x_cal.fits").write_bytes(b"kept")
    with Staging() as staging, SettledCal(staging, tmp_path / "x_cal.fits") as settled:
        settled.stage(exposure)  # not overwriting: the existing product refuses the staging
        with pytest.raises(Exception, match="x_cal.fits"):
            settled.finished(exposure)
    assert (tmp_path / "x_cal.fits").read_bytes() == b"kept" and len(list(tmp_path.iterdir())) == 2
