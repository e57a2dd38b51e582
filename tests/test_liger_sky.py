"""Liger/IRIS sky: the vectorised clipping and error against per-pixel transcriptions, the sky itself."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from astropy.stats import biweight_location as astropy_biweight_location

from image2.core.exposure import Exposure
from image2.core.liger.sky import (
    SkyBackground,
    biweight_location,
    clipped_mask,
    measured_error,
    sky_background,
    subtract_sky,
)
from image2.core.meta import Meta
from image2.errors import StepError


def _location(x: np.ndarray, c: float = 6.0) -> float:
    """One pixel's biweight location, written out as a loop (the pipeline's definition)."""
    median = np.nanmedian(x)
    mad = np.nanmedian(np.abs(x - median))
    if mad == 0 or not np.isfinite(mad):
        return median
    num = den = 0.0
    for value in x:
        u = (value - median) / (c * mad)
        if abs(u) < 1:
            w = (1 - u * u) ** 2
            num += (value - median) * w
            den += w
    return median if den == 0 else median + num / den


def _midvariance(x: np.ndarray, m: float, c: float = 9.0) -> float:
    mad = np.nanmedian(np.abs(x - m))
    if mad == 0 or not np.isfinite(mad):
        return mad
    f1 = f2 = 0.0
    n = 0
    for value in x:
        u = (value - m) / (c * mad)
        if abs(u) < 1 and np.isfinite(u):
            n += 1
            f1 += (value - m) ** 2 * (1 - u * u) ** 4
            f2 += (1 - u * u) * (1 - 5 * u * u)
    return n * f1 / (f2 * f2)


def _clip_pixel(x: np.ndarray, mask: np.ndarray, low: float = 4, high: float = 3, batch: int = 3,
                maxiters: int = 50) -> np.ndarray:
    """The pipeline's per-pixel sigma clipping, as a loop."""
    mask = mask.copy()
    for _ in range(maxiters):
        kept = x[~mask]
        if len(kept) <= batch:
            break
        m = _location(kept)
        s = np.sqrt(_midvariance(kept, m))
        before = (~mask).sum()
        for i in range(len(x)):
            if not mask[i] and (x[i] - m < -low * s or x[i] - m > high * s):
                mask[i] = True
        if (~mask).sum() == before:
            break
    return mask


def _error_pixel(x: np.ndarray, e: np.ndarray, good: np.ndarray) -> float:
    if good.sum() == 0:
        return np.nan
    if good.sum() == 1:
        return e[good][0]
    x, w = x[good].astype(np.float64), 1 / e[good].astype(np.float64) ** 2
    w = w / np.nansum(w)
    m = np.sum(x * w)
    var = np.nansum((x - m) ** 2 * w) / (1 - np.nansum(w**2))
    return np.sqrt(var) / np.sqrt(good.sum() - 1)


def test_biweight_location_is_astropy_s_for_finite_data():
    x = np.random.default_rng(2).standard_cauchy(2000)
    assert biweight_location(x) == pytest.approx(astropy_biweight_location(x, c=6.0), rel=1e-12)
    assert biweight_location(np.array([5.0, 5.0, 5.0, 9.0])) == 5.0  # MAD 0: the median


def test_vectorised_clipping_is_the_per_pixel_loop():
    rng = np.random.default_rng(4)
    values = rng.normal(100, 1, (7, 30, 20))
    outliers = rng.random(values.shape) < 0.1
    values[outliers] += rng.choice([-30.0, 40.0], size=int(outliers.sum()))
    values[:, 0, 0] = 5.0  # MAD 0
    mask = rng.random(values.shape) < 0.15
    mask[:, 1, 1] = True  # nothing left
    mask[3:, 2, 2] = True  # three left: never clipped
    clipped = clipped_mask(values.astype(np.float32), mask)
    expected = np.stack([_clip_pixel(values.astype(np.float32)[:, y, x].astype(np.float64), mask[:, y, x])
                         for y in range(30) for x in range(20)], axis=1).reshape(mask.shape)
    assert (clipped == expected).all()
    assert (clipped & ~mask).any()  # the test data does get clipped


