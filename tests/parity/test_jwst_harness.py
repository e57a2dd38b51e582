"""The parity harness itself (no jwst needed): its comparisons catch differences, its jobs are well formed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.parity.jwst_harness import (
    JwstBatch,
    array_difference,
    assert_arrays_equal,
    header_differences,
    product_differences,
)


def test_identical_arrays_with_nan_at_the_same_places_are_equal():
    a = np.array([[1.0, np.nan], [3.0, 4.0]], np.float32)
    assert array_difference(a, a.copy()) is None
    assert array_difference(a.astype(">f4"), a) is None  # byte order is not a difference


def test_one_ulp_is_a_difference_unless_a_tolerance_is_given():
    a = np.array([1.0, 2.0, 3.0], np.float32)
    b = a.copy()
    b[1] = np.nextafter(b[1], np.float32(3.0))
    problem = array_difference(b, a)
    assert problem is not None and "1 of 3 finite values differ" in problem and "(1,)" in problem
    assert array_difference(b, a, rtol=1e-6) is None
    with pytest.raises(AssertionError, match="VAR_FLAT: 1 of 3"):
        assert_arrays_equal(b, a, "VAR_FLAT")


@pytest.mark.parametrize("other, message", [
    (np.array([1.0, np.nan], np.float32), "NaN positions differ"),
    (np.array([1.0, 2.0], np.float64), "dtype"),
    (np.array([1.0, 2.0, 3.0], np.float32), "shape"),
    (np.array([1.0, np.inf], np.float32), "finite values differ"),
])
def test_nan_dtype_shape_and_infinite_differences_are_reported(other, message):
    assert message in array_difference(other, np.array([1.0, 2.0], np.float32))


def test_integer_arrays_compare_exactly():
    dq = np.array([0, 1, 512], np.uint32)
    assert array_difference(dq, dq.copy()) is None
    assert "1 of 3 values differ; first at (2,)" in array_difference(dq | np.array([0, 0, 4], np.uint32), dq)


def _product(path: Path, sci: np.ndarray, photmjsr: float, area: bool = True) -> Path:
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"), fits.ImageHDU(np.zeros(sci.shape, np.uint32), name="DQ")]
    hdus[0].header["S_PHOTOM"] = "COMPLETE"
    hdus[0].header["DATE"] = str(path)
    hdus[1].header["PHOTMJSR"] = photmjsr
    if area:
        hdus.append(fits.ImageHDU(np.ones(sci.shape, np.float32), name="AREA"))
    fits.HDUList(hdus).writeto(path)
    return path


def test_products_are_compared_by_array_and_by_keyword(tmp_path: Path):
    sci = np.arange(6, dtype=np.float32).reshape(2, 3)
    ours = _product(tmp_path / "ours.fits", sci, 0.25)
    same = _product(tmp_path / "same.fits", sci, 0.25)
    keywords = {"PRIMARY": ("S_PHOTOM",), "SCI": ("PHOTMJSR", "PIXAR_SR")}
    assert product_differences(ours, same, keywords=keywords) == []
    assert header_differences(ours, same, "PRIMARY") == []  # DATE is not compared
    changed = sci.copy()
    changed[1, 2] = 6.5
    other = _product(tmp_path / "other.fits", changed, 0.5, area=False)
    problems = product_differences(ours, other, keywords=keywords)
    assert problems == ["SCI: 1 of 6 finite values differ (max |diff| 1.5, max rel 0.231); worst at (1, 2): "
                        "np.float32(5.0) != np.float32(6.5)",
                        "AREA: present in image2 only", "SCI PHOTMJSR: image2 0.25 != jwst 0.5"]
    assert header_differences(ours, other, "SCI") == ["SCI PHOTMJSR: image2 0.25 != jwst 0.5"]


def test_jobs_are_json_with_paths_as_strings_and_unique_names(tmp_path: Path):
    batch = JwstBatch(tmp_path / "jwst")
    out = batch.step("flat", "flat_field", tmp_path / "a_rate.fits", overrides={"flat": tmp_path / "flat.fits"},
                     parameters={"inverse": False})
    assert out == tmp_path / "jwst" / "flat" / "flat.fits"
    directory = batch.pipeline("all", tmp_path / "asn.json", overrides={"photom": {"area": "N/A"}},
                               step_parameters={"resample": {"skip": True}})
    assert directory == tmp_path / "jwst" / "all"
    jobs = json.loads(json.dumps(batch.jobs))
    assert jobs[0]["overrides"] == {"flat": str(tmp_path / "flat.fits")} and jobs[0]["args"] == []
    assert jobs[1]["overrides"] == {"photom": {"area": "N/A"}} and jobs[1]["kind"] == "pipeline"
    with pytest.raises(ValueError, match="duplicate"):
        batch.step("flat", "photom", tmp_path / "a_rate.fits")


def test_a_python_without_jwst_fails_with_the_log_tail(tmp_path: Path):
    batch = JwstBatch(tmp_path)
    batch.step("flat", "flat_field", tmp_path / "a_rate.fits")
    with pytest.raises(AssertionError, match="before running any job"):
        batch.run(sys.executable, timeout=120)
