"""i2d files (formats.md §2.1): write/read round trip, layout, and output-WCS ASDF files."""

from __future__ import annotations

import warnings
from pathlib import Path

import asdf
import numpy as np
import pytest
from astropy.io import fits

from image2.core.resample import Resampled, resample
from image2.errors import InvalidInputError
from image2.io.atomic import ProductExistsError
from image2.io.i2d import read_i2d, read_output_wcs, write_i2d
from tests.resample_inputs import cal_exposure

SHAPE = (48, 64)


@pytest.fixture(scope="module")
def i2d() -> Resampled:
    dq = np.zeros(SHAPE, np.uint32)
    dq[5, 5] = 4
    result = resample(cal_exposure(SHAPE, dq=dq), propagate_dq=True)
    assert isinstance(result, Resampled)
    return result


def test_round_trip_keeps_every_array_card_and_the_wcs(i2d: Resampled, tmp_path: Path):
    path = write_i2d(i2d, tmp_path / "x_i2d.fits")
    back = read_i2d(path)
    for name in ("sci", "wht", "con", "err", "var_rnoise", "var_poisson", "var_flat", "dq"):
        original, read = getattr(i2d, name), getattr(back, name)
        assert read.dtype == original.dtype, name
        np.testing.assert_array_equal(read, original, err_msg=name)
    assert back.meta.status == i2d.meta.status
    for field in ("pixar_sr", "pixar_a2", "photmjsr"):  # FITS cards hold ~14 significant digits
        assert getattr(back.meta.photometry, field) == pytest.approx(getattr(i2d.meta.photometry, field), rel=1e-12)
    assert back.meta.exposure == i2d.meta.exposure
    for hdu in ("SCI", "PRIMARY"):
        for card in i2d.meta.header(hdu):
            expected = pytest.approx(card.value, rel=1e-14) if isinstance(card.value, float) else card.value
            assert back.meta.header(hdu).get(card.keyword) == expected, (hdu, card.keyword)
    assert back.meta.tree["resample"] == {"kernel": "square", "fillval": "NAN"}
    assert back.meta.provenance[-1].step == "resample"
    y, x = np.mgrid[0:SHAPE[0]:5, 0:SHAPE[1]:5]
    np.testing.assert_array_equal(back.wcs(x, y), i2d.wcs(x, y))
    assert back.wcs.bounding_box.bounding_box(order="F") == i2d.wcs.bounding_box.bounding_box(order="F")


def test_file_layout_is_jwsts(i2d: Resampled, tmp_path: Path):
    path = write_i2d(i2d, tmp_path / "x_i2d.fits")
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR", "DQ", "CON", "WHT", "VAR_POISSON",
                                          "VAR_RNOISE", "VAR_FLAT", "ASDF"]
        assert hdul[0].data is None and hdul[0].header["FILENAME"] == "x_i2d.fits"
        assert hdul[0].header["S_RESAMP"] == "COMPLETE" and hdul[0].header["NDRIZ"] == 1
        for name in ("SCI", "ERR", "WHT", "VAR_POISSON"):
            assert hdul[name].header["BITPIX"] == -32 and hdul[name].header["EXTVER"] == 1
        assert hdul["CON"].header["BITPIX"] == 32 and hdul["CON"].data.shape == (1, *i2d.shape)
        assert hdul["DQ"].header["BZERO"] == 2147483648 and hdul["DQ"].data.dtype == np.uint32
        assert hdul["SCI"].header["CTYPE1"] == "RA---TAN" and hdul["SCI"].header["BUNIT"] == "MJy/sr"
        assert hdul["ERR"].header["BUNIT"] == "MJy/sr" and "BUNIT" not in hdul["VAR_FLAT"].header


def test_switched_off_planes_are_absent(tmp_path: Path):
    lean = resample(cal_exposure(SHAPE), enable_ctx=False, enable_err=False)
    path = write_i2d(lean, tmp_path / "lean_i2d.fits")
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "WHT", "ASDF"]
    back = read_i2d(path)
    assert back.con is None and back.err is None and back.variances() == {}


