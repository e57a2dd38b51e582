"""photom (steps.md §6): row selection per instrument, time dependence to the last bit, conversion, area."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core.exposure import Exposure
from image2.core.meta import ExposureInfo, Instrument, Meta, Subarray, Units
from image2.core.photom import MJSR_TO_UJA2, photom, time_corrections
from image2.core.references import AreaReference, PhotomReference
from image2.errors import ReferenceFileError, StepError

NIRCAM_COLUMNS = [("filter", "S12"), ("pupil", "S12"), ("photmjsr", ">f4"), ("uncertainty", ">f4")]
MID = 60412.123456789


def _meta(instrument="NIRCAM", detector="NRCB1", filter="F150W", pupil="CLEAR", subarray="SUB320",
          mid=MID) -> Meta:
    return Meta(instrument=Instrument(name=instrument, detector=detector, filter=filter, pupil=pupil),
                subarray=Subarray(subarray, 3, 2, 3, 2), exposure=ExposureInfo(mid=mid),
                units=Units("DN/s", "DN/s"))


def _exposure(shape=(2, 3), meta=None, **arrays) -> Exposure:
    base = {"sci": np.full(shape, 2.0), "err": np.full(shape, 4.0), "dq": np.zeros(shape, np.uint32),
            "var_poisson": np.full(shape, 16.0), "var_rnoise": np.full(shape, 8.0),
            "var_flat": np.full(shape, 4.0)}
    base.update(arrays)
    return Exposure(meta=meta or _meta(), **base)


def _photom(rows, columns=NIRCAM_COLUMNS, timecoeff=None, pixar=(9.3e-14, 0.00396)) -> PhotomReference:
    return PhotomReference("/refs/photom.fits", np.array(rows, dtype=columns), timecoeff or {}, *pixar)


NIRCAM_ROWS = [("F150W", "CLEAR", 0.5, 0.01), ("F200W", "CLEAR", 0.25, 0.01), ("F150W", "F162M", 2.0, 0.01)]


def test_nircam_row_converts_sci_err_and_variances():
    out = photom(_exposure(), _photom(NIRCAM_ROWS), None)
    assert (out.sci == 1.0).all() and (out.err == 2.0).all()
    assert (out.var_poisson == 4.0).all() and (out.var_rnoise == 2.0).all() and (out.var_flat == 1.0).all()
    ph = out.meta.photometry
    assert ph.photmjsr == 0.5 and ph.photuja2 == float(np.float32(0.5) * np.float32(MJSR_TO_UJA2))
    assert (ph.pixar_sr, ph.pixar_a2) == (9.3e-14, 0.00396) and out.area is None
    assert out.meta.units == Units("MJy/sr", "MJy/sr")
    assert out.meta.status == {"S_PHOTOM": "COMPLETE"}
    assert out.meta.refs == {"R_PHOTOM": "/refs/photom.fits", "R_AREA": "N/A"}


def test_strings_match_case_insensitively_without_trailing_blanks():
    columns = [("filter", "U12"), ("pupil", "U12"), ("photmjsr", "f4"), ("uncertainty", "f4")]
    out = photom(_exposure(meta=_meta(filter="f150w ")), _photom([("F150W   ", "clear", 0.5, 0.0)], columns), None)
    assert out.meta.photometry.photmjsr == 0.5


def test_nircam_subarray_column_is_matched_when_present():
    columns = NIRCAM_COLUMNS[:2] + [("subarray", "S15")] + NIRCAM_COLUMNS[2:]
    rows = [("F150W", "CLEAR", "FULL", 0.5, 0.0), ("F150W", "CLEAR", "SUB320", 0.25, 0.0)]
    assert photom(_exposure(), _photom(rows, columns), None).meta.photometry.photmjsr == 0.25


def test_several_matching_rows_fail():
    with pytest.raises(StepError, match=r"photom: 2 rows of /refs/photom.fits match filter='F150W', pupil='CLEAR'"):
        photom(_exposure(), _photom(NIRCAM_ROWS + [("F150W", "CLEAR", 0.7, 0.0)]), None)


def test_no_matching_row_skips_with_the_reason_and_changes_nothing():
    exposure = _exposure(meta=_meta(filter="F444W"))
    area = AreaReference("/refs/area.fits", np.ones((10, 12)), 1e-13, 0.004)
    out = photom(exposure, _photom(NIRCAM_ROWS), area)
    assert out.meta.status == {"S_PHOTOM": "SKIPPED"}
    (note,) = out.meta.provenance[-1].notes
    assert note.startswith("no row of /refs/photom.fits matches filter='F444W', pupil='CLEAR'")
    assert np.shares_memory(out.sci, exposure.sci) and out.area is None
    assert out.meta.photometry.photmjsr is None and out.meta.units == Units("DN/s", "DN/s")


MIRI_COLUMNS = [("filter", "S12"), ("subarray", "S17"), ("photmjsr", ">f4"), ("uncertainty", ">f4")]


def test_miri_matches_subarray_then_falls_back_to_generic():
    rows = [("F770W", "GENERIC", 0.25, 0.0), ("F770W", "BRIGHTSKY", 0.5, 0.0), ("F1000W", "SUB256", 2.0, 0.0)]
    miri = _meta("MIRI", "MIRIMAGE", "F770W", None, "BRIGHTSKY")
    assert photom(_exposure(meta=miri), _photom(rows, MIRI_COLUMNS), None).meta.photometry.photmjsr == 0.5
    sub256 = _meta("MIRI", "MIRIMAGE", "F770W", None, "SUB256")
    assert photom(_exposure(meta=sub256), _photom(rows, MIRI_COLUMNS), None).meta.photometry.photmjsr == 0.25
    none = photom(_exposure(meta=_meta("MIRI", "MIRIMAGE", "F2100W", None, "FULL")), _photom(rows, MIRI_COLUMNS),
                  None)
    assert "subarray='GENERIC'" in none.meta.provenance[-1].notes[0]


def test_miri_non_imager_detector_skips():
    out = photom(_exposure(meta=_meta("MIRI", "MIRIFUSHORT", "F770W", None)), _photom([], MIRI_COLUMNS), None)
    assert out.meta.status == {"S_PHOTOM": "SKIPPED"} and "MIRIMAGE" in out.meta.provenance[-1].notes[0]


def test_fgs_uses_the_first_row():
    rows = np.array([(3.0, 0.0), (5.0, 0.0)], dtype=[("photmjsr", ">f4"), ("uncertainty", ">f4")])
    out = photom(_exposure(meta=_meta("FGS", "GUIDER1", None, None)), PhotomReference("p", rows), None)
    assert out.meta.photometry.photmjsr == 3.0 and (out.sci == 6.0).all()


def test_niriss_cube_skips_and_niriss_image_converts():
    niriss = _meta("NIRISS", "NIS", "F150W", "CLEARP")
    reference = _photom([("F150W", "CLEARP", 0.5, 0.0)])
    assert photom(_exposure(meta=niriss), reference, None).meta.photometry.photmjsr == 0.5
    out = photom(_exposure((2, 2, 3), meta=niriss), reference, None)
    assert out.meta.status == {"S_PHOTOM": "SKIPPED"} and "3-D NIRISS" in out.meta.provenance[-1].notes[0]


def test_unknown_instrument_fails():
    with pytest.raises(StepError, match="instrument NIRSPEC has no PHOTOM row-selection rule"):
        photom(_exposure(meta=_meta("NIRSPEC")), _photom(NIRCAM_ROWS), None)


LINEAR = np.array([(59700.3, 0.0123), (59000.0, 0.5)], dtype=[("t0", ">f4"), ("lossperyear", ">f4")])
EXPONENTIAL = np.array([(59710.1, 0.03, 97.3, 0.971), (59000.0, 1.0, 1.0, 0.0)],
                       dtype=[("t0", ">f4"), ("amplitude", ">f4"), ("tau", ">f4"), ("const", ">f4")])
POWERLAW = np.array([(59720.7, 0.987, 33.3, -0.021), (59000.0, 0.5, 1.0, -1.0)],
                    dtype=[("t0", ">f4"), ("year1value", ">f4"), ("tsoft", ">f4"), ("alpha", ">f4")])
TIMED_ROWS = [("F150W", "CLEAR", 0.2345678, 0.0), ("F200W", "CLEAR", 0.3, 0.0)]


def _columns(table: np.ndarray, dtype: type, *names: str) -> tuple[np.ndarray, ...]:
    """Whole table columns in ``dtype``: jwst evaluates each expression on the float32 columns, and
    numpy's array loops can round ``**`` and ``exp`` differently from its scalar arithmetic."""
    return tuple(table[name].astype(dtype) for name in names)


