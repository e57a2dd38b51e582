"""dark_current (Liger/IRIS, steps.md §4): rate-level subtraction, NaN darks, DQ, optional ERR propagation."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core.dark_current import dark_current
from image2.core.exposure import Exposure
from image2.core.meta import Instrument, Meta, Subarray
from image2.core.references import DarkReference
from image2.errors import ReferenceFileError, StepError

HOT, WARM = 2048, 4096


def _exposure(sci=((5.0, 6.0, 7.0), (8.0, 9.0, 10.0)), subarray=Subarray("FULL", 1, 1, 3, 2)) -> Exposure:
    sci = np.asarray(sci, np.float32)
    return Exposure(sci=sci, err=np.full(sci.shape, 3.0), dq=np.full(sci.shape, 4, np.uint32),
                    var_poisson=np.ones(sci.shape), var_rnoise=np.ones(sci.shape),
                    meta=Meta(instrument=Instrument(name="IRIS"), subarray=subarray))


def _dark(sci=((1.0, np.nan, 0.5), (2.0, 0.25, -1.0)), err=((4.0, 1.0, 0.0), (0.0, 0.0, 0.0)),
          dq=((0, HOT, 0), (WARM, 0, 0)), subarray=Subarray()) -> DarkReference:
    return DarkReference("/refs/iris_dark.fits", np.asarray(sci, np.float32),
                         None if err is None else np.asarray(err, np.float32),
                         None if dq is None else np.asarray(dq, np.uint32), subarray)


def test_subtracts_with_nan_dark_as_zero_and_ors_dq():
    out = dark_current(_exposure(), _dark())
    assert out.sci.tolist() == [[4.0, 6.0, 6.5], [6.0, 8.75, 11.0]]
    assert out.dq.tolist() == [[4, 4 | HOT, 4], [4 | WARM, 4, 4]]
    assert (out.err == 3.0).all() and (out.var_poisson == 1.0).all()  # untouched by default
    assert out.meta.status == {"S_DARK": "COMPLETE"} and out.meta.refs == {"R_DARK": "/refs/iris_dark.fits"}


def test_propagate_error_adds_in_quadrature():
    out = dark_current(_exposure(), _dark(), propagate_error=True)
    assert out.err[0, 0] == 5.0 and out.err[0, 1] == np.sqrt(np.float32(10.0)) and out.err[1, 2] == 3.0
    assert out.meta.provenance[-1].parameters == {"propagate_error": True}
    with pytest.raises(StepError, match="propagate_error needs the dark's ERR array"):
        dark_current(_exposure(), _dark(err=None), propagate_error=True)


def test_dark_without_dq_leaves_dq_alone():
    exposure = _exposure()
    out = dark_current(exposure, _dark(dq=None))
    assert np.shares_memory(out.dq, exposure.dq)


def test_cube_subtracts_the_same_dark_from_every_integration():
    cube = np.stack([np.full((2, 3), 10.0), np.full((2, 3), 20.0)])
    out = dark_current(_exposure(cube), _dark())
    assert out.sci[:, 1, 1].tolist() == [9.75, 19.75] and out.sci[:, 0, 1].tolist() == [10.0, 20.0]
    assert out.dq[1, 0, 1] == 4 | HOT


def test_subarray_exposure_uses_its_window():
    dark = np.arange(20, dtype=np.float32).reshape(4, 5)
    out = dark_current(_exposure(subarray=Subarray("SUBA", 2, 3, 3, 2)), _dark(dark, dark, np.zeros((4, 5))))
    assert out.sci.tolist() == [[5 - 11, 6 - 12, 7 - 13], [8 - 16, 9 - 17, 10 - 18]]


def test_no_dark_skips_and_misfit_dark_fails():
    out = dark_current(_exposure(), None)
    assert out.meta.status == {"S_DARK": "SKIPPED"} and out.meta.refs == {"R_DARK": "N/A"}
    with pytest.raises(ReferenceFileError, match="differs from the full-frame science array"):
        dark_current(_exposure(), _dark(np.zeros((3, 3)), None, None))
    with pytest.raises(ReferenceFileError, match="bad reference slice for dark_current"):
        dark_current(_exposure(subarray=Subarray("SUBA", 4, 1, 3, 2)), _dark(np.zeros((4, 5)), None, None))
