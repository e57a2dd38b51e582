"""Reference readers: records from CRDS-format files, and every malformed-file error."""

from __future__ import annotations

import asdf
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.modeling import models

from image2.core.dq import FLAGS
from image2.core.meta import Subarray
from image2.errors import ReferenceFileError
from image2.io.refs.readers import (
    read_area,
    read_dark,
    read_distortion,
    read_filteroffset,
    read_flat,
    read_photom,
    read_reference,
)
from image2.synthetic.references import (
    default_distortion_model,
    make_area,
    make_dark,
    make_distortion,
    make_filteroffset,
    make_flat,
    make_photom,
)

NIRCAM_TIMECOEFF = {
    "linear": [{"t0": 59700.0, "lossperyear": 0.011}] * 3,
    "exponential": [{"t0": 59700.0, "amplitude": 0.03, "tau": 120.0, "const": 0.97}] * 3,
    "powerlaw": [{"t0": 59700.0, "year1value": 0.98, "tsoft": 30.0, "alpha": -0.2}] * 3,
}


def _open_descriptors_to(path: Path) -> list[str]:
    """Return this process's open file descriptors that point at ``path``."""
    target = str(path.resolve())
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                found.append(fd)
        except OSError:
            continue
    return found


# ---------------------------------------------------------------- factories vs jwst's datamodels

@pytest.mark.parametrize("kind", ["flat", "nircam", "niriss", "miri", "fgs", "area", "distortion",
                                  "distortion_miri", "filteroffset", "ramp_dark"])
def test_factory_files_are_valid_for_jwst_datamodels(tmp_path, kind):
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    builders = {
        "flat": (lambda p: make_flat(p, (64, 64), flagged={"LOW_QE": [(2, 3)]}), "FlatModel"),
        "nircam": (lambda p: make_photom(p, "NIRCAM", timecoeff=NIRCAM_TIMECOEFF), "NrcImgPhotomModel"),
        "niriss": (lambda p: make_photom(p, "NIRISS"), "NisImgPhotomModel"),
        "miri": (lambda p: make_photom(p, "MIRI", timecoeff={"powerlaw": NIRCAM_TIMECOEFF["powerlaw"]}),
                 "MirImgPhotomModel"),
        "fgs": (lambda p: make_photom(p, "FGS", timecoeff={"linear": NIRCAM_TIMECOEFF["linear"][:1]}),
                "FgsImgPhotomModel"),
        "area": (lambda p: make_area(p, (64, 64)), "PixelAreaModel"),
        "distortion": (lambda p: make_distortion(p), "DistortionModel"),
        "distortion_miri": (lambda p: make_distortion(p, detector="MIRIMAGE"), "DistortionModel"),
        "filteroffset": (lambda p: make_filteroffset(p), "FilteroffsetModel"),
        "ramp_dark": (lambda p: make_dark(p, (3, 32, 32)), "DarkModel"),
    }
    build, model_name = builders[kind]
    suffix = ".asdf" if kind.startswith(("distortion", "filteroffset")) else ".fits"
    path = build(tmp_path / f"ref{suffix}")
    with getattr(datamodels, model_name)(str(path), strict_validation=True) as model:
        model.validate()
        assert model.meta.telescope == "JWST"
        assert model.meta.useafter == "2022-01-01T00:00:00"
        assert model.meta.reftype.upper() == {"nircam": "PHOTOM", "niriss": "PHOTOM", "miri": "PHOTOM",
                                              "fgs": "PHOTOM", "ramp_dark": "DARK",
                                              "distortion_miri": "DISTORTION"}.get(kind, kind.upper())
        if kind == "flat":
            assert model.dq[2, 3] == FLAGS["LOW_QE"]  # jwst translates DQ_DEF the same way we do
        if kind == "nircam":
            assert len(model.timecoeff_powerlaw) == 3


def test_default_distortion_has_accurate_inverse_and_full_frame_bounding_box():
    model = default_distortion_model((1024, 1032))
    y, x = np.mgrid[-0.5:1023.5:17j, -0.5:1031.5:17j]
    back = np.array(model.inverse(*model(x, y)))
    assert np.abs(back - np.array([x, y])).max() < 1e-5
    assert tuple(model.bounding_box.bounding_box(order="F")) == ((-0.5, 1031.5), (-0.5, 1023.5))


# ---------------------------------------------------------------- FLAT