# steps.md §6.4 written out for row 0, in float32 with EXPMID demoted to float32 inside t - t0 (what
# jwst does under numpy 2), or in float64 to show that the precision is observable. Evaluated in this
# process, so the comparison holds on any CPU and numpy build; what jwst itself writes is checked
# live by tests/parity/test_parity_steps.py.

def _hand_linear(dtype: type = np.float32) -> np.floating:
    t0, loss = _columns(LINEAR, dtype, "t0", "lossperyear")
    return (dtype(1.0) - loss * (dtype(MID) - t0) / dtype(365.0))[0]


def _hand_exponential(dtype: type = np.float32) -> np.floating:
    t0, amplitude, tau, const = _columns(EXPONENTIAL, dtype, "t0", "amplitude", "tau", "const")
    return (amplitude * np.exp(-(dtype(MID) - t0) / tau) + const)[0]


def _hand_powerlaw(dtype: type = np.float32) -> np.floating:
    t0, year1, tsoft, alpha = _columns(POWERLAW, dtype, "t0", "year1value", "tsoft", "alpha")
    return (((dtype(MID) - t0 + tsoft) ** alpha) / (((dtype(365.0) + tsoft) ** alpha) / year1))[0]


PHOTMJSR = np.float64(np.float32(0.2345678))
"""Row 0's PHOTMJSR as jwst divides it: the float32 table value held in float64."""


