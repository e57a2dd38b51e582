"""Background step (steps.md §1): clipping, placement, 3-D members, DQ, skips and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from image2.core.background import Footprint, bkg_subtract, combine_backgrounds, footprint
from image2.core.cards import Cards
from image2.core.exposure import Exposure, stack_integrations
from image2.core.meta import Instrument, Meta, Subarray
from image2.errors import StepError

NAN = np.float32(np.nan)


def exposure(sci, *, at=(1, 1), err=None, dq=None, name=None, instrument="NIRCAM", placed=True) -> Exposure:
    """An exposure whose SCI is ``sci``, placed with 1-based SUBSTRT ``at`` (x, y)."""
    sci = np.asarray(sci, np.float32)
    ny, nx = sci.shape[-2:]
    subarray = Subarray("SUBCUSTOM", at[0], at[1], nx, ny) if placed else Subarray()
    cards = {"PRIMARY": Cards([("FILENAME", name)])} if name else {}
    return Exposure(
        sci=sci,
        err=np.ones_like(sci) if err is None else err,
        dq=np.zeros(sci.shape, np.uint32) if dq is None else dq,
        var_poisson=np.full(sci.shape, 0.25, np.float32),
        var_rnoise=np.full(sci.shape, 0.5, np.float32),
        meta=Meta(instrument=Instrument(name=instrument), subarray=subarray, cards=cards),
    )


def planes(values, shape=(2, 3)):
    """One constant plane per value, as the SCI of a background member each."""
    return [exposure(np.full(shape, v)) for v in values]


# ---- clipping -------------------------------------------------------------------------------

def test_outlier_member_is_clipped():
    # nine 2s and one 12: median 2, std 3, bound 2 + 9 = 11 < 12, so 12 is dropped.
    combined = combine_backgrounds(exposure(np.zeros((2, 3))), planes([2] * 9 + [12]))
    assert combined.data.dtype == np.float32
    np.testing.assert_array_equal(combined.data, np.full((2, 3), 2.0, np.float32))
    # err = sqrt(sum of the 9 kept ERR² = 1) / 9 = 1/3
    np.testing.assert_array_equal(combined.err, np.full((2, 3), np.float32(1 / 3)))


def test_few_members_are_never_clipped():
    combined = combine_backgrounds(exposure(np.zeros((1, 1))), planes([1, 2, 3, 100], (1, 1)))
    assert combined.data[0, 0] == np.float32(26.5)


def test_clipping_iterates_until_nothing_changes_unless_maxiters():
    # 20 zeros, a 5 and a 100. Pass 1 drops 100 (bound ~63); pass 2 (mean 5/21, std 1.065,
    # bound 3.2) drops 5; pass 3 changes nothing.
    values = [0] * 20 + [5, 100]
    science = exposure(np.zeros((1, 1)))
    assert combine_backgrounds(science, planes(values, (1, 1))).data[0, 0] == 0.0
    once = combine_backgrounds(science, planes(values, (1, 1)), maxiters=1)
    assert once.data[0, 0] == np.float32(5 / 21)
    assert (once.sigma, once.maxiters) == (3.0, 1)


def test_sigma_parameter_widens_the_bounds():
    science = exposure(np.zeros((1, 1)))
    # with sigma 4 the bound is 2 + 12 = 14, so 12 stays: mean (18 + 12) / 10 = 3
    assert combine_backgrounds(science, planes([2] * 9 + [12], (1, 1)), sigma=4.0).data[0, 0] == 3.0


def test_nan_values_are_excluded_and_an_all_nan_pixel_gives_zero():
    a = exposure([[1.0, NAN, NAN]])
    b = exposure([[3.0, 7.0, NAN]])
    combined = combine_backgrounds(exposure(np.full((1, 3), 10.0)), [a, b])
    np.testing.assert_array_equal(combined.data, np.array([[2.0, 7.0, 0.0]], np.float32))
    # err: sqrt(1 + 1) / 2, sqrt(1) / 1, and 0 where nothing survives (numpy masked data)
    np.testing.assert_array_equal(combined.err, np.array([[np.sqrt(2) / 2, 1.0, 0.0]], np.float32))
    out = bkg_subtract(exposure(np.full((1, 3), 10.0)), combined)
    np.testing.assert_array_equal(out.sci, np.array([[8.0, 3.0, 10.0]], np.float32))


def test_background_dq_never_excludes_a_value():
    flagged = exposure([[4.0]], dq=np.array([[1]], np.uint32))
    combined = combine_backgrounds(exposure([[0.0]]), [flagged, exposure([[2.0]])])
    assert combined.data[0, 0] == 3.0 and combined.dq[0, 0] == 1


# ---- placement ------------------------------------------------------------------------------

def test_footprint_from_keywords_and_full_frame_default():
    assert footprint(exposure(np.zeros((3, 4)), at=(101, 201)), "x") == Footprint(100, 200, 4, 3)
    full = exposure(np.zeros((1024, 1032)), instrument="MIRI", placed=False)
    assert footprint(full, "x") == Footprint(0, 0, 1032, 1024)
    with pytest.raises(StepError, match="cannot be placed"):
        footprint(exposure(np.zeros((3, 4)), placed=False), "x")


def test_subsize_disagreeing_with_the_array_is_an_error():
    bad = exposure(np.zeros((3, 4))).evolve(meta=Meta(subarray=Subarray("S", 1, 1, 5, 3)))
    with pytest.raises(StepError, match="disagree"):
        combine_backgrounds(bad, planes([1], (3, 4)))


def test_non_overlapping_member_contributes_nothing():
    science = exposure(np.full((2, 2), 5.0), at=(11, 21))
    touching = exposure(np.full((2, 2), 100.0), at=(13, 21), dq=np.full((2, 2), 4, np.uint32))
    inside = exposure(np.full((2, 2), 1.0), at=(11, 21))
    combined = combine_backgrounds(science, [touching, inside])
    np.testing.assert_array_equal(combined.data, np.ones((2, 2), np.float32))
    assert not combined.dq.any()
    # only non-overlapping members: all NaN → background 0, science unchanged
    alone = combine_backgrounds(science, [touching])
    np.testing.assert_array_equal(alone.data, np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(bkg_subtract(science, alone).sci, science.sci)


def test_partial_overlap_is_pasted_at_its_true_position():
    # science: x 10..13, y 20..23 (0-based); member: x 12..15, y 21..24 → overlap x 12..13,
    # y 21..23, i.e. science columns 2..3 and rows 1..3 (jwst would paste it at [0:3, 0:2]).
    science = exposure(np.zeros((4, 4)), at=(11, 21))
    member = np.arange(16, dtype=np.float32).reshape(4, 4) + 100
    dq = np.zeros((4, 4), np.uint32)
    dq[0, 0] = 2  # member pixel (x 12, y 21) → science [1, 2]
    partial = exposure(member, at=(13, 22), dq=dq)
    covering = exposure(np.full((4, 4), 10.0), at=(11, 21))
    combined = combine_backgrounds(science, [partial, covering])
    expected = np.full((4, 4), 10.0, np.float32)
    expected[1:4, 2:4] = (member[0:3, 0:2] + 10.0) / 2
    np.testing.assert_array_equal(combined.data, expected)
    expected_dq = np.zeros((4, 4), np.uint32)
    expected_dq[1, 2] = 2
    np.testing.assert_array_equal(combined.dq, expected_dq)


def test_member_larger_than_the_science_is_cut():
    full = exposure(np.arange(48, dtype=np.float32).reshape(6, 8), at=(1, 1))
    science = exposure(np.zeros((2, 3)), at=(3, 2))  # x 2..4, y 1..2
    combined = combine_backgrounds(science, [full])
    np.testing.assert_array_equal(combined.data, full.sci[1:3, 2:5])


# ---- 3-D members ----------------------------------------------------------------------------

def test_cube_members_with_different_nints_are_averaged_per_integration_first():
    science = exposure(np.stack([np.full((2, 3), 10.0), np.full((2, 3), 20.0)]))
    a = exposure(np.stack([np.full((2, 3), v) for v in (1.0, 2.0, 6.0)]))  # 3 ints, mean 3
    b_values = [2.0] * 9 + [12.0]  # 10 ints, 12 clipped, mean 2
    b_dq = np.zeros((10, 2, 3), np.uint32)
    b_dq[4, 0, 0] = 4
    b_dq[7, 0, 0] = 1024
    b = exposure(np.stack([np.full((2, 3), v) for v in b_values]), dq=b_dq)
    combined = combine_backgrounds(science, [a, b])
    np.testing.assert_array_equal(combined.data, np.full((2, 3), 2.5, np.float32))
    assert combined.dq[0, 0] == 4 | 1024 and combined.dq.sum() == 4 | 1024
    out = bkg_subtract(science, combined)
    np.testing.assert_array_equal(out.sci[0], np.full((2, 3), 7.5, np.float32))
    np.testing.assert_array_equal(out.sci[1], np.full((2, 3), 17.5, np.float32))
    assert out.dq[0, 0, 0] == out.dq[1, 0, 0] == 4 | 1024


def test_cube_member_counts_as_zero_outside_its_partial_overlap():
    # jwst (steps.md §1.4): a cube member's per-pixel mean over no finite value is 0.0, and that
    # 0.0 takes part in the combination; a 2-D member's NaN there is excluded instead.
    science = exposure(np.zeros((2, 2, 2)))
    covering = exposure(np.full((3, 2, 2), 4.0))
    partial = exposure(np.full((2, 2, 1), 2.0))  # column 0 only
    combined = combine_backgrounds(science, [covering, partial])
    np.testing.assert_array_equal(combined.data, np.array([[3.0, 2.0], [3.0, 2.0]], np.float32))
    flat = combine_backgrounds(exposure(np.zeros((2, 2))), [exposure(np.full((2, 2), 4.0)),
                                                            exposure(np.full((2, 1), 2.0))])
    np.testing.assert_array_equal(flat.data, np.array([[3.0, 4.0], [3.0, 4.0]], np.float32))


def test_cube_member_err_is_clipped_independently():
    # ERR² per integration: nine 1s and one 16 (ERR 4): median 1, std 4.5, bound 14.5 → 16 dropped
    err = np.ones((10, 1, 1), np.float32)
    err[3] = 4.0
    member = exposure(np.ones((10, 1, 1)), err=err)
    combined = combine_backgrounds(exposure(np.zeros((2, 1, 1))), [member])
    assert combined.err[0, 0] == 1.0  # sqrt(mean of kept ERR² = 1) / 1


def test_mixed_dimensionality_is_refused():
    with pytest.raises(StepError, match="dimensionality"):
        combine_backgrounds(exposure(np.zeros((2, 2, 2))), planes([1.0], (2, 2)))
    with pytest.raises(StepError, match="bg_rate.fits is 3-D"):
        combine_backgrounds(exposure(np.zeros((2, 2))), [exposure(np.zeros((3, 2, 2)), name="bg_rate.fits")])


# ---- subtraction ----------------------------------------------------------------------------

def test_subtraction_ors_dq_leaves_err_and_variances_and_records_provenance():
    dq = np.array([[0, 2], [0, 0]], np.uint32)
    science = exposure(np.full((2, 2), 5.0), dq=dq, name="sci_rate.fits")
    bg_dq = np.array([[4, 0], [0, 0]], np.uint32)
    combined = combine_backgrounds(science, [exposure(np.full((2, 2), 1.5), dq=bg_dq, name="bg1_rate.fits")])
    out = bkg_subtract(science, combined)
    np.testing.assert_array_equal(out.sci, np.full((2, 2), 3.5, np.float32))
    np.testing.assert_array_equal(out.dq, np.array([[4, 2], [0, 0]], np.uint32))
    for name in ("err", "var_poisson", "var_rnoise"):  # the very same arrays, not copies
        assert np.shares_memory(getattr(out, name), getattr(science, name))
    assert out.var_flat is None
    assert out.meta.status == {"S_BKDSUB": "COMPLETE"}
    assert "bg1_rate.fits" in out.meta.provenance[-1].notes[0]
    np.testing.assert_array_equal(science.sci, np.full((2, 2), 5.0))  # input untouched
    assert science.meta.status == {}


def test_no_backgrounds_skips():
    science = exposure(np.ones((2, 2)))
    assert combine_backgrounds(science, []) is None
    out = bkg_subtract(science, None)
    assert out.meta.status == {"S_BKDSUB": "SKIPPED"} and np.shares_memory(out.sci, science.sci)


def test_background_of_another_shape_is_refused():
    combined = combine_backgrounds(exposure(np.ones((2, 2))), planes([1.0], (2, 2)))
    with pytest.raises(StepError, match="differs"):
        bkg_subtract(exposure(np.ones((3, 2))), combined)


finite = st.floats(-1e3, 1e3, width=32)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, (3, 2, 3), elements=finite), arrays(np.float32, (2, 3), elements=finite))
def test_cube_subtraction_equals_per_integration_subtraction(cube, plane):
    science = exposure(cube)
    combined = combine_backgrounds(exposure(cube[0]), [exposure(plane)])
    np.testing.assert_array_equal(combined.data, plane)  # one member: nothing to clip
    whole = bkg_subtract(science, combined)
    parts = stack_integrations([bkg_subtract(science.integrations(i, i + 1), combined) for i in range(3)])
    np.testing.assert_array_equal(whole.sci, parts.sci)
    np.testing.assert_array_equal(whole.sci, cube - plane)


def test_row_blocks_give_the_same_result_as_one_block(monkeypatch):
    rng = np.random.default_rng(5)

    def noisy(shape, at):
        sci = rng.normal(1.0, 0.1, shape).astype(np.float32)
        sci[..., 1, 2] = np.nan
        sci[..., 3:5, 3] += 9.0  # clipped in the cube members
        dq = rng.integers(0, 3, shape).astype(np.uint32) << 10
        return exposure(sci, at=at, err=rng.uniform(0.1, 0.2, shape).astype(np.float32), dq=dq)

    for science, members in (
        (noisy((9, 7), (5, 5)), [noisy((9, 7), (5, 5)), noisy((6, 4), (7, 6)), noisy((20, 20), (1, 1)),
                                 *(noisy((9, 7), (5, 5)) for _ in range(9))]),
        (noisy((2, 9, 7), (5, 5)), [noisy((10, 9, 7), (5, 5)), noisy((4, 6, 4), (7, 6))]),
    ):
        whole = combine_backgrounds(science, members)
        monkeypatch.setattr("image2.core.background.BLOCK_VALUES", 1)  # one row per block
        blocks = combine_backgrounds(science, members)
        monkeypatch.undo()
        for name in ("data", "err", "dq"):
            np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name))
        assert np.isfinite(whole.data).all() and whole.dq.any()
