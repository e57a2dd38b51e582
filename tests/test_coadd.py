"""The one-pass co-add against drizzle 3's own passes, bit for bit, on random images and pixel maps."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from drizzle.resample import Drizzle

from image2.core import coadd as coadd_module
from image2.core.coadd import KERNEL_CODES, coadd

pytestmark = pytest.mark.skipif(not coadd_module.available() and not os.environ.get("CI"),
                                reason="the compiled kernel is not built (python setup.py build_ext --inplace)")


def test_the_kernel_is_built():
    """In CI the extension must be there, or every other test here would silently test nothing."""
    assert coadd_module.available()


def random_case(seed: int, *, in_shape=(47, 53), out_shape=(50, 61), nan_map=True, outside=False, flip=False):
    """Images (with NaNs), weights (with zeros), a distorted, rotated, noisy pixel map (with NaN holes)."""
    rng = np.random.default_rng(seed)
    ny, nx = in_shape
    images = [rng.normal(3, 2, in_shape).astype(np.float32) for _ in range(4)]
    images[1][rng.random(in_shape) < 0.03] = np.nan
    weights = rng.uniform(0, 3, in_shape).astype(np.float32)
    weights[rng.random(in_shape) < 0.15] = 0
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    angle, scale = rng.uniform(-0.6, 0.6), rng.uniform(0.7, 1.4)
    x0 = rng.uniform(-15, 0) if outside else rng.uniform(3, 8)
    u = (xx - nx / 2) * (1 + 1e-4 * (yy - ny / 2) ** 2 / ny) * (-1 if flip else 1)
    v = yy - ny / 2
    pixmap = np.dstack([x0 + nx / 2 + scale * (u * np.cos(angle) - v * np.sin(angle)) + rng.normal(0, 0.02, xx.shape),
                        rng.uniform(2, 6) + ny / 2 + scale * (u * np.sin(angle) + v * np.cos(angle))
                        + rng.normal(0, 0.02, xx.shape)])
    if nan_map:
        pixmap[rng.integers(0, ny, 6), rng.integers(0, nx, 6)] = np.nan
        pixmap[0, :5] = np.nan
    return images, weights, pixmap, out_shape


def drizzle_alone(image, common, kernel, fill, out_shape, dq=None, ctx=True):
    driz = Drizzle(kernel=kernel, fillval=fill, out_shape=out_shape, begin_ctx_id=0, max_ctx_id=0,
                   disable_ctx=not ctx)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        driz.add_image(image, dq=dq, **common)
    return driz, [str(w.message) for w in caught]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


CASES = [(kernel, pixfrac, ratio) for kernel in KERNEL_CODES for pixfrac, ratio in ((1.0, 1.0), (0.6, 1.0), (0.85, 0.7))]


@pytest.mark.parametrize(("kernel", "pixfrac", "ratio"), CASES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_output_equals_its_own_drizzle_pass(kernel, pixfrac, ratio, seed):
    images, weights, pixmap, out_shape = random_case(seed, outside=seed == 2, flip=seed == 3)
    common = {"exptime": 3.0, "pixmap": pixmap, "iscale": 1.0, "pixel_scale_ratio": ratio, "weight_map": weights,
              "wht_scale": 1.0, "pixfrac": pixfrac, "in_units": "cps", "xmin": 0, "xmax": 52, "ymin": 0, "ymax": 46}
    fills = ["NAN", np.nan, "0", "-1.1"]
    context = np.zeros(out_shape, np.int32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs, counts = coadd(images, common, kernel=kernel, fills=fills, shape=out_shape, context=context)
    for index, (image, fill) in enumerate(zip(images, fills, strict=True)):
        driz, messages = drizzle_alone(image, common, kernel, fill, out_shape)
        assert same(outputs[index], driz.out_img), f"image {index}"
        assert same(counts, driz.out_wht)
        assert same(context, driz.out_ctx[0])
    assert [str(w.message) for w in caught] == messages
    assert np.count_nonzero(counts) > 100


@pytest.mark.parametrize("kernel", list(KERNEL_CODES))
@pytest.mark.parametrize("threads", [1, 3])
def test_dq_section_and_threads(kernel, threads):
    images, weights, pixmap, out_shape = random_case(7, in_shape=(60, 40), out_shape=(45, 70), nan_map=False)
    dq = np.random.default_rng(3).integers(0, 2**20, images[0].shape).astype(np.uint32)
    common = {"exptime": 1.0, "pixmap": pixmap, "weight_map": weights, "pixfrac": 0.9, "pixel_scale_ratio": 1.0,
              "xmin": 3, "xmax": 35, "ymin": 5, "ymax": 52}
    out_dq = np.zeros(out_shape, np.uint32)
    context = np.zeros(out_shape, np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs, counts = coadd(images[:2], common, kernel=kernel, fills=["NAN", "NAN"], shape=out_shape, dq=dq,
                                out_dq=out_dq, context=context, threads=threads)
    for index in range(2):
        driz, _ = drizzle_alone(images[index], common, kernel, "NAN", out_shape, dq=dq)
        assert same(outputs[index], driz.out_img) and same(counts, driz.out_wht)
        assert same(out_dq, driz.out_dq) and same(context, driz.out_ctx[0])
    assert np.count_nonzero(counts) > 500


@pytest.mark.parametrize("hole", [(29, 29), (29, 2), (2, 29), (12, 20), None])
@pytest.mark.parametrize("flip", [False, True])
def test_section_when_mapping_back_fails_near_a_vertex(hole, flip):
    """The output window cuts the input; a NaN in the map near one cut vertex stops drizzle's inversion there."""
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float64)
    pixmap = np.dstack([39 - xx if flip else xx, yy])
    if hole:
        pixmap[hole[1], 39 - hole[0] if flip else hole[0]] = np.nan
    image = np.random.default_rng(1).normal(1, 0.1, (40, 40)).astype(np.float32)
    common = {"exptime": 1.0, "pixmap": pixmap, "xmin": 2, "ymin": 2}
    outputs, counts = coadd([image], common, kernel="square", fills=["NAN"], shape=(30, 30))
    driz, _ = drizzle_alone(image, common, "square", "NAN", (30, 30), ctx=False)
    assert same(outputs[0], driz.out_img) and same(counts, driz.out_wht)


