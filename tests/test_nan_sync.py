"""NaN / DO_NOT_USE synchronisation (formats.md §5), pure and in-place forms."""

from __future__ import annotations

import numpy as np

from image2.core.exposure import Exposure
from image2.core.nan_sync import invalid_pixels, nan_synced, pixels_with, synced_in_place

NAN = np.nan


def _exposure(shape=(2, 3), **arrays) -> Exposure:
    base = {"sci": np.ones(shape), "err": np.ones(shape), "dq": np.zeros(shape, np.uint32),
            "var_poisson": np.ones(shape), "var_rnoise": np.ones(shape)}
    base.update(arrays)
    return Exposure(**base)


def test_nan_in_a_variance_only_spreads_to_every_array_and_flags_the_pixel():
    var_rnoise = np.ones((2, 3))
    var_rnoise[1, 2] = NAN
    out = nan_synced(_exposure(var_rnoise=var_rnoise, var_flat=np.zeros((2, 3))))
    for array in (out.sci, out.err, out.var_poisson, out.var_rnoise, out.var_flat):
        assert np.isnan(array[1, 2]) and np.isfinite(np.delete(array.ravel(), 5)).all()
    assert out.dq.tolist() == [[0, 0, 0], [0, 0, 1]]


def test_do_not_use_makes_the_pixel_nan_and_other_flags_do_not():
    dq = np.array([[1, 4, 512], [1 | 2048, 0, 0]], np.uint32)
    exposure = _exposure(dq=dq)
    out = nan_synced(exposure)
    assert np.isnan(out.sci).tolist() == [[True, False, False], [True, False, False]]
    assert np.isnan(out.var_rnoise).tolist() == [[True, False, False], [True, False, False]]
    assert np.shares_memory(out.dq, exposure.dq)  # DO_NOT_USE already there: DQ not copied


def test_absent_arrays_stay_absent_and_consistent_input_comes_back_as_is():
    exposure = _exposure(var_poisson=None)
    assert nan_synced(exposure) is exposure
    sci = np.ones((2, 3))
    sci[0, 0] = NAN
    out = nan_synced(_exposure(sci=sci, var_poisson=None))
    assert out.var_poisson is None and out.var_flat is None
    assert np.isnan(out.err[0, 0]) and out.dq[0, 0] == 1


def test_arrays_that_already_agree_are_shared_not_copied():
    sci = np.ones((2, 3))
    sci[0, 1] = NAN
    err = sci.copy()
    exposure = _exposure(sci=sci, err=err)
    out = nan_synced(exposure)
    assert np.shares_memory(out.sci, exposure.sci) and np.shares_memory(out.err, exposure.err)
    assert not np.shares_memory(out.var_poisson, exposure.var_poisson)
    assert np.isnan(out.var_poisson[0, 1])


def test_input_is_not_modified_and_cubes_work_per_pixel():
    sci = np.ones((2, 2, 3))
    sci[1, 0, 2] = NAN
    exposure = _exposure(shape=(2, 2, 3), sci=sci)
    out = nan_synced(exposure)
    assert np.isnan(out.err[1, 0, 2]) and not np.isnan(out.err[0, 0, 2])
    assert out.dq[1, 0, 2] == 1 and out.dq.sum() == 1
    assert np.isfinite(exposure.err).all() and exposure.dq.sum() == 0


def test_in_place_form_writes_nan_and_returns_the_same_dq_when_nothing_is_flagged():
    a = np.array([[1.0, NAN]], np.float32)
    b = np.array([[2.0, 3.0]], np.float32)
    dq = np.array([[0, 0]], np.uint32)
    new_dq = synced_in_place([a, b, None], dq)
    assert np.isnan(b[0, 1]) and b[0, 0] == 2.0
    assert new_dq.tolist() == [[0, 1]] and dq.tolist() == [[0, 0]]
    clean = np.ones((1, 2), np.float32)
    assert synced_in_place([clean], dq) is dq


def test_masks():
    dq = np.array([0, 1, 262144, 262145, 2**31], np.uint32)
    assert pixels_with(dq, 262144).tolist() == [False, False, True, True, False]
    assert pixels_with(dq, 2**31 | 1).tolist() == [False, True, False, True, True]
    sci = np.array([0.0, 0.0, 0.0, NAN, 0.0], np.float32)
    assert invalid_pixels([sci, None], dq).tolist() == [False, True, False, True, False]


def test_few_and_many_invalid_pixels_give_the_same_result():
    rng = np.random.default_rng(4)
    for fraction in (0.01, 0.5):  # index path and mask path
        sci = rng.normal(size=(3, 16, 16)).astype(np.float32)
        sci[rng.random(sci.shape) < fraction] = NAN
        dq = np.where(rng.random(sci.shape) < fraction, 1 | 4, 2).astype(np.uint32)
        exposure = _exposure(shape=sci.shape, sci=sci, dq=dq)
        out = nan_synced(exposure)
        expected = np.isnan(sci) | ((dq & 1) != 0)
        for array in (out.sci, out.err, out.var_poisson, out.var_rnoise):
            np.testing.assert_array_equal(np.isnan(array), expected)
        np.testing.assert_array_equal(out.dq, np.where(expected, dq | 1, dq))
        owned = [exposure.err.copy(), sci.copy()]
        np.testing.assert_array_equal(synced_in_place(owned, dq.copy(), dq_owned=True), out.dq)
        np.testing.assert_array_equal(np.isnan(owned[0]), expected)
