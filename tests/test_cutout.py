"""Reference preparation for an exposure's subarray: flat (jwst rules), dark (Liger rule), area."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core.cutout import area_for, dark_for, flat_for
from image2.core.meta import Instrument, Meta, Subarray
from image2.core.references import AreaReference, DarkReference, FlatReference
from image2.errors import ReferenceFileError, StepError


def _meta(name="SUB", xstart=3, ystart=2, xsize=4, ysize=3, instrument="NIRCAM") -> Meta:
    return Meta(instrument=Instrument(name=instrument), subarray=Subarray(name, xstart, ystart, xsize, ysize))


def _grid(shape=(10, 12)) -> np.ndarray:
    """Values 100*row + column, so a cut's origin can be read off its first value."""
    return (100 * np.arange(shape[0])[:, None] + np.arange(shape[1])).astype(np.float32)


def _flat(shape=(10, 12), subarray=Subarray("FULL", 1, 1, 12, 10), instrument="NIRCAM") -> FlatReference:
    return FlatReference("/refs/flat.fits", _grid(shape), _grid(shape) / 1000, np.arange(np.prod(shape),
                         dtype=np.uint32).reshape(shape), subarray, instrument)


def test_flat_is_cut_to_the_science_window_and_records_the_placement():
    flat = _flat()
    out = flat_for(flat, _meta(), (3, 4))
    assert out.sci.tolist() == [[102, 103, 104, 105], [202, 203, 204, 205], [302, 303, 304, 305]]
    assert out.err[0, 0] == np.float32(102) / 1000 and out.dq[0, 0] == 14
    assert out.source == flat.source and type(out) is FlatReference
    assert out.subarray == Subarray("SUB", 3, 2, 4, 3)
    assert np.shares_memory(out.sci, flat.sci)  # a view, not a copy


def test_preparing_twice_is_a_no_op():
    prepared = flat_for(_flat(), _meta(), (3, 4))
    assert flat_for(prepared, _meta(), (3, 4)) is prepared
    full = _flat()
    assert flat_for(full, _meta("FULL", 1, 1, 12, 10), (10, 12)) is full


def test_absent_and_too_small_references_come_back_as_they_are():
    flat = _flat()
    assert flat_for(flat, _meta(xstart=1, ystart=1, xsize=13, ysize=10), (10, 13)) is flat
    assert flat_for(None, _meta(), (3, 4)) is None
    assert dark_for(None, _meta(), (3, 4)) is None and area_for(None, _meta(), (3, 4)) is None


def test_science_outside_the_flat_names_both_geometries():
    with pytest.raises(ReferenceFileError) as caught:
        flat_for(_flat(), _meta(xstart=10, ystart=2), (3, 4))
    message = str(caught.value)
    assert message.startswith("/refs/flat.fits: bad reference slice")
    assert "science SUBSTRT1=10 SUBSIZE1=4 SUBSTRT2=2 SUBSIZE2=3" in message
    assert "reference SUBSTRT1=1 SUBSIZE1=12 SUBSTRT2=1 SUBSIZE2=10" in message


def test_flat_header_size_smaller_than_its_array_bounds_the_slice_like_jwst():
    flat = _flat(subarray=Subarray("FULL", 1, 1, 8, 10))  # SUBSIZE1 says 8, array has 12 columns
    with pytest.raises(ReferenceFileError, match="bad reference slice"):
        flat_for(flat, _meta(xstart=6), (3, 4))  # columns 5..8 fit the array but not SUBSIZE1
    assert flat_for(flat, _meta(xstart=5), (3, 4)).sci[0, 0] == 104


def test_flat_placed_by_its_own_substrt():
    flat = _flat(subarray=Subarray("SUBX", 2, 2, 12, 10))
    assert flat_for(flat, _meta(xstart=3, ystart=2), (3, 4)).sci[0, 0] == 1
    with pytest.raises(ReferenceFileError, match="bad reference slice"):
        flat_for(flat, _meta(xstart=1, ystart=2), (3, 4))


def test_flat_without_placement_keywords_is_full_frame_only_when_full_frame_shaped():
    full = np.broadcast_to(np.float32(2.0), (1024, 1032))  # MIRI full frame, no memory
    miri = FlatReference("miri_flat", full, full, np.broadcast_to(np.uint32(0), (1024, 1032)),
                         Subarray(), "MIRI")
    out = flat_for(miri, _meta("BRIGHTSKY", 457, 51, 512, 512, instrument="MIRI"), (512, 512))
    assert out.sci.shape == (512, 512) and out.subarray.xstart == 457
    with pytest.raises(ReferenceFileError, match="can't determine the reference subarray"):
        flat_for(_flat(subarray=Subarray()), _meta(), (3, 4))