def test_jwst_datamodels_open_the_file(i2d: Resampled, tmp_path: Path):
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    path = write_i2d(i2d, tmp_path / "x_i2d.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic test metadata does not follow every schema enum
        with datamodels.ImageModel(str(path)) as model:
            np.testing.assert_array_equal(model.data, i2d.sci)
            np.testing.assert_array_equal(model.con, i2d.con)
            assert model.meta.resample.kernel == "square" and model.meta.cal_step.resample == "COMPLETE"
            assert model.meta.wcs(10.0, 12.0) == pytest.approx(i2d.wcs(10.0, 12.0), abs=1e-12)


def test_existing_products_are_kept_unless_overwrite(i2d: Resampled, tmp_path: Path):
    path = write_i2d(i2d, tmp_path / "x_i2d.fits")
    with pytest.raises(ProductExistsError):
        write_i2d(i2d, path)
    write_i2d(i2d, path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["x_i2d.fits"]


def test_reading_something_else_fails_clearly(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="no such file"):
        read_i2d(tmp_path / "missing_i2d.fits")
    plain = tmp_path / "plain.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((2, 2), np.float32), name="SCI")]).writeto(plain)
    with pytest.raises(InvalidInputError, match="not an i2d"):
        read_i2d(plain)
    (tmp_path / "junk_i2d.fits").write_bytes(b"not fits at all")
    with pytest.raises(InvalidInputError, match="junk_i2d.fits"):
        read_i2d(tmp_path / "junk_i2d.fits")


def write_wcs_file(path: Path, i2d: Resampled, **extra) -> Path:
    wcs = i2d.wcs
    asdf.AsdfFile({"wcs": wcs, **extra}).write_to(path)
    return path


def test_output_wcs_file_gives_the_wcs_and_its_pixel_scale(i2d: Resampled, tmp_path: Path):
    wcs, scale = read_output_wcs(write_wcs_file(tmp_path / "a.asdf", i2d, pixel_scale=0.0311))
    assert scale == 0.0311 and wcs.array_shape == i2d.shape
    assert wcs(3.0, 4.0) == pytest.approx(i2d.wcs(3.0, 4.0), abs=1e-12)
    _, scale = read_output_wcs(write_wcs_file(tmp_path / "b.asdf", i2d, pixel_area=0.0009))
    assert scale == pytest.approx(0.03, rel=1e-15)
    _, scale = read_output_wcs(write_wcs_file(tmp_path / "c.asdf", i2d))
    assert scale is None
    shaped, _ = read_output_wcs(tmp_path / "c.asdf", output_shape=(30, 20))
    assert shaped.array_shape == (20, 30)


def test_output_wcs_file_shape_comes_from_the_tree_when_the_wcs_has_none(i2d: Resampled, tmp_path: Path):
    bare = i2d.wcs.__class__(i2d.wcs.pipeline)
    asdf.AsdfFile({"wcs": bare, "pixel_shape": [33, 22]}).write_to(tmp_path / "d.asdf")
    wcs, _ = read_output_wcs(tmp_path / "d.asdf")
    assert wcs.array_shape == (22, 33)


def test_output_wcs_file_problems_are_input_errors(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="no such file"):
        read_output_wcs(tmp_path / "none.asdf")
    asdf.AsdfFile({"grid": 1}).write_to(tmp_path / "e.asdf")
    with pytest.raises(InvalidInputError, match="no 'wcs'"):
        read_output_wcs(tmp_path / "e.asdf")
    asdf.AsdfFile({"wcs": [1, 2]}).write_to(tmp_path / "f.asdf")
    with pytest.raises(InvalidInputError, match="not a gwcs"):
        read_output_wcs(tmp_path / "f.asdf")
    (tmp_path / "g.asdf").write_text("nonsense")
    with pytest.raises(InvalidInputError, match="g.asdf"):
        read_output_wcs(tmp_path / "g.asdf")
