"""flat_field (steps.md §5): hand-computed small cases for every rule of the spec's table."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core.dq import DO_NOT_USE, NO_FLAT_FIELD, UNRELIABLE_FLAT
from image2.core.exposure import Exposure
from image2.core.flat_field import flat_field, usable_flat
from image2.core.meta import Instrument, Meta, Subarray
from image2.core.references import FlatReference
from image2.errors import StepError

NAN = np.nan
HOT = 2048
BAD = DO_NOT_USE | NO_FLAT_FIELD


def _meta(xstart=1, ystart=1, shape=(2, 3)) -> Meta:
    return Meta(instrument=Instrument(name="NIRCAM"), subarray=Subarray("SUB", xstart, ystart, shape[1], shape[0]))


def _exposure(sci, vp=8.0, vr=4.0, **extra) -> Exposure:
    sci = np.asarray(sci, np.float32)
    shape = sci.shape
    arrays = {"err": np.full(shape, 99.0), "dq": np.zeros(shape, np.uint32),
              "var_poisson": np.full(shape, vp), "var_rnoise": np.full(shape, vr)}
    arrays.update(extra)
    return Exposure(sci=sci, meta=_meta(shape=shape[-2:]), **arrays)


def _flat(values, err=0.5, dq=0, placement=None) -> FlatReference:
    values = np.asarray(values, np.float32)
    shape = values.shape
    subarray = placement or Subarray("SUB", 1, 1, shape[1], shape[0])
    return FlatReference("/refs/flat.fits", values, np.broadcast_to(np.float32(err), shape).copy()
                         if np.isscalar(err) else np.asarray(err, np.float32),
                         np.broadcast_to(np.uint32(dq), shape).copy() if np.isscalar(dq) else np.asarray(dq, np.uint32),
                         subarray)


# One pixel per rule: good, NaN flat, zero flat, NO_FLAT_FIELD, DO_NOT_USE, UNRELIABLE_FLAT|HOT.
SCI = [[8, 8, 8], [8, 6, 8]]
FLAT = [[2, NAN, 0], [2, 4, 2]]
FLAT_DQ = [[0, 0, 0], [NO_FLAT_FIELD, DO_NOT_USE, UNRELIABLE_FLAT | HOT]]


def test_flat_preparation_rules():
    values, flags = usable_flat(_flat(FLAT, dq=FLAT_DQ))
    assert values.tolist() == [[2, 1, 1], [1, 1, 2]]
    assert flags.tolist() == [[0, BAD, BAD], [BAD, DO_NOT_USE, UNRELIABLE_FLAT | HOT]]


def test_divide_with_hand_computed_variances_and_error():
    out = flat_field(_exposure(SCI), _flat(FLAT, dq=FLAT_DQ))
    # good pixels: SCI 8/2 = 4; VAR_FLAT = 4²/2²·0.5² = 1; VP 8/4 = 2; VR 4/4 = 1; ERR = √(2+1+1) = 2
    for array, value in ((out.sci, 4.0), (out.var_flat, 1.0), (out.var_poisson, 2.0), (out.var_rnoise, 1.0),
                         (out.err, 2.0)):
        assert array[0, 0] == value and array[1, 2] == value
        assert np.isnan(array[[0, 0, 1, 1], [1, 2, 0, 1]]).all()  # unusable flat pixels are NaN-synced
    assert out.dq.tolist() == [[0, BAD, BAD], [BAD, DO_NOT_USE, UNRELIABLE_FLAT | HOT]]
    assert out.meta.status == {"S_FLAT": "COMPLETE"} and out.meta.refs == {"R_FLAT": "/refs/flat.fits"}


def test_inverse_multiplies_and_zeroes_var_flat():
    out = flat_field(_exposure(SCI), _flat(FLAT, dq=FLAT_DQ), inverse=True)
    assert out.sci[0, 0] == 16.0 and out.var_poisson[0, 0] == 32.0 and out.var_rnoise[0, 0] == 16.0
    assert out.var_flat[0, 0] == 0.0 and out.err[0, 0] == np.sqrt(np.float32(48.0))
    assert np.isnan(out.var_flat[0, 1]) and out.dq[0, 1] == BAD
    assert out.meta.provenance[-1].parameters == {"inverse": True}


def test_float32_order_of_operations():
    rng = np.random.default_rng(3)
    sci = rng.uniform(-5, 50, (6, 7)).astype(np.float32)
    vp, vr = (rng.uniform(0, 1, (6, 7)).astype(np.float32) for _ in range(2))
    f = rng.uniform(0.6, 1.4, (6, 7)).astype(np.float32)
    fe = rng.uniform(0.0, 0.05, (6, 7)).astype(np.float32)
    out = flat_field(_exposure(sci, var_poisson=vp, var_rnoise=vr), _flat(f, err=fe))
    f2 = f * f
    sci_out = sci / f
    var_flat = ((sci_out * sci_out) / f2) * (fe * fe)
    np.testing.assert_array_equal(out.sci, sci_out)
    np.testing.assert_array_equal(out.var_flat, var_flat)
    np.testing.assert_array_equal(out.err, np.sqrt((vp / f2 + vr / f2) + var_flat))
    assert (out.var_flat != sci_out * sci_out * ((fe / f) * (fe / f))).any()  # the order matters


def test_existing_var_flat_and_err_are_replaced():
    out = flat_field(_exposure([[8.0]], var_flat=np.full((1, 1), 100.0)), _flat([[2.0]], err=0.0))
    assert out.var_flat[0, 0] == 0.0 and out.err[0, 0] == np.sqrt(np.float32(3.0))


def test_nan_science_and_flagged_science_are_synced():
    sci = [[NAN, 8.0, 8.0]]
    dq = np.array([[0, DO_NOT_USE, 4]], np.uint32)
    out = flat_field(_exposure(sci, dq=dq), _flat([[2.0, 2.0, 2.0]]))
    assert np.isnan(out.err[0, :2]).all() and np.isnan(out.var_poisson[0, :2]).all()
    assert out.dq.tolist() == [[DO_NOT_USE, DO_NOT_USE, 4]] and out.sci[0, 2] == 4.0


def test_cube_broadcasts_the_flat_over_integrations():
    cube = np.stack([np.asarray(SCI, np.float32), 2 * np.asarray(SCI, np.float32)])
    out = flat_field(_exposure(cube), _flat(FLAT, dq=FLAT_DQ))
    assert out.sci[:, 0, 0].tolist() == [4.0, 8.0] and out.var_flat[:, 1, 2].tolist() == [1.0, 4.0]
    assert out.dq.shape == (2, 2, 3) and (out.dq[0] == out.dq[1]).all()


def test_subarray_exposure_uses_its_window_of_a_full_flat():
    flat = np.ones((10, 12), np.float32)
    flat[4, 7] = 4.0  # science pixel (1, 2) for SUBSTRT1=6, SUBSTRT2=4
    exposure = _exposure(np.full((3, 4), 8.0)).evolve(meta=_meta(xstart=6, ystart=4, shape=(3, 4)))
    out = flat_field(exposure, _flat(flat, placement=Subarray("FULL", 1, 1, 12, 10)))
    assert out.sci[1, 2] == 2.0 and (np.delete(out.sci.ravel(), 6) == 8.0).all()


def test_skips():
    exposure = _exposure(SCI, var_rnoise=None)
    out = flat_field(exposure, None)
    assert out.meta.status == {"S_FLAT": "SKIPPED"} and out.meta.refs == {"R_FLAT": "N/A"}
    assert out.meta.provenance[-1].notes == ("no FLAT reference",)
    exposure = _exposure(SCI)
    small = flat_field(exposure, _flat([[1.0, 1.0]]))
    assert small.meta.status == {"S_FLAT": "SKIPPED"}
    assert small.meta.provenance[-1].notes == ("FLAT reference (1×2) is smaller than the science array (2×3)",)
    assert np.shares_memory(small.sci, exposure.sci) and small.var_flat is None


def test_missing_variance_arrays_are_a_clear_error():
    with pytest.raises(StepError, match="flat_field: the exposure has no VAR_RNOISE array"):
        flat_field(_exposure(SCI, var_rnoise=None), _flat(FLAT))
    with pytest.raises(StepError, match="no VAR_POISSON or VAR_RNOISE"):
        flat_field(_exposure(SCI, var_poisson=None, var_rnoise=None), _flat(FLAT))
