"""Properties of the calibration steps over generated exposures (hypothesis, modest example counts)."""

from __future__ import annotations

import hashlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from image2.core.dark_current import dark_current
from image2.core.exposure import Exposure, Extension
from image2.core.flat_field import flat_field
from image2.core.meta import ExposureInfo, Instrument, Meta, Subarray
from image2.core.parse_subarray_map import parse_subarray_map
from image2.core.photom import photom
from image2.core.references import DarkReference, FlatReference, PhotomReference

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPS32 = float(np.finfo(np.float32).eps)

planes = st.tuples(st.integers(1, 4), st.integers(1, 5))
magnitudes = st.floats(2.0**-20, 1e4, width=32)  # no subnormals: scaling by powers of two stays exact
values = st.one_of(st.just(0.0), magnitudes, magnitudes.map(lambda v: -v))
variances = st.one_of(st.just(0.0), magnitudes)
flags = st.sampled_from([0, 0, 0, 1, 4, 512, 2048, 1 | 2048])


@st.composite
def exposures(draw, nints=st.sampled_from([None, 1, 3]), nan=True):
    """A NIRCam exposure, 2-D or a cube, with NaN and flagged pixels, placed at SUBSTRT 3, 2."""
    ny, nx = draw(planes)
    n = draw(nints)
    shape = (ny, nx) if n is None else (n, ny, nx)
    sci_values = st.one_of(values, st.just(np.nan)) if nan else values
    sci = draw(arrays(np.float32, shape, elements=sci_values))
    dq = draw(arrays(np.uint32, shape, elements=flags))
    var_poisson, var_rnoise = (draw(arrays(np.float32, shape, elements=variances)) for _ in range(2))
    meta = Meta(instrument=Instrument(name="NIRCAM", filter="F150W", pupil="CLEAR"),
                subarray=Subarray("SUB", 3, 2, nx, ny), exposure=ExposureInfo(mid=60412.5))
    return Exposure(sci=sci, err=np.sqrt(var_poisson + var_rnoise), dq=dq, var_poisson=var_poisson,
                    var_rnoise=var_rnoise, meta=meta)


def _flat(shape, data=None, err=None, dq=None) -> FlatReference:
    ny, nx = shape
    full = (ny + 2, nx + 3)  # the exposure sits at SUBSTRT 3, 2 inside this flat

    def padded(window, fill, dtype):
        array = np.full(full, fill, dtype)
        if window is not None:
            array[1:1 + ny, 2:2 + nx] = window
        return array

    return FlatReference("flat", padded(data, 1.0, np.float32), padded(err, 0.0, np.float32),
                         padded(dq, 0, np.uint32), Subarray("FULL", 1, 1, full[1], full[0]))


@st.composite
def flats(draw, shape):
    data = draw(arrays(np.float32, shape, elements=st.one_of(st.floats(0.25, 4.0, width=32), st.just(0.0))))
    err = draw(arrays(np.float32, shape, elements=st.floats(0.0, 0.5, width=32)))
    dq = draw(arrays(np.uint32, shape, elements=st.sampled_from([0, 0, 1, 1 << 18, 1 << 25])))
    return _flat(shape, data, err, dq)


def _photom(factor: float) -> PhotomReference:
    rows = np.array([("F150W", "CLEAR", factor, 0.0)],
                    dtype=[("filter", "S12"), ("pupil", "S12"), ("photmjsr", "f4"), ("uncertainty", "f4")])
    return PhotomReference("photom", rows)


def _valid(exposure: Exposure) -> np.ndarray:
    return ~np.isnan(exposure.sci)


@FAST
@given(exposures())
def test_unit_flat_with_zero_error_changes_no_sci_value(exposure):
    out = flat_field(exposure, _flat(exposure.shape))
    bad = np.isnan(exposure.sci) | np.isnan(exposure.var_poisson) | np.isnan(exposure.var_rnoise) \
        | ((exposure.dq & 1) != 0)
    np.testing.assert_array_equal(out.sci[~bad], exposure.sci[~bad])
    assert np.isnan(out.sci[bad]).all() and (out.var_flat[~bad] == 0).all()


