"""sky_sub (Liger/IRIS, S_SKYSUB): the sky of SKY frames (or of the science frames), scaled, combined, subtracted.

As the pipeline's CalculateBackgroundImagerStep and SubtractBackgroundImagerStep compute it:

1. Per frame (already dark- and flat-corrected), photutils ``Background2D`` with the biweight
   location estimator, a 101-pixel box, a 3×3 median filter and sigma clipping 6σ below / 2σ
   above (100 iterations), pixels with any DQ flag masked: a smooth sky and its RMS.
2. Per frame a scale: the biweight location of its sky over the mean of those of all frames.
3. The scaled skies combined pixel by pixel: values of flagged pixels dropped, then (four
   frames or more) an iterative biweight clip 4σ below / 3σ above, then the mean; the error
   measured from the spread of the frames' values (weighted by their RMS); DQ the AND of the
   frames' DQ. A pixel flagged in every frame gets a NaN sky, so a NaN science value.
4. Subtracted from each science frame: ``DATA - sky``, ``ERR = √(ERR² + ERR_sky²)``, ``DQ |= sky DQ``.

photutils is an optional dependency (``image2[liger]``), imported when a sky is computed.
Deliberate differences: S_SKYSUB is recorded (Liger records no status for its sky steps), and
the telescope need not be Keck or TMT (Liger needs it only to size a box it is given anyway).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import attrs
import numpy as np

from image2.core.exposure import Exposure
from image2.core.frozen import readonly
from image2.core.steps import LIGER_FORMAT
from image2.core.provenance import Outcome, StepSkipped, step
from image2.errors import StepError

STEP = "sky_sub"
COMBINE_SIGMA_LOW = 4.0
COMBINE_SIGMA_HIGH = 3.0
COMBINE_MAXITERS = 50
MIN_BATCH = 3
"""A pixel is clipped only while more than this many frames are left (so never with 1 to 3 frames)."""


@attrs.frozen
class SkyBackground:
    """The combined sky to subtract (float32 DATA and ERR, DQ) and how it was made."""

    data: np.ndarray = attrs.field(converter=lambda a: readonly(np.asarray(a, np.float32)))
    err: np.ndarray = attrs.field(converter=lambda a: readonly(np.asarray(a, np.float32)))
    dq: np.ndarray = attrs.field(converter=lambda a: readonly(np.asarray(a, np.uint32)))
    scales: tuple[float, ...] = attrs.field(converter=tuple)
    source: str = "science"
    box_size: int | tuple[int, int] = 101
    filter_size: tuple[int, int] = (3, 3)
    sigma_low: float = 6.0
    sigma_high: float = 2.0
    maxiters: int = 100
    """The parameters it was estimated with (:func:`sky_background`'s), for the provenance."""

    def describe(self) -> str:
        """One line for the provenance: how many frames, of which kind, and their scales."""
        scales = ", ".join(f"{s:.6g}" for s in self.scales)
        return f"sky from {len(self.scales)} {self.source} frame(s), scales {scales}"


def biweight_location(values: np.ndarray, c: float = 6.0, axis: int | None = None) -> np.ndarray:
    """Liger's biweight location (NaN ignored): the median when the MAD is 0 or not finite.

    ``axis=None`` takes the whole array (a frame's sky level) in float64, a million values at a time.
    """
    if axis is None:
        return _whole_biweight_location(values, c)
    x = np.asarray(values, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, as in Liger
        median = np.nanmedian(x, axis=axis)
        deviation = x - np.expand_dims(median, axis)
        mad = np.nanmedian(np.abs(deviation), axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = deviation / np.expand_dims(c * mad, axis)
            inside = np.abs(u) < 1
            weight = np.where(inside, (1 - u * u) ** 2, 0.0)
            numerator = np.where(inside, deviation * weight, 0.0).sum(axis=axis)
            denominator = weight.sum(axis=axis)
            location = median + numerator / denominator
    keep_median = (mad == 0) | ~np.isfinite(mad) | (denominator == 0)
    return np.where(keep_median, median, location)


def _whole_biweight_location(values: np.ndarray, c: float, block: int = 1 << 20) -> float:
    deviation = np.array(values, dtype=np.float64).ravel()  # always a copy: it is shifted in place
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = float(np.nanmedian(deviation))
        deviation -= median
        mad = float(np.nanmedian(np.abs(deviation)))
    if mad == 0 or not np.isfinite(mad):
        return median
    numerator = denominator = 0.0
    for start in range(0, deviation.size, block):
        d = deviation[start:start + block]
        with np.errstate(invalid="ignore"):
            u = d / (c * mad)
            inside = np.abs(u) < 1
        weight = np.square(1 - np.square(u[inside]))
        numerator += float(np.dot(d[inside], weight))
        denominator += float(weight.sum())
    return median if denominator == 0 else median + numerator / denominator


def biweight_midvariance(values: np.ndarray, location: np.ndarray, c: float = 9.0, axis: int = 0) -> np.ndarray:
    """Liger's biweight midvariance about ``location`` (NaN ignored; its MAD when that is 0 or not finite)."""
    x = np.asarray(values, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        deviation = x - np.expand_dims(location, axis)
        mad = np.nanmedian(np.abs(deviation), axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = deviation / np.expand_dims(c * mad, axis)
            good = (np.abs(u) < 1) & np.isfinite(u)
            u2 = np.where(good, u * u, 0.0)
            f1 = np.where(good, deviation * deviation * (1 - u2) ** 4, 0.0).sum(axis=axis)
            f2 = np.where(good, (1 - u2) * (1 - 5 * u2), 0.0).sum(axis=axis)
            variance = good.sum(axis=axis) * f1 / (f2 * f2)
    return np.where((mad == 0) | ~np.isfinite(mad), mad, variance)


def clipped_mask(values: np.ndarray, mask: np.ndarray, *, sigma_low: float = COMBINE_SIGMA_LOW,
                 sigma_high: float = COMBINE_SIGMA_HIGH, min_batch: int = MIN_BATCH,
                 maxiters: int = COMBINE_MAXITERS) -> np.ndarray:
    """Return ``mask`` (frames × pixels) grown by Liger's per-pixel iterative biweight clipping.

    Per pixel, while more than ``min_batch`` values are unmasked: centre = biweight location,
    σ = √(biweight midvariance about it); values below centre − ``sigma_low``·σ or above
    centre + ``sigma_high``·σ are masked; stop when nothing changes or after ``maxiters``.
    All pixels iterate together; a pixel whose mask did not change stays as it is.
    """
    shape = mask.shape
    values = values.reshape(shape[0], -1)
    mask = np.array(mask, dtype=bool, copy=True).reshape(shape[0], -1)
    columns = np.flatnonzero((~mask).sum(axis=0) > min_batch)
    for _ in range(maxiters):
        if columns.size == 0:
            break
        x = values[:, columns].astype(np.float64)
        old = mask[:, columns]
        kept = np.where(old, np.nan, x)
        centre = biweight_location(kept, axis=0)
        sigma = np.sqrt(biweight_midvariance(kept, centre))
        residual = x - centre
        with np.errstate(invalid="ignore"):
            new = old | (residual < -sigma_low * sigma) | (residual > sigma_high * sigma)
        mask[:, columns] = new
        changed = (new != old).any(axis=0) & ((~new).sum(axis=0) > min_batch)
        columns = columns[changed]
    return mask.reshape(shape)


def measured_error(values: np.ndarray, errors: np.ndarray, good: np.ndarray, rows: int = 128) -> np.ndarray:
    """Per pixel, Liger's error of the combined frames: the RMS-weighted spread of the good values / √(n−1).

    ``good`` marks frames with DQ 0 there. One good frame: its own error; none: NaN. A good
    value that clipping turned into NaN makes the weighted mean NaN and the result 0, as in Liger.
    Computed ``rows`` image rows at a time to bound the float64 temporaries.
    """
    result = np.empty(values.shape[1:], np.float32)
    for start in range(0, values.shape[1], rows):
        band = slice(start, start + rows)
        result[band] = _measured_error(values[:, band], errors[:, band], good[:, band])
    return result


def _measured_error(values: np.ndarray, errors: np.ndarray, good: np.ndarray) -> np.ndarray:
    x = values.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(good, 1.0 / np.square(errors.astype(np.float64)), 0.0)
        weight /= np.nansum(weight, axis=0)
        mean = np.where(good, x * weight, 0.0).sum(axis=0)
        x -= mean
        np.square(x, out=x)
        x *= weight
        spread = np.nansum(np.where(good, x, 0.0), axis=0)
        np.square(weight, out=weight)
        bias = 1.0 - np.nansum(np.where(good, weight, 0.0), axis=0)
        count = good.sum(axis=0)
        result = np.sqrt(spread / bias) / np.sqrt(count - 1)
    single = np.take_along_axis(errors, np.argmax(good, axis=0)[np.newaxis], axis=0)[0]
    result = np.where(count == 1, single, result)
    return np.where(count == 0, np.nan, result)


def frame_sky(image: np.ndarray, mask: np.ndarray, *, box_size: int | tuple[int, int], filter_size: tuple[int, int],
              sigma_low: float, sigma_high: float, maxiters: int) -> tuple[np.ndarray, np.ndarray]:
    """Return photutils' Background2D sky and sky RMS of one frame (``mask``: pixels left out)."""
    from astropy.stats import SigmaClip

    try:
        from photutils.background import Background2D, BiweightLocationBackground
    except ImportError:
        raise StepError(STEP, "the Liger/IRIS sky needs photutils: pip install 'image2[liger]' "
                              "(or skip it: --step sky_sub.skip=true)") from None

    clip = SigmaClip(sigma_lower=sigma_low, sigma_upper=sigma_high, maxiters=maxiters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # photutils warns that it masks non-finite values itself
        try:
            sky = Background2D(image, box_size=box_size, filter_size=filter_size, sigma_clip=clip,
                               bkg_estimator=BiweightLocationBackground(), fill_value=np.nan, mask=mask)
        except ValueError as error:
            raise StepError(STEP, f"photutils cannot estimate the sky: {error}") from None
        return sky.background, sky.background_rms


def sky_background(frames: Iterable[Exposure], source: str = "science", *, box_size: int | tuple[int, int] = 101,
                   filter_size: tuple[int, int] = (3, 3), sigma_low: float = 6.0, sigma_high: float = 2.0,
                   maxiters: int = 100) -> SkyBackground:
    """Return the combined, scaled sky of ``frames`` (dark- and flat-corrected, 2-D, all of one shape).

    ``frames`` is consumed once, so a generator lets each frame go once its sky is known.
    """
    skies, rms, flags = [], [], []
    for frame in frames:
        if frame.is_cube or (flags and frame.shape != flags[0].shape):
            raise StepError(STEP, f"the {source} frames must be 2-D and of one shape; got {frame.sci.shape} "
                                  f"after {flags[0].shape if flags else 'none'}")
        sky, sky_rms = frame_sky(frame.sci, frame.dq > 0, box_size=box_size, filter_size=filter_size,
                                 sigma_low=sigma_low, sigma_high=sigma_high, maxiters=maxiters)
        skies.append(sky)
        rms.append(sky_rms)
        flags.append(frame.dq)
    if not skies:
        raise StepError(STEP, "no frames to estimate the sky from")
    levels = [biweight_location(sky) for sky in skies]
    scales = np.asarray(levels) / np.mean(levels)
    data = np.stack([np.multiply(sky, np.float32(s), dtype=np.float32) for sky, s in zip(skies, scales)])
    del skies
    err = np.stack([np.multiply(r, np.float32(s), dtype=np.float32) for r, s in zip(rms, scales)])
    del rms
    dq = np.stack(flags)
    del flags
    data[clipped_mask(data, dq > 0)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pixels flagged in every frame: NaN
        combined = np.nanmean(data, axis=0)
    return SkyBackground(data=combined, err=measured_error(data, err, dq == 0),
                         dq=np.bitwise_and.reduce(dq, axis=0), scales=tuple(float(s) for s in scales), source=source,
                         box_size=box_size, filter_size=filter_size, sigma_low=sigma_low, sigma_high=sigma_high,
                         maxiters=maxiters)


@step(STEP, family=LIGER_FORMAT)
def subtract_sky(exposure: Exposure, background: SkyBackground | None) -> Exposure | Outcome:
    """Return ``exposure`` minus the combined sky, with its ERR added in quadrature and its DQ ORed in."""
    if background is None:
        raise StepSkipped("no sky background")
    if background.data.shape != exposure.shape:
        raise StepError(STEP, f"the sky ({background.data.shape}) and the science frame ({exposure.shape}) "
                              "differ in shape")
    err = np.square(exposure.err)
    err += np.square(background.err)
    return Outcome(exposure.evolve(sci=np.subtract(exposure.sci, background.data), err=np.sqrt(err, out=err),
                                   dq=np.bitwise_or(exposure.dq, background.dq)), (background.describe(),))