@pytest.mark.parametrize(("kind", "table", "hand"), [
    ("linear", LINEAR, _hand_linear),
    ("exponential", EXPONENTIAL, _hand_exponential),
    ("powerlaw", POWERLAW, _hand_powerlaw),
])
def test_each_time_dependence_to_the_last_bit(kind, table, hand):
    out = photom(_exposure(), _photom(TIMED_ROWS, timecoeff={kind: table}), None)
    correction = hand()
    assert correction.dtype == np.float32
    expected = PHOTMJSR / np.float64(correction)
    assert out.meta.photometry.photmjsr == expected
    assert out.meta.photometry.photuja2 == expected * MJSR_TO_UJA2
    # guard: the float32 evaluation is observable (float64 arithmetic gives another PHOTMJSR)
    assert PHOTMJSR / hand(np.float64) != expected


def test_all_three_time_dependences_multiply_in_float64():
    tables = {"linear": LINEAR, "exponential": EXPONENTIAL, "powerlaw": POWERLAW}
    reference = _photom(TIMED_ROWS, timecoeff=tables)
    product = np.float64(1.0) * _hand_linear() * _hand_exponential() * _hand_powerlaw()
    assert product.dtype == np.float64 and time_corrections(reference, MID)[0] == product
    assert photom(_exposure(), reference, None).meta.photometry.photmjsr == PHOTMJSR / product
    # guard: a float32 product would differ
    assert np.float64(_hand_linear() * _hand_exponential() * _hand_powerlaw()) != product