def test_flat_reads_sci_err_and_translates_dq_def(tmp_path):
    path = make_flat(tmp_path / "flat.fits", (40, 50), flagged={
        "DO_NOT_USE": [(1, 2)], "NO_FLAT_FIELD": [(1, 2), (3, 4)], "LOW_QE": [(5, 6)], "HOT": [(7, 8)]},
        nan_pixels=[(9, 9)], zero_pixels=[(10, 10)], substrt=(101, 201))
    with fits.open(path) as hdul:
        raw_dq = hdul["DQ"].data.copy()
        stored_sci = hdul["SCI"].data.copy()
    assert raw_dq[5, 6] == 8 and raw_dq[1, 2] == 3  # local DQ_DEF bits in the file

    flat = read_flat(path)
    assert flat.dq.dtype == np.uint32
    assert flat.dq[1, 2] == FLAGS["DO_NOT_USE"] | FLAGS["NO_FLAT_FIELD"]
    assert flat.dq[3, 4] == FLAGS["NO_FLAT_FIELD"]
    assert flat.dq[5, 6] == FLAGS["LOW_QE"] == 8192
    assert flat.dq[7, 8] == FLAGS["HOT"]
    assert np.count_nonzero(flat.dq) == 4
    assert flat.sci.dtype == np.float32 and flat.sci.dtype.isnative
    np.testing.assert_array_equal(flat.sci, stored_sci)
    assert np.isnan(flat.sci[9, 9]) and flat.sci[10, 10] == 0.0
    np.testing.assert_array_equal(flat.err, np.full((40, 50), 0.005, np.float32))
    assert flat.subarray == Subarray("GENERIC", 101, 201, 50, 40)
    assert flat.instrument == "NIRCAM"
    assert flat.source == str(path.resolve())
    assert not flat.sci.flags.writeable and not flat.dq.flags.writeable


def test_flat_drops_raw_bits_missing_from_dq_def_and_warns_on_unknown_names(tmp_path, caplog):
    path = make_flat(tmp_path / "flat.fits", (8, 8), dq_def=[(0, 1, "DO_NOT_USE", ""), (6, 64, "SHINY", "")])
    with fits.open(path, mode="update") as hdul:
        hdul["DQ"].data[0, 0] = 1 | 64 | 128  # 128 is not defined at all
        hdul["DQ"].data[0, 1] = 128
    with caplog.at_level(logging.WARNING, logger="image2.io.refs.readers"):
        flat = read_flat(path)
    assert flat.dq[0, 0] == FLAGS["DO_NOT_USE"]
    assert flat.dq[0, 1] == 0
    assert "SHINY" in caplog.text


def test_flat_without_dq_def_keeps_raw_dq_and_without_err_gets_zeros(tmp_path):
    path = make_flat(tmp_path / "flat.fits", (8, 8), dq_def=False, err=False,
                     flagged={"UNRELIABLE_FLAT": [(2, 2)]})
    flat = read_flat(path, source="crds://jwst_nircam_flat_0001.fits")
    assert flat.dq[2, 2] == FLAGS["UNRELIABLE_FLAT"]
    assert flat.err.shape == (8, 8) and not flat.err.any() and flat.err.dtype == np.float32
    assert flat.source == "crds://jwst_nircam_flat_0001.fits"


def test_flat_subarray_fields_stay_none_when_keywords_are_absent(tmp_path):
    path = make_flat(tmp_path / "flat.fits", (8, 8), SUBSTRT1=None, SUBSTRT2=None, SUBSIZE1=None,
                     SUBSIZE2=None, SUBARRAY=None)
    assert read_flat(path).subarray == Subarray()


def test_readers_leave_no_open_file_handles(tmp_path):
    paths = [make_flat(tmp_path / "f.fits", (16, 16)), make_photom(tmp_path / "p.fits"),
             make_area(tmp_path / "a.fits", (16, 16)), make_distortion(tmp_path / "d.asdf"),
             make_filteroffset(tmp_path / "o.asdf"), make_dark(tmp_path / "k.fits", (16, 16))]
    records = [read_reference(t, p) for t, p in zip(
        ("flat", "photom", "area", "distortion", "filteroffset", "dark"), paths)]
    for path in paths:
        assert _open_descriptors_to(path) == []
    assert float(records[0].sci.sum()) > 0  # data still usable after the files were closed


