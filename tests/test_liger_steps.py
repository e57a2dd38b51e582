"""Liger/IRIS-format steps (image2.core.liger): values computed here independently, statuses, errors."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core.exposure import Exposure, Extension
from image2.core.config import Config, build_config
from image2.core.liger.sky import sky_background
from image2.core.pipeline import calibrate
from image2.core.liger.cutout import cut_to_exposure
from image2.core.liger.dark import subtract_dark
from image2.core.liger.flat import apply_flat
from image2.core.liger.subarray_map import parse_subarrays, subarray_records
from image2.core.liger.wcs import assign_header_wcs
from image2.core.meta import Instrument, Meta, Subarray
from image2.core.references import DarkReference, FlatReference, References
from image2.errors import ReferenceFileError
from image2.synthetic.liger import Region, frame_keywords, subarray_map

SHAPE = (40, 50)


def _exposure(shape=SHAPE, subarray: Subarray | None = None, seed: int = 0, **extensions) -> Exposure:
    rng = np.random.default_rng(seed)
    keys = frame_keywords(shape=shape)
    meta = Meta(instrument=Instrument(name="Liger", detector="IMG", filter="J"),
                subarray=subarray or Subarray("FULL", 1, 1, shape[1], shape[0]), layout="liger")
    meta = meta.with_cards("PRIMARY", {k: v for k, v in keys.items() if k.startswith(("C", "RADESYS"))})
    return Exposure(sci=rng.normal(20, 2, shape), err=rng.uniform(0.5, 1.5, shape),
                    dq=np.zeros(shape, np.uint32), meta=meta,
                    extensions={name: Extension(data) for name, data in extensions.items()})


def _dark(shape=SHAPE, **placement) -> DarkReference:
    rng = np.random.default_rng(5)
    dq = np.zeros(shape, np.uint16)
    dq[2, 3] = 2048
    return DarkReference("dark.fits", sci=rng.normal(0.05, 0.01, shape).astype(np.float32),
                         err=np.full(shape, 0.01, np.float32), dq=dq, subarray=Subarray(**placement))


def _flat(shape=SHAPE, **placement) -> FlatReference:
    rng = np.random.default_rng(6)
    data = rng.normal(1.0, 0.05, shape).astype(np.float32)
    data[1, 1], data[1, 2] = np.nan, 0.0
    dq = np.zeros(shape, np.uint32)
    dq[4, 4] = 1 | (1 << 25)
    dq[6, 6] = 1 << 18  # NO_FLAT_FIELD: not applied
    return FlatReference("flat.fits", sci=data, err=np.full(shape, 0.01, np.float32), dq=dq,
                         subarray=Subarray(**placement))


# ---- parse_subarrays --------------------------------------------------------------------------

def test_subarray_records_stop_at_the_first_missing_id_and_use_liger_key_names():
    ids = subarray_map(SHAPE, [Region(3, 4, 5, 6), Region(20, 10, 8, 2)])
    ids[30, 30] = 4  # id 3 is absent, so 4 is not described
    records, irregular = subarray_records(ids)
    assert records == [
        {"id": 1, "xstart": 3, "ystart": 4, "xsize": 5, "ysize": 6, "detxsize": 50, "detysize": 40,
         "fastaxis": 0, "slowaxis": 1},
        {"id": 2, "xstart": 20, "ystart": 10, "xsize": 8, "ysize": 2, "detxsize": 50, "detysize": 40,
         "fastaxis": 0, "slowaxis": 1}]
    assert irregular == []


def test_parse_subarrays_flags_16_keeps_other_bits_and_sets_s_parssa():
    ids = subarray_map(SHAPE, [Region(3, 4, 5, 6)])
    exposure = _exposure(SUBARR_MAP=ids)
    dq = exposure.dq.copy()
    dq[5, 4] = 1
    result = parse_subarrays(exposure.evolve(dq=dq))
    assert ((result.dq & 16) != 0).tolist() == (ids != 0).tolist()
    assert result.dq[5, 4] == 17
    assert result.meta.status["S_PARSSA"] == "COMPLETE"
    assert len(result.meta.tree["subarray_map"]) == 1
    assert parse_subarrays(_exposure()).meta.status["S_PARSSA"] == "SKIPPED"


def test_a_subarray_that_is_not_a_rectangle_is_described_as_liger_does_with_a_note():
    ids = subarray_map(SHAPE, [Region(3, 4, 5, 6)])
    ids[3, 2] = 0  # a notch in the first row of id 1
    result = parse_subarrays(_exposure(SUBARR_MAP=ids))
    assert result.meta.tree["subarray_map"][0]["xstart"] == 3 + 1  # first hit in row-major order
    assert "not a filled rectangle" in result.meta.provenance[-1].notes[0]


# ---- cut-outs, dark, flat ---------------------------------------------------------------------

def test_subarray_references_are_cut_by_the_difference_of_the_starts():
    dark = _dark((100, 120), xstart=11, ystart=21)
    sub = Subarray("CUSTOM", 41, 31, 50, 40)
    cut = cut_to_exposure(dark, _exposure(subarray=sub).meta, SHAPE, "dark_current")
    assert (cut.sci == dark.sci[10:50, 30:80]).all() and (cut.dq == dark.dq[10:50, 30:80]).all()
    outside = Subarray("CUSTOM", 101, 31, 50, 40)
    with pytest.raises(ReferenceFileError, match="not inside"):
        cut_to_exposure(dark, _exposure(subarray=outside).meta, SHAPE, "dark_current")


def test_a_full_exposure_needs_a_reference_of_its_shape():
    with pytest.raises(ReferenceFileError, match="differs from the FULL science array"):
        cut_to_exposure(_dark((30, 50)), _exposure().meta, SHAPE, "dark_current")
    no_name = _exposure(subarray=Subarray())
    assert cut_to_exposure(_dark(), no_name.meta, SHAPE, "dark_current").sci.shape == SHAPE


def test_dark_subtracts_adds_its_error_in_quadrature_and_keeps_its_nan():
    exposure, dark = _exposure(), _dark()
    sci = dark.sci.copy()
    sci[0, 0] = np.nan
    dark = DarkReference(dark.source, sci=sci, err=dark.err, dq=dark.dq, subarray=dark.subarray)
    result = subtract_dark(exposure, dark)
    expected = exposure.sci.astype(np.float64) - sci
    assert np.allclose(result.sci, expected, rtol=1e-6, equal_nan=True) and np.isnan(result.sci[0, 0])
    assert np.allclose(result.err, np.hypot(exposure.err.astype(np.float64), dark.err), rtol=1e-6)
    assert result.dq[2, 3] == 2048
    assert result.meta.status["S_DARK"] == "COMPLETE" and result.meta.refs["R_DARK"] == "dark.fits"
    assert subtract_dark(exposure, None).meta.status["S_DARK"] == "SKIPPED"


def test_flat_uses_liger_s_error_formula_and_leaves_nan_and_zero_flat_pixels_uncorrected():
    exposure, flat = _exposure(), _flat()
    result = apply_flat(exposure, flat)
    data, err = exposure.sci.astype(np.float64), exposure.err.astype(np.float64)
    raw = flat.sci.astype(np.float64)
    good = np.isfinite(raw) & (raw != 0) & ((flat.dq & (1 << 18)) == 0)
    divisor = np.where(good, raw, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_err = np.sqrt(err**2 + (data * flat.err / raw) ** 2) / divisor
    assert np.allclose(result.sci, data / divisor, rtol=1e-6)
    assert np.allclose(result.err[good], expected_err[good], rtol=1e-6)
    for y, x in ((1, 1), (1, 2), (6, 6)):
        assert result.sci[y, x] == exposure.sci[y, x]
    assert not np.isfinite(result.err[1, 1]) and not np.isfinite(result.err[1, 2])
    assert result.dq[4, 4] == 1 | (1 << 25)  # bits Liger's uint16 DQ would lose are kept
    assert result.meta.status["S_FLAT"] == "COMPLETE"


# ---- assign_wcs ---------------------------------------------------------------------------------

def test_wcs_follows_the_fits_convention_crpix_is_one_based():
    exposure = _exposure()
    cards = exposure.meta.header("PRIMARY")
    result = assign_header_wcs(exposure)
    crpix1, crpix2 = cards.get("CRPIX1"), cards.get("CRPIX2")
    ra, dec = result.wcs(crpix1 - 1, crpix2 - 1)
    assert ra == pytest.approx(cards.get("CRVAL1"), abs=1e-12) and dec == pytest.approx(cards.get("CRVAL2"), abs=1e-12)
    assert result.meta.header("PRIMARY").get("S_REGION").startswith("POLYGON ICRS")
    assert result.meta.status["S_WCS"] == "COMPLETE"
    bare = exposure.evolve(meta=Meta(layout="liger"))
    assert assign_header_wcs(bare).meta.status["S_WCS"] == "SKIPPED"


# ---- the whole chain ------------------------------------------------------------------------------

def test_calibrate_runs_the_liger_format_steps_with_the_sky_after_dark_and_flat():
    pytest.importorskip("photutils")
    frames = [_exposure((120, 130), seed=s) for s in (1, 2)]
    refs = References(dark=_dark((120, 130)), flat=_flat((120, 130)))
    products = calibrate(frames[0], refs, Config(), frames)
    cal = products.cal
    assert [r.step for r in cal.meta.provenance] == [
        "parse_subarray_map", "assign_wcs", "dark_current", "flat_field", "sky_sub"]
    assert cal.meta.status["S_PARSSA"] == "SKIPPED" and cal.meta.status["S_SKYSUB"] == "COMPLETE"
    assert "S_BKDSUB" not in cal.meta.status
    assert products.background.source == "background" and len(products.background.scales) == 2
    by_hand = [apply_flat(subtract_dark(frame, refs.dark), refs.flat) for frame in frames]
    sky = sky_background(by_hand, "background")
    assert np.array_equal(products.background.data, sky.data, equal_nan=True)
    assert np.array_equal(cal.sci, by_hand[0].sci - sky.data, equal_nan=True)
    itself = calibrate(frames[0], refs).background
    assert itself.source == "science" and len(itself.scales) == 1
    skipped = calibrate(frames[0], refs, build_config(overrides=["sky_sub.skip=true"]), frames)
    assert skipped.background is None and skipped.cal.meta.status["S_SKYSUB"] == "SKIPPED"
