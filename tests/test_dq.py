"""DQ flags and good-bits expressions."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core import dq


def test_flag_table_matches_the_jwst_bits():
    assert dq.FLAGS["DO_NOT_USE"] == 1
    assert dq.FLAGS["OUTLIER"] == 16
    assert dq.FLAGS["NON_SCIENCE"] == 512
    assert dq.FLAGS["NO_FLAT_FIELD"] == 262144
    assert dq.FLAGS["UNRELIABLE_FLAT"] == 33554432
    assert dq.FLAGS["REFERENCE_PIXEL"] == 2147483648
    assert len(dq.FLAGS) == 33  # GOOD plus 32 bits
    assert dq.flag_value("unreliable_error") == 256


def test_bad_bits_of_expressions():
    assert dq.bad_bits("~DO_NOT_USE+NON_SCIENCE") == 513
    assert dq.bad_bits("~DO_NOT_USE,NON_SCIENCE") == 513
    assert dq.bad_bits("DO_NOT_USE+NON_SCIENCE") == 0xFFFFFFFF & ~513
    assert dq.bad_bits(0) == 0xFFFFFFFF
    assert dq.bad_bits(4) == 0xFFFFFFFF & ~4
    assert dq.bad_bits("4+8") == 0xFFFFFFFF & ~12
    assert dq.bad_bits(None) == 0
    with pytest.raises(KeyError):
        dq.bad_bits("~NOT_A_FLAG")


def test_good_pixels_mask_matches_resample_rule():
    flags = np.array([0, 1, 4, 512, 516, 2**31], dtype=np.uint32)
    good = dq.good_pixels(flags, dq.RESAMPLE_GOOD_BITS)
    np.testing.assert_array_equal(good, [True, False, True, False, False, True])
    np.testing.assert_array_equal(good, (flags & (1 | 512)) == 0)


def test_dq_def_translation_maps_raw_bits_to_standard_flags():
    raw = np.array([0, 1, 2, 3, 8], dtype=np.uint32)
    out, unknown = dq.translate(raw, [(1, "DO_NOT_USE"), (2, "NO_FLAT_FIELD"), (8, "MY_OWN_FLAG")])
    np.testing.assert_array_equal(out, [0, 1, 262144, 262145, 0])
    assert unknown == ["MY_OWN_FLAG"]
    same, _ = dq.translate(raw, [])
    np.testing.assert_array_equal(same, raw)