def _edit(path: Path, function) -> Path:
    with fits.open(path) as hdul:
        hdus = fits.HDUList([hdu.copy() for hdu in hdul])
    function(hdus)
    hdus.writeto(path, overwrite=True)
    return path


@pytest.mark.parametrize("breakage, message", [
    (lambda h: h.pop(1), "has no SCI image extension"),
    (lambda h: h.__setitem__(1, fits.ImageHDU(np.ones((2, 8, 8), np.float32), name="SCI")), "must be a 2-D image"),
    (lambda h: h.__setitem__("ERR", fits.ImageHDU(np.ones((4, 8), np.float32), name="ERR")),
     "ERR has shape (4, 8) but SCI has shape (8, 8)"),
    (lambda h: h.__setitem__("DQ", fits.ImageHDU(np.ones((8, 4), np.uint32), name="DQ")), "DQ has shape"),
    (lambda h: h[0].header.__setitem__("REFTYPE", "PHOTOM"), "REFTYPE is 'PHOTOM', not a FLAT reference"),
    (lambda h: h.__setitem__("DQ_DEF", fits.BinTableHDU.from_columns(
        [fits.Column(name="BIT", format="J", array=[0])], name="DQ_DEF")), "DQ_DEF table needs VALUE and NAME"),
    (lambda h: h[0].header.__setitem__("SUBSTRT1", "one"), "SUBSTRT1 = 'one' is not an integer"),
])
def test_malformed_flat_is_rejected_with_the_file_and_the_problem(tmp_path, breakage, message):
    path = _edit(make_flat(tmp_path / "bad_flat.fits", (8, 8)), breakage)
    with pytest.raises(ReferenceFileError) as info:
        read_flat(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path))


def test_missing_and_non_fits_files_are_reference_errors(tmp_path):
    with pytest.raises(ReferenceFileError, match="does not exist"):
        read_flat(tmp_path / "nowhere.fits")
    junk = tmp_path / "junk.fits"
    junk.write_text("this is not FITS at all, just some text that is long enough" * 50)
    with pytest.raises(ReferenceFileError, match="is not a readable FITS file"):
        read_flat(junk)
    with pytest.raises(ReferenceFileError, match="not a readable ASDF file"):
        read_distortion(junk)


# ---------------------------------------------------------------- PHOTOM

def test_nircam_photom_rows_keep_float32_and_time_tables_are_read(tmp_path):
    path = make_photom(tmp_path / "p.fits", "NIRCAM", timecoeff=NIRCAM_TIMECOEFF, pixar_sr=2.29e-14,
                       pixar_a2=0.000975)
    photom = read_photom(path)
    assert photom.rows.dtype.names == ("filter", "pupil", "photmjsr", "uncertainty")
    assert photom.rows["photmjsr"].dtype == np.float32
    assert photom.rows["photmjsr"][0] == np.float32(0.2538)
    assert list(photom.rows["filter"]) == ["F150W", "F200W", "F162M"]
    assert list(photom.rows["pupil"]) == ["CLEAR", "CLEAR", "F150W2"]
    assert set(photom.timecoeff) == {"linear", "exponential", "powerlaw"}
    linear = photom.timecoeff["linear"]
    assert linear["lossperyear"].dtype == np.float32 and linear["lossperyear"][2] == np.float32(0.011)
    assert photom.timecoeff["powerlaw"]["alpha"][0] == np.float32(-0.2)
    assert photom.pixar_sr == 2.29e-14 and photom.pixar_a2 == 0.000975
    assert photom.instrument == "NIRCAM"
    assert not photom.rows.flags.writeable


@pytest.mark.parametrize("instrument, columns", [
    ("NIRISS", ("filter", "pupil", "photmjsr", "uncertainty")),
    ("MIRI", ("filter", "subarray", "photmjsr", "uncertainty")),
    ("FGS", ("photmjsr", "uncertainty")),
])
def test_photom_layouts_of_each_instrument(tmp_path, instrument, columns):
    photom = read_photom(make_photom(tmp_path / "p.fits", instrument))
    assert photom.rows.dtype.names == columns
    assert photom.timecoeff == {}