def test_time_correction_can_be_turned_off_and_needs_expmid():
    reference = _photom(TIMED_ROWS, timecoeff={"linear": LINEAR})
    out = photom(_exposure(), reference, None, apply_time_correction=False)
    assert out.meta.photometry.photmjsr == PHOTMJSR
    with pytest.raises(StepError, match="no EXPMID"):
        photom(_exposure(meta=_meta(mid=None)), reference, None)


def test_inconsistent_time_table_is_a_reference_error():
    with pytest.raises(ReferenceFileError, match="TIMECOEFF_LINEAR has 1 rows, PHOTOM has 2"):
        photom(_exposure(), _photom(TIMED_ROWS, timecoeff={"linear": LINEAR[:1]}), None)


def test_float64_factor_rounds_each_product_once():
    rng = np.random.default_rng(5)
    sci = rng.uniform(0.1, 100, (20, 30)).astype(np.float32)
    reference = _photom(TIMED_ROWS, timecoeff={"linear": LINEAR})
    out = photom(_exposure((20, 30), sci=sci, var_poisson=sci), reference, None)
    factor = PHOTMJSR / np.float64(_hand_linear())
    np.testing.assert_array_equal(out.sci, (sci.astype(np.float64) * factor).astype(np.float32))
    np.testing.assert_array_equal(out.var_poisson, (sci.astype(np.float64) * (factor * factor)).astype(np.float32))
    assert (out.sci != sci * np.float32(factor)).any()  # a float32 product would differ


def test_float32_factor_squares_in_float32():
    rng = np.random.default_rng(6)
    var = rng.uniform(0.1, 100, (20, 30)).astype(np.float32)
    out = photom(_exposure((20, 30), var_rnoise=var), _photom([("F150W", "CLEAR", 0.2345678, 0.0)]), None)
    c = np.float32(0.2345678)
    np.testing.assert_array_equal(out.var_rnoise, var * (c * c))
    assert (out.var_rnoise != (var * c) * c).any()


def test_area_map_is_cut_and_attached_in_2d_for_a_cube():
    area = AreaReference("/refs/area.fits", np.arange(120, dtype=np.float32).reshape(10, 12), 9.9e-14, 0.0042)
    out = photom(_exposure((4, 2, 3)), _photom(NIRCAM_ROWS), area)
    assert out.area.tolist() == [[14, 15, 16], [26, 27, 28]]  # SUBSTRT1=3, SUBSTRT2=2
    assert (out.meta.photometry.pixar_sr, out.meta.photometry.pixar_a2) == (9.9e-14, 0.0042)
    assert out.meta.refs["R_AREA"] == "/refs/area.fits" and out.sci.shape == (4, 2, 3)


def test_missing_pixel_area_keywords_are_noted_and_left_unset():
    area = AreaReference("/refs/area.fits", np.ones((10, 12)), None, 0.0042)
    out = photom(_exposure(), _photom(NIRCAM_ROWS), area)
    assert out.meta.photometry.pixar_sr is None and out.meta.photometry.pixar_a2 == 0.0042
    assert out.meta.provenance[-1].notes == ("PIXAR_SR missing from /refs/area.fits; left unset",)


def test_inverse_divides_and_restores_dn_per_second():
    out = photom(_exposure(), _photom(NIRCAM_ROWS), None, inverse=True)
    assert (out.sci == 4.0).all() and (out.err == 8.0).all() and (out.var_flat == 16.0).all()
    assert out.meta.units == Units("DN/s", "DN/s") and out.meta.photometry.photmjsr == 0.5


def test_nan_in_a_variance_is_synced_and_absent_variances_stay_absent():
    var_poisson = np.full((2, 3), 16.0)
    var_poisson[1, 1] = np.nan
    out = photom(_exposure(var_poisson=var_poisson, var_flat=None), _photom(NIRCAM_ROWS), None)
    assert np.isnan(out.sci[1, 1]) and np.isnan(out.err[1, 1]) and out.dq[1, 1] == 1 and out.dq.sum() == 1
    assert out.var_flat is None
