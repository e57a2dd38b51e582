"""Reading and writing exposures in the JWST FITS layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from image2.core.meta import StepRecord
from image2.errors import InvalidInputError
from image2.io.atomic import ProductExistsError
from image2.io.fits import open_exposure, read_exposure, write_exposure
from image2.synthetic.exposures import make_rate


def test_reads_typed_metadata_and_arrays(rate_file: Path):
    exposure = read_exposure(rate_file)
    meta = exposure.meta
    assert (meta.instrument.name, meta.instrument.detector, meta.instrument.filter) == ("NIRCAM", "NRCB1", "F150W")
    assert meta.instrument.module == "B" and meta.instrument.channel == "SHORT"
    assert meta.exposure.type == "NRC_IMAGE" and meta.exposure.tsovisit is False
    assert meta.exposure.effexptm == pytest.approx(1030.73) and meta.exposure.mid == pytest.approx(60000.50621)
    assert (meta.subarray.xstart, meta.subarray.ysize, meta.subarray.xsize) == (1, 64, 80)
    assert meta.pointing.vparity == -1 and meta.pointing.v3_ref == -490.0
    assert meta.units.data == "DN/s" and meta.units.err == "DN/s"
    assert meta.status["S_RAMP"] == "COMPLETE" and meta.refs["R_GAIN"].startswith("crds://")
    assert meta.header("PRIMARY").get("TARGNAME") == "NGC 1234"
    assert "INSTRUME" not in meta.header("PRIMARY")  # modelled keywords are not duplicated
    raw = fits.getdata(rate_file, "SCI")
    np.testing.assert_array_equal(exposure.sci, raw)
    assert exposure.dq.dtype == np.uint32 and exposure.sci.dtype == np.float32
    assert exposure.var_flat is None and exposure.area is None


def _hdu_keywords(header: fits.Header) -> dict:
    skip = {"DATE", "FILENAME", "CAL_VER", "CAL_VCS", "CHECKSUM", "DATASUM"}
    return {card.keyword: card.value for card in header.cards if card.keyword not in skip}


@pytest.mark.parametrize("fixture", ["rate_file", "rateints_file"])
def test_read_write_read_keeps_every_bit_and_keyword(fixture: str, request, tmp_path: Path):
    source = request.getfixturevalue(fixture)
    first = read_exposure(source)
    (tmp_path / "out").mkdir()
    copy = write_exposure(first, tmp_path / "out" / "copy_cal.fits")
    second = read_exposure(copy)
    for name in ("sci", "err", "dq", "var_poisson", "var_rnoise"):
        a, b = getattr(first, name), getattr(second, name)
        assert a.tobytes() == b.tobytes() and a.dtype == b.dtype
    assert second.meta.instrument == first.meta.instrument
    assert second.meta.status == first.meta.status and second.meta.refs == first.meta.refs
    with fits.open(source) as original, fits.open(copy) as written:
        for name in ("PRIMARY", "SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"):
            before, after = _hdu_keywords(original[name].header), _hdu_keywords(written[name].header)
            assert before == after, name
        assert written["DQ"].header["BITPIX"] == 32 and written["DQ"].header["BZERO"] == 2**31
        assert written["SCI"].header["BITPIX"] == -32
        assert [h.name for h in written][-1] == "ASDF"
        assert written[0].header["FILENAME"] == "copy_cal.fits"
        if "INT_TIMES" in original:
            assert np.array_equal(np.asarray(original["INT_TIMES"].data), np.asarray(written["INT_TIMES"].data))
            assert original["INT_TIMES"].columns.names == written["INT_TIMES"].columns.names


def test_provenance_and_wcs_survive_a_round_trip(rate_file: Path, tmp_path: Path):
    from astropy.coordinates import ICRS
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    exposure = read_exposure(rate_file)
    transform = (models.Shift(-10) & models.Shift(-20)) | (models.Scale(1e-5) & models.Scale(1e-5)) \
        | models.Pix2Sky_TAN() | models.RotateNative2Celestial(80.0, -69.0, 180.0)
    wcs = gwcs_wcs.WCS([(cf.Frame2D(name="detector"), transform), (cf.CelestialFrame(reference_frame=ICRS(), name="world"), None)])
    record = StepRecord("flat_field", "COMPLETE", {"inverse": False}, {"R_FLAT": "N/A"}, ("note",))
    changed = exposure.evolve(wcs=wcs, meta=exposure.meta.evolve(provenance=(record,)).with_tree(
        wcsinfo={"sipmxerr": 0.001}))
    back = read_exposure(write_exposure(changed, tmp_path / "x_cal.fits"))
    assert back.meta.provenance == (record,)
    assert back.meta.tree["wcsinfo"] == {"sipmxerr": 0.001}
    np.testing.assert_allclose(back.wcs(5.0, 7.0), wcs(5.0, 7.0), rtol=0, atol=1e-12)


def test_reads_files_written_by_jwst_datamodels(tmp_path: Path):
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    model = datamodels.ImageModel((10, 12))
    model.data = np.arange(120, dtype=np.float32).reshape(10, 12)
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.detector = "NRCA1"
    model.meta.exposure.type = "NRC_IMAGE"
    model.meta.wcsinfo.v2_ref = 12.5
    model.var_poisson = np.ones((10, 12), np.float32)
    model.var_rnoise = np.ones((10, 12), np.float32)
    path = tmp_path / "dm_rate.fits"
    model.save(path)
    exposure = read_exposure(path)
    assert exposure.meta.instrument.detector == "NRCA1" and exposure.meta.pointing.v2_ref == 12.5
    np.testing.assert_array_equal(exposure.sci, model.data)
    assert exposure.err.shape == (10, 12) and not exposure.dq.any()  # defaults when absent


def test_reads_integration_ranges_lazily(rateints_file: Path):
    with open_exposure(rateints_file) as handle:
        assert handle.is_cube and handle.shape == (4, 32, 40)
        part = handle.read(1, 3)
    whole = read_exposure(rateints_file)
    assert part.nints == 2
    np.testing.assert_array_equal(part.sci, whole.sci[1:3])
    np.testing.assert_array_equal(part.dq, whole.dq[1:3])


def test_existing_product_is_never_clobbered(rate_file: Path, tmp_path: Path):
    exposure = read_exposure(rate_file)
    target = tmp_path / "keep_cal.fits"
    target.write_bytes(b"precious")
    with pytest.raises(ProductExistsError):
        write_exposure(exposure, target)
    assert target.read_bytes() == b"precious"
    write_exposure(exposure, target, overwrite=True)
    assert read_exposure(target).sci.shape == (64, 80)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failed_write_leaves_no_file(rate_file: Path, tmp_path: Path, monkeypatch):
    exposure = read_exposure(rate_file)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", boom)
    with pytest.raises(OSError, match="disk full"):
        write_exposure(exposure, tmp_path / "x_cal.fits")
    assert list(tmp_path.glob("*cal*")) == [] and list(tmp_path.glob(".*")) == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("plain text, not FITS"), "not a readable FITS file"),
        (lambda p: p.write_bytes(make_rate(p).read_bytes()[:-4000]), "truncated"),
        (lambda p: make_rate(p, arrays={"SCI": None, "ERR": None}), "no SCI extension"),
        (lambda p: make_rate(p, shape=(3, 2, 4, 5)), "SCI is 4-D"),
        (lambda p: make_rate(p, drop=("EXP_TYPE",)), "required keyword EXP_TYPE"),
        (lambda p: make_rate(p, primary={"NINTS": "many"}), "NINTS"),
    ],
)
def test_bad_inputs_name_the_file_and_problem(tmp_path: Path, make, message: str):
    path = tmp_path / "bad_rate.fits"
    make(path)
    with pytest.raises(InvalidInputError, match=message) as caught:
        read_exposure(path)
    assert caught.value.path == str(path)
    assert os.path.exists(path)