def test_bad_corners_and_missing_science_keywords():
    with pytest.raises(ReferenceFileError, match="SUBSTRT1=0"):
        flat_for(_flat(subarray=Subarray("X", 0, 1, 12, 10)), _meta(), (3, 4))
    with pytest.raises(StepError, match="SUBSTRT2 missing"):
        flat_for(_flat(), _meta(ystart=None), (3, 4))
    with pytest.raises(StepError, match="SUBSTRT1=0"):
        flat_for(_flat(), _meta(xstart=0), (3, 4))


def test_science_subsize_disagreeing_with_the_array_uses_the_array():
    assert flat_for(_flat(), _meta(xsize=99, ysize=99), (3, 4)).sci.shape == (3, 4)


def _dark(shape=(10, 12), subarray=Subarray()) -> DarkReference:
    sci = _grid(shape)
    sci[2, 3] = np.nan
    return DarkReference("/refs/dark.fits", sci, _grid(shape) / 10, np.ones(shape, np.uint32), subarray)


def test_dark_liger_cut_defaults_to_start_1_and_cleans_nan():
    out = dark_for(_dark(), _meta(), (3, 4))
    assert out.sci.tolist() == [[102, 103, 104, 105], [202, 0.0, 204, 205], [302, 303, 304, 305]]
    assert out.err[1, 1] == np.float32(203) / 10 and out.subarray == Subarray("SUB", 3, 2, 4, 3)
    assert dark_for(out, _meta(), (3, 4)) is out


def test_dark_for_full_science_uses_the_dark_as_is_and_checks_the_shape():
    dark = _dark((3, 4))
    out = dark_for(dark, _meta("FULL", 1, 1, 4, 3), (3, 4))
    assert out.sci[2, 3] == 0.0 and np.isnan(dark.sci[2, 3]) and np.shares_memory(out.err, dark.err)
    with pytest.raises(ReferenceFileError, match=r"differs from the full-frame science array \(3×5\)"):
        dark_for(dark, _meta("FULL", 1, 1, 5, 3), (3, 5))


def test_dark_without_subarray_name():
    dark = _dark((3, 4), Subarray(None, 5, 5, 4, 3))
    assert dark_for(dark, _meta(None, None, None, None, None), (3, 4)).sci.shape == (3, 4)
    with pytest.raises(StepError, match="SUBSTRT1, SUBSTRT2 missing"):
        dark_for(_dark(), _meta(None, None, None, None, None), (3, 4))


def test_dark_placed_by_its_own_substrt_and_rejected_outside():
    dark = _dark(subarray=Subarray("SUBD", 3, 2, None, None))
    assert dark_for(dark, _meta(xstart=4, ystart=3), (3, 4)).sci[0, 0] == 101
    with pytest.raises(ReferenceFileError, match="bad reference slice for dark_current"):
        dark_for(dark, _meta(xstart=2, ystart=3), (3, 4))


def _area(shape=(10, 12), subarray=Subarray()) -> AreaReference:
    return AreaReference("/refs/area.fits", _grid(shape), 2.3e-13, 0.0098, subarray)


def test_area_cut_from_substrt_and_full_frame_default():
    out = area_for(_area(), _meta(), (3, 4))
    assert out.sci[0].tolist() == [102, 103, 104, 105] and out.pixar_sr == 2.3e-13
    assert area_for(out, _meta(), (3, 4)) is out
    area = _area((2048, 2048))
    assert area_for(area, _meta("FULL", None, None, None, None), (2048, 2048)) is area
    with pytest.raises(StepError, match="SUBSTRT1, SUBSTRT2 missing"):
        area_for(_area(), _meta("SUB", None, None, 4, 3), (3, 4))


def test_area_outside_the_map_is_an_error():
    with pytest.raises(ReferenceFileError, match=r"/refs/area.fits: bad reference slice for photom"):
        area_for(_area(), _meta(xstart=10), (3, 4))


def test_malformed_flat_is_a_reference_error():
    flat = FlatReference("/refs/flat.fits", np.ones(12), np.ones(12), np.zeros(12), Subarray())
    with pytest.raises(ReferenceFileError, match="must be 2-D arrays of one shape"):
        flat_for(flat, _meta(), (3, 4))