def test_nircam_photom_with_subarray_column(tmp_path):
    rows = [{"filter": "F150W", "pupil": "CLEAR", "subarray": "FULL", "photmjsr": 0.25, "uncertainty": 0.0},
            {"filter": "F150W", "pupil": "CLEAR", "subarray": "SUB640", "photmjsr": 0.26, "uncertainty": 0.0}]
    photom = read_photom(make_photom(tmp_path / "p.fits", "NIRCAM", rows))
    assert list(photom.rows["subarray"]) == ["FULL", "SUB640"]


def test_photom_stored_as_float64_is_rounded_to_float32_like_jwst(tmp_path):
    path = make_photom(tmp_path / "p.fits", "FGS")
    columns = [fits.Column(name="photmjsr", format="D", array=[0.1]),
               fits.Column(name="uncertainty", format="D", array=[0.0])]
    _edit(path, lambda h: h.__setitem__("PHOTOM", fits.BinTableHDU.from_columns(columns, name="PHOTOM")))
    photom = read_photom(path)
    assert photom.rows["photmjsr"].dtype == np.float32 and photom.rows["photmjsr"][0] == np.float32(0.1)


@pytest.mark.parametrize("timecoeff, message", [
    ({"linear": [{"t0": 59700.0, "lossperyear": 0.01}] * 2}, "TIMECOEFF_LINEAR has 2 rows but PHOTOM has 3"),
    ({"exponential": [{"t0": 1.0, "amplitude": 0.1, "tau": 1.0, "const": 1.0}] * 3 +
      [{"t0": 1.0, "amplitude": 0.1, "tau": 1.0, "const": 1.0}]}, "TIMECOEFF_EXPONENTIAL has 4 rows"),
    ({"powerlaw": [{"t0": 1.0, "year1value": 1.0, "tsoft": 1.0, "alpha": 1.0},
                   {"filter": "F444W", "t0": 1.0, "year1value": 1.0, "tsoft": 1.0, "alpha": 1.0},
                   {"t0": 1.0, "year1value": 1.0, "tsoft": 1.0, "alpha": 1.0}]},
     "TIMECOEFF_POWERLAW row 2 has filter 'F444W' but PHOTOM row 2 has filter 'F200W'"),
])
def test_inconsistent_time_dependence_tables_are_rejected(tmp_path, timecoeff, message):
    path = make_photom(tmp_path / "p.fits", "NIRCAM", timecoeff=timecoeff)
    with pytest.raises(ReferenceFileError) as info:
        read_photom(path)
    assert message in str(info.value)


def test_time_table_without_a_coefficient_column_is_rejected(tmp_path):
    path = make_photom(tmp_path / "p.fits", "FGS", timecoeff={"linear": [{"t0": 1.0, "lossperyear": 0.1}]})
    table = fits.BinTableHDU.from_columns([fits.Column(name="t0", format="E", array=[1.0])],
                                          name="TIMECOEFF_LINEAR")
    _edit(path, lambda h: h.__setitem__("TIMECOEFF_LINEAR", table))
    with pytest.raises(ReferenceFileError, match="TIMECOEFF_LINEAR table lacks column"):
        read_photom(path)


@pytest.mark.parametrize("instrument, breakage, message", [
    ("NIRCAM", lambda h: h.pop("PHOTOM"), "has no PHOTOM table extension"),
    ("MIRI", lambda h: h.__setitem__("PHOTOM", fits.BinTableHDU.from_columns(
        [fits.Column(name="filter", format="12A", array=["F770W"]),
         fits.Column(name="photmjsr", format="E", array=[0.4]),
         fits.Column(name="uncertainty", format="E", array=[0.0])], name="PHOTOM")),
     "PHOTOM table lacks column(s) subarray"),
    ("NIRCAM", lambda h: h.__setitem__("PHOTOM", fits.BinTableHDU.from_columns(
        [fits.Column(name="filter", format="12A", array=[]), fits.Column(name="pupil", format="12A", array=[]),
         fits.Column(name="photmjsr", format="E", array=[]),
         fits.Column(name="uncertainty", format="E", array=[])], name="PHOTOM")), "PHOTOM table has no rows"),
    ("NIRCAM", lambda h: h.__setitem__("PHOTOM", fits.BinTableHDU.from_columns(
        [fits.Column(name="filter", format="12A", array=["F150W"]),
         fits.Column(name="pupil", format="12A", array=["CLEAR"]),
         fits.Column(name="photmjsr", format="12A", array=["0.25"]),
         fits.Column(name="uncertainty", format="E", array=[0.0])], name="PHOTOM")),
     "PHOTOM column photmjsr is not numeric"),
    ("FGS", lambda h: h[0].header.__setitem__("PIXAR_SR", "big"), "PIXAR_SR = 'big' is not a number"),
])
def test_malformed_photom_is_rejected(tmp_path, instrument, breakage, message):
    path = _edit(make_photom(tmp_path / "p.fits", instrument), breakage)
    with pytest.raises(ReferenceFileError) as info:
        read_photom(path)
    assert message in str(info.value)