@FAST
@given(st.data())
def test_flat_variances_stay_non_negative_and_err_squared_is_their_sum(data):
    exposure = data.draw(exposures())
    out = flat_field(exposure, data.draw(flats(exposure.shape)))
    good = _valid(out)
    for variance in (out.var_poisson, out.var_rnoise, out.var_flat):
        assert (variance[good] >= 0).all() and np.isnan(variance[~good]).all()
    total = (out.var_poisson.astype(np.float64) + out.var_rnoise + out.var_flat)[good]
    finite = np.isfinite(total)
    np.testing.assert_allclose(out.err[good][finite].astype(np.float64) ** 2, total[finite], rtol=8 * EPS32)


@FAST
@given(exposures(nan=False), st.floats(2.0**-7, 100.0, width=32), st.integers(-3, 3))
def test_photom_is_linear_in_the_input(exposure, factor, power):
    scale = np.float32(2.0**power)  # exact in float32: scaling must commute bit for bit
    reference = _photom(factor)
    scaled = exposure.evolve(sci=exposure.sci * scale, err=exposure.err * scale,
                             var_poisson=exposure.var_poisson * scale * scale)
    once, twice = photom(exposure, reference, None), photom(scaled, reference, None)
    np.testing.assert_array_equal(twice.sci, once.sci * scale)
    np.testing.assert_array_equal(twice.var_poisson, once.var_poisson * scale * scale)
    other = exposure.evolve(sci=exposure.sci[::-1].copy())
    summed = photom(exposure.evolve(sci=exposure.sci + other.sci), reference, None)
    parts = once.sci.astype(np.float64) + photom(other, reference, None).sci
    bound = 4 * EPS32 * (np.abs(exposure.sci) + np.abs(other.sci)) * max(factor, 1.0)
    usable = ((exposure.dq | other.dq) & 1) == 0
    assert (np.abs(summed.sci - parts) <= bound)[usable].all()


def _digest(exposure: Exposure) -> str:
    parts = [exposure.sci, exposure.err, exposure.dq, exposure.var_poisson, exposure.var_rnoise]
    return hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts)).hexdigest()


def _dark(shape) -> DarkReference:
    ny, nx = shape
    sci = np.linspace(-1.0, 3.0, (ny + 1) * (nx + 2), dtype=np.float32).reshape(ny + 1, nx + 2)
    sci[0, 0] = np.nan
    return DarkReference("dark", sci, np.full(sci.shape, 0.5, np.float32),
                         np.full(sci.shape, 2048, np.uint32), Subarray("FULL", 1, 1, nx + 2, ny + 1))


def _map(shape) -> np.ndarray:
    ids = np.zeros(shape, np.uint16)
    ids[: max(1, shape[0] // 2), : max(1, shape[1] // 2)] = 1
    return ids


def _steps(shape):
    """Each step with references fitted to an image plane of ``shape``."""
    flat = _flat(shape, np.linspace(0.5, 2.0, shape[0] * shape[1], dtype=np.float32).reshape(shape),
                 np.full(shape, 0.01, np.float32))
    return {
        "flat_field": lambda e: flat_field(e, flat),
        "flat_field inverse": lambda e: flat_field(e, flat, inverse=True),
        "photom": lambda e: photom(e, _photom(0.37), None),
        "dark_current": lambda e: dark_current(e, _dark(shape), propagate_error=True),
        "parse_subarray_map": lambda e: parse_subarray_map(
            e.evolve(extensions={"SUBARR_MAP": Extension(_map(shape))})),
    }


@FAST
@given(exposures())
def test_inputs_are_never_mutated(exposure):
    before = _digest(exposure)
    for run in _steps(exposure.shape).values():
        run(exposure)
        assert _digest(exposure) == before


@FAST
@given(exposures(nints=st.integers(2, 3)))
def test_a_cube_equals_its_integrations_run_one_by_one(exposure):
    for name, run in _steps(exposure.shape).items():
        whole = run(exposure)
        for i in range(exposure.nints):
            part = run(exposure.integrations(i, i + 1))
            plane = run(exposure.evolve(**{k: getattr(exposure, k)[i] for k in
                                           ("sci", "err", "dq", "var_poisson", "var_rnoise")}))
            for attribute in ("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat"):
                expected = getattr(whole, attribute)
                if expected is None:
                    continue
                np.testing.assert_array_equal(getattr(part, attribute)[0], expected[i], err_msg=name)
                np.testing.assert_array_equal(getattr(plane, attribute), expected[i], err_msg=name)