def test_measured_error_is_the_per_pixel_formula():
    rng = np.random.default_rng(5)
    values = rng.normal(10, 1, (4, 6, 5)).astype(np.float32)
    errors = rng.uniform(0.5, 2, values.shape).astype(np.float32)
    good = rng.random(values.shape) < 0.7
    good[:, 0, 0] = False
    good[:, 0, 1] = [True, False, False, False]
    values[2, 3, 3] = np.nan  # a clipped value among the good ones: the pipeline then measures 0
    good[2, 3, 3] = True
    result = measured_error(values, errors, good)
    expected = np.array([[_error_pixel(values[:, y, x], errors[:, y, x], good[:, y, x]) for x in range(5)]
                         for y in range(6)], dtype=np.float32)
    assert np.isnan(result[0, 0]) and result[0, 1] == errors[0, 0, 1] and result[3, 3] == 0
    assert np.allclose(result, expected, rtol=1e-6, equal_nan=True)


def _sky_frame(level: float, shape=(160, 180), seed: int = 0) -> Exposure:
    rng = np.random.default_rng(seed)
    gradient = 1 + 0.2 * np.linspace(-0.5, 0.5, shape[0])[:, np.newaxis]
    sci = rng.normal(level * gradient, 1.0, shape).astype(np.float32)
    return Exposure(sci=sci, err=np.ones(shape), dq=np.zeros(shape, np.uint32), meta=Meta(layout="liger"))


def test_the_sky_scales_frames_by_their_level_and_flags_pixels_flagged_everywhere():
    pytest.importorskip("photutils")
    frames = [_sky_frame(40.0, seed=1), _sky_frame(60.0, seed=2)]
    dq = frames[0].dq.copy()
    dq[10, 10] = 4
    frames[0] = frames[0].evolve(dq=dq)
    both = [f.evolve(dq=np.where(np.arange(f.dq.size).reshape(f.shape) == 500, 8, f.dq)) for f in frames]
    sky = sky_background(both)
    assert sky.scales == pytest.approx((0.8, 1.2), rel=0.01)
    assert np.isnan(sky.data.flat[500]) and sky.dq.flat[500] == 8  # flagged in every frame
    assert np.isfinite(sky.data[10, 10]) and sky.dq[10, 10] == 0  # flagged in one: the other frame's value
    assert np.nanmedian(sky.data) == pytest.approx(50.0, rel=0.01)
    with pytest.raises(StepError, match="one shape"):
        sky_background([_sky_frame(40.0), _sky_frame(40.0, shape=(160, 170))])


def test_subtract_sky_adds_its_error_in_quadrature_and_its_dq():
    frame = _sky_frame(40.0)
    sky = SkyBackground(data=np.full(frame.shape, 39.0), err=np.full(frame.shape, 0.5),
                        dq=np.full(frame.shape, 2), scales=(1.0,))
    result = subtract_sky(frame, sky)
    assert np.allclose(result.sci, frame.sci - np.float32(39.0))
    assert np.allclose(result.err, np.sqrt(1.0 + 0.25))
    assert (result.dq == 2).all() and result.meta.status["S_SKYSUB"] == "COMPLETE"
    assert "sky from 1 science frame(s)" in result.meta.provenance[-1].notes[0]
    small = SkyBackground(data=np.zeros((3, 3)), err=np.zeros((3, 3)), dq=np.zeros((3, 3)), scales=(1.0,))
    with pytest.raises(StepError, match="differ in shape"):
        subtract_sky(frame, small)


def test_without_photutils_the_sky_is_a_step_error_saying_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "photutils.background", None)  # import fails
    with pytest.raises(StepError, match=r"needs photutils: pip install 'image2\[liger\]'"):
        sky_background([_sky_frame(40.0)])