@pytest.mark.parametrize("pixfrac", [0.0005, 1.0])
def test_pixel_map_entirely_outside_and_tiny_pixfrac(pixfrac):
    images, weights, pixmap, out_shape = random_case(4)
    far = pixmap + 500.0
    common = {"exptime": 1.0, "pixmap": far, "weight_map": weights, "pixfrac": pixfrac}
    outputs, counts = coadd(images[:1], common, kernel="square", fills=["NAN"], shape=out_shape)
    driz, _ = drizzle_alone(images[0], common, "square", "NAN", out_shape)
    assert same(outputs[0], driz.out_img) and same(counts, driz.out_wht) and not counts.any()
    common["pixmap"] = pixmap
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs, counts = coadd(images[:1], common, kernel="turbo", fills=["NAN"], shape=out_shape)
    driz, messages = drizzle_alone(images[0], common, "turbo", "NAN", out_shape)
    assert same(outputs[0], driz.out_img) and same(counts, driz.out_wht)
    assert [str(w.message) for w in caught] == messages


def test_an_all_nan_pixel_map_fails_as_drizzle_does():
    images, weights, pixmap, out_shape = random_case(5)
    common = {"exptime": 1.0, "pixmap": np.full_like(pixmap, np.nan), "weight_map": weights}
    with pytest.raises(ValueError, match="too few valid pixels") as ours:
        coadd(images[:1], common, kernel="square", fills=["NAN"], shape=out_shape)
    with pytest.raises(ValueError) as theirs:
        drizzle_alone(images[0], common, "square", "NAN", out_shape)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("kernel", list(KERNEL_CODES))
def test_variances_are_drizzled_as_the_square_roots_numpy_takes(kernel):
    """The kernel's square roots equal np.sqrt's bit for bit, for every awkward variance: negative (NaN),
    NaN, ±inf, zero, subnormal, huge; with the square kernel (the default) also against drizzle's own pass."""
    images, weights, pixmap, out_shape = random_case(11, nan_map=False)
    rng = np.random.default_rng(5)
    variances = [rng.lognormal(-2, 3, images[0].shape).astype(np.float32) for _ in range(2)]
    special = np.array([-1.0, -0.0, np.nan, np.inf, -np.inf, 0.0, 1e-45, 3e38], np.float32)
    picks = rng.random(images[0].shape) < 0.2
    variances[0][picks] = rng.choice(special, picks.sum())
    common = {"exptime": 2.0, "pixmap": pixmap, "pixel_scale_ratio": 0.8, "weight_map": weights, "pixfrac": 0.8,
              "iscale": 0.5}
    fills = ["NAN", np.nan, np.nan]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs, counts = coadd(images[:1], common, kernel=kernel, fills=fills, shape=out_shape, variances=variances)
        with np.errstate(invalid="ignore"):
            roots = [np.sqrt(variance) for variance in variances]
        expected, expected_counts = coadd([images[0], *roots], common, kernel=kernel, fills=fills, shape=out_shape)
        driz, _ = drizzle_alone(roots[0], common, kernel, np.nan, out_shape, ctx=False)
    assert all(same(a, b) for a, b in zip(outputs, expected, strict=True)) and same(counts, expected_counts)
    if kernel == "square":
        assert same(outputs[1], driz.out_img)
    assert np.isnan(outputs[1][counts > 0]).any()  # the NaN roots reached the output