# ---------------------------------------------------------------- AREA

def test_area_reads_map_and_nominal_pixel_area(tmp_path):
    values = np.linspace(0.9, 1.1, 12, dtype=np.float32).reshape(3, 4)
    area = read_area(make_area(tmp_path / "a.fits", values=values, pixar_sr=1.5e-13, pixar_a2=0.0064))
    np.testing.assert_array_equal(area.sci, values)
    assert (area.pixar_sr, area.pixar_a2) == (1.5e-13, 0.0064)
    assert area.subarray.xsize == 4 and area.subarray.ysize == 3


def test_area_without_pixar_keywords_and_with_a_cube_is_rejected(tmp_path):
    area = read_area(make_area(tmp_path / "a.fits", (4, 4), pixar_sr=None, pixar_a2=None))
    assert area.pixar_sr is None and area.pixar_a2 is None
    path = _edit(make_area(tmp_path / "b.fits", (4, 4)),
                 lambda h: h.__setitem__("SCI", fits.ImageHDU(np.ones((2, 4, 4), np.float32), name="SCI")))
    with pytest.raises(ReferenceFileError, match="SCI must be a 2-D image"):
        read_area(path)


# ---------------------------------------------------------------- DISTORTION

def test_distortion_model_round_trips_with_inverse(tmp_path):
    model = default_distortion_model()
    reference = read_distortion(make_distortion(tmp_path / "d.asdf", model))
    x, y = np.array([0.0, 1023.5, 2047.0]), np.array([5.0, 1023.5, 2040.0])
    np.testing.assert_array_equal(np.array(reference.model(x, y)), np.array(model(x, y)))
    v2, v3 = reference.model(1023.5, 1023.5)
    assert (round(v2, 9), round(v3, 9)) == (-63.0, -490.0)  # centre maps to V2_REF, V3_REF
    np.testing.assert_allclose(np.array(reference.model.inverse(*reference.model(x, y))), [x, y], atol=1e-5)
    assert (reference.input_units, reference.output_units) == ("pix", "arcsec")


def test_distortion_accepts_string_units(tmp_path):
    reference = read_distortion(make_distortion(tmp_path / "d.asdf", detector="GUIDER1",
                                                input_units="pixel", output_units="arcsec"))
    assert reference.input_units == "pixel"


@pytest.mark.parametrize("edit, message", [
    (lambda tree: tree.pop("model"), "ASDF tree has no 'model'"),
    (lambda tree: tree.__setitem__("model", {"c0": 1.0}), "'model' is a dict, not an astropy model"),
    (lambda tree: tree.__setitem__("model", models.Polynomial1D(1)), "model maps 1 input(s) to 1 output(s)"),
    (lambda tree: tree.__setitem__("model", models.Mapping((0, 1, 1))), "model maps 2 input(s) to 3 output(s)"),
    (lambda tree: tree["meta"].__setitem__("output_units", u.deg), "meta.output_units is 'deg', expected arcsec"),
    (lambda tree: tree["meta"].__setitem__("input_units", "mm"), "meta.input_units is 'mm'"),
    (lambda tree: tree["meta"].__setitem__("reftype", "specwcs"), "REFTYPE is 'specwcs', not a DISTORTION"),
])
def test_malformed_distortion_is_rejected(tmp_path, edit, message):
    path = make_distortion(tmp_path / "d.asdf", models.Shift(1) & models.Shift(2))
    with asdf.open(path, lazy_load=False) as handle:
        tree = {"meta": dict(handle.tree["meta"]), "model": handle.tree["model"]}
    edit(tree)
    asdf.AsdfFile(tree).write_to(path)
    with pytest.raises(ReferenceFileError) as info:
        read_distortion(path)
    assert message in str(info.value)


# ---------------------------------------------------------------- FILTEROFFSET

