"""Liger/IRIS layout: read into the same Exposure record, written back as Liger L2 products."""

from __future__ import annotations

import hashlib
import io
import warnings

import asdf
import numpy as np
import pytest
from astropy.io import fits

from image2.errors import InvalidInputError
from image2.io.fits import open_exposure, read_exposure, write_exposure
from image2.io.liger import is_liger_file
from image2.io.liger_schema import meta_tree
from image2.synthetic.liger import Region, frame_keywords, subarray_map, write_liger_file


@pytest.fixture
def frame(tmp_path):
    """A 64×80 Liger L1 frame with a subarray map, DQ uint16 and the WCS in PRIMARY."""
    rng = np.random.default_rng(1)
    shape = (64, 80)
    arrays = {"data": rng.normal(10, 1, shape).astype(np.float32), "err": np.full(shape, 0.5, np.float32),
              "dq": np.zeros(shape, np.uint16), "subarr_map": subarray_map(shape, [Region(5, 7, 10, 6)])}
    arrays["dq"][3, 4] = 2
    return write_liger_file(tmp_path / "liger_sci.fits", arrays, frame_keywords(shape=shape))


def test_liger_frame_reads_into_the_exposure_record(frame):
    exposure = read_exposure(frame)
    meta = exposure.meta
    assert meta.layout == "liger"
    assert (meta.instrument.name, meta.instrument.detector, meta.instrument.filter) == ("Liger", "IMG", "J")
    assert meta.exposure.type == "SCI" and meta.exposure.effexptm == 60.0
    assert meta.exposure.start == pytest.approx(fits.getval(frame, "EXPJDST") - 2400000.5)
    assert (meta.subarray.name, meta.subarray.xstart, meta.subarray.xsize) == ("FULL", 1, 80)
    assert meta.header("PRIMARY").get("CTYPE1") == "RA---TAN"
    with fits.open(frame) as hdul:
        assert (exposure.sci == hdul["DATA"].data).all() and (exposure.err == hdul["ERR"].data).all()
        assert exposure.dq.dtype == np.uint32 and (exposure.dq == hdul["DQ"].data).all()
        assert (exposure.extensions["SUBARR_MAP"].data == hdul["SUBARR_MAP"].data).all()
    assert exposure.var_poisson is None and exposure.var_rnoise is None


def test_jwst_files_keep_the_jwst_family(rate_file):
    assert not is_liger_file(rate_file)
    assert read_exposure(rate_file).meta.layout == "jwst"


def test_a_liger_product_has_the_liger_l2_layout(frame, tmp_path):
    exposure = read_exposure(frame)
    meta = exposure.meta.with_status("S_DARK", "COMPLETE").with_refs({"R_DARK": "/refs/dark.fits"})
    product = write_exposure(exposure.evolve(meta=meta), tmp_path / "out_cal.fits")
    with fits.open(product) as hdul:
        assert [hdu.name for hdu in hdul] == ["PRIMARY", "DATA", "ERR", "DQ", "SUBARR_MAP", "ASDF"]
        primary = hdul[0].header
        assert primary["IMTYPE"] == "SCI" and "EXP_TYPE" not in primary
        assert (primary["DATAMODL"], primary["S_DARK"], primary["R_DARK"]) == ("ImagerModel", "COMPLETE", "/refs/dark.fits")
        assert primary["SUBARRID"] == 0 and primary["DETXSIZE"] == 2048 and primary["FILENAME"] == "out_cal.fits"
        assert hdul["DATA"].data.dtype == np.dtype(">f4") and hdul["DQ"].data.dtype == np.uint16
        raw = hdul["ASDF"].data["ASDF_METADATA"][0].tobytes()
        digest = hashlib.sha256("".join(str(hdu.header) for hdu in hdul if hdu.name != "ASDF").encode()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the array stubs point at FITS extensions asdf cannot resolve alone
        tree = asdf.open(io.BytesIO(raw), lazy_load=False)
    with tree:
        assert tree.tree["_fits_hash"] == digest
        meta_out = tree.tree["meta"]
        assert meta_out["instrument"]["name"] == "Liger" and meta_out["drs_step"]["dark_sub"] == "COMPLETE"
        assert meta_out["ref_file"]["dark"]["name"] == "/refs/dark.fits"
        assert meta_out["subarray"]["detxsize"] == 2048
        assert b"gwcs" not in raw  # the WCS stays in the FITS keywords
    again = read_exposure(product)
    assert again.meta.layout == "liger" and again.meta.status["S_DARK"] == "COMPLETE"
    assert (again.sci == exposure.sci).all() and (again.dq == exposure.dq).all()


def test_dq_flags_above_bit_15_make_a_uint32_dq(frame, tmp_path):
    exposure = read_exposure(frame)
    dq = exposure.dq.copy()
    dq[0, 0] = 1 << 18
    product = write_exposure(exposure.evolve(dq=dq), tmp_path / "wide_cal.fits")
    with fits.open(product) as hdul:
        assert hdul["DQ"].data.dtype == np.uint32 and hdul["DQ"].data[0, 0] == 1 << 18


def test_subarray_map_records_travel_in_the_asdf_tree(frame, tmp_path):
    exposure = read_exposure(frame)
    records = [{"id": 1, "xstart": 5, "ystart": 7, "xsize": 10, "ysize": 6, "detxsize": 80, "detysize": 64,
                "fastaxis": 0, "slowaxis": 1}]
    product = write_exposure(exposure.evolve(meta=exposure.meta.with_tree(subarray_map=records)), tmp_path / "m_cal.fits")
    assert read_exposure(product).meta.tree["subarray_map"] == records


def test_meta_tree_places_keywords_where_the_liger_schema_has_them():
    tree = meta_tree([("INSTRUME", "IRIS"), ("S_PARSSA", "SKIPPED"), ("RADECSYS", "ICRS"), ("CRPIX1", 1.5),
                      ("UNKNOWN", 3), ("EXPTIME", None)])
    assert tree == {"instrument": {"name": "IRIS"}, "drs_step": {"parse_subarrays": "SKIPPED"},
                    "coordinates": {"reference_frame": "ICRS"}, "wcsinfo": {"crpix1": 1.5}}


@pytest.mark.parametrize("change, message", [
    (lambda h: h["DATA"].__setattr__("data", np.zeros((2, 3, 4), np.float32)), "DATA is 3-D"),
    (lambda h: h["ERR"].__setattr__("data", np.zeros((3, 4), np.float32)), "ERR shape"),
])
def test_malformed_liger_frames_are_refused_with_the_file_named(frame, change, message):
    with fits.open(frame, mode="update") as hdul:
        change(hdul)
    with pytest.raises(InvalidInputError, match=message) as raised:
        open_exposure(frame)
    assert str(frame) in str(raised.value)