def test_filteroffset_entries_with_and_without_pupil(tmp_path):
    nircam = read_filteroffset(make_filteroffset(tmp_path / "n.asdf"))
    assert [(f.filter, f.pupil, f.column_offset, f.row_offset) for f in nircam.filters] == [
        ("F150W", "CLEAR", 0.4, -1.25), ("F200W", "CLEAR", -0.7, 0.55)]
    miri = read_filteroffset(make_filteroffset(tmp_path / "m.asdf", detector="MIRIMAGE"))
    assert [(f.filter, f.pupil) for f in miri.filters] == [("F770W", None), ("F1500W", None)]


def test_filteroffset_entries_with_na_offsets_are_left_out(tmp_path):
    path = make_filteroffset(tmp_path / "n.asdf", [
        {"filter": "F150W", "pupil": "CLEAR", "column_offset": "N/A", "row_offset": "N/A"},
        {"filter": "F200W", "pupil": "CLEAR", "column_offset": 1, "row_offset": 2}])
    assert [(f.filter, f.column_offset) for f in read_filteroffset(path).filters] == [("F200W", 1.0)]


@pytest.mark.parametrize("filters, message", [
    ([{"pupil": "CLEAR", "column_offset": 1.0, "row_offset": 1.0}], "filters[0] has no filter name"),
    ([{"filter": "F150W", "column_offset": "left", "row_offset": 1.0}], "filters[0].column_offset is 'left'"),
    ([{"filter": "F150W", "column_offset": 1.0}], "filters[0].row_offset is None, not a number"),
    ([{"filter": "F150W", "pupil": 3, "column_offset": 1.0, "row_offset": 1.0}], "filters[0].pupil is 3"),
    (["F150W"], "filters[0] is not a mapping"),
])
def test_malformed_filteroffset_is_rejected(tmp_path, filters, message):
    path = make_filteroffset(tmp_path / "o.asdf", filters)
    with pytest.raises(ReferenceFileError) as info:
        read_filteroffset(path)
    assert message in str(info.value)


def test_filteroffset_without_filters_list_is_rejected(tmp_path):
    path = make_filteroffset(tmp_path / "o.asdf")
    with asdf.open(path) as handle:
        meta = dict(handle.tree["meta"])
    asdf.AsdfFile({"meta": meta, "offsets": []}).write_to(path)
    with pytest.raises(ReferenceFileError, match="has no 'filters' list"):
        read_filteroffset(path)


# ---------------------------------------------------------------- DARK

def test_rate_level_dark_with_dq_def(tmp_path):
    path = make_dark(tmp_path / "dark.fits", (16, 20), level=0.003, dq_def=True,
                     flagged={"HOT": [(3, 4)], "DEAD": [(5, 6)]}, substrt=(33, 65))
    dark = read_dark(path)
    assert dark.sci.shape == (16, 20) and dark.sci.dtype == np.float32
    assert abs(float(dark.sci.mean()) - 0.003) < 0.0003
    assert dark.err.shape == (16, 20)
    assert dark.dq[3, 4] == FLAGS["HOT"] and dark.dq[5, 6] == FLAGS["DEAD"]
    assert dark.subarray == Subarray("GENERIC", 33, 65, 20, 16)


def test_dark_without_err_and_dq(tmp_path):
    path = _edit(make_dark(tmp_path / "dark.fits", (8, 8), err=False), lambda h: h.pop("DQ"))
    dark = read_dark(path)
    assert dark.err is None and dark.dq is None


@pytest.mark.parametrize("shape", [(4, 16, 16), (2, 3, 16, 16)])
def test_ramp_level_jwst_dark_is_refused(tmp_path, shape):
    path = make_dark(tmp_path / "jwst_nircam_dark_0001.fits", shape)
    with pytest.raises(ReferenceFileError) as info:
        read_dark(path)
    assert "ramp-level dark" in str(info.value) and "rate-level 2-D dark" in str(info.value)
    assert str(path) in str(info.value)


def test_read_reference_dispatches_and_rejects_unknown_types(tmp_path):
    path = make_area(tmp_path / "a.fits", (4, 4))
    assert read_reference("AREA", path).sci.shape == (4, 4)
    with pytest.raises(ReferenceFileError, match="unknown reference type 'gain'"):
        read_reference("gain", path)
    with pytest.raises(ReferenceFileError, match="REFTYPE is 'AREA', not a FLAT reference"):
        read_reference("flat", path)
