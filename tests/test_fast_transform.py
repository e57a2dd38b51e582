"""fast_transform: the plan of leaf evaluations gives every value bit for bit as astropy's own call does."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.modeling import custom_model, models

from image2.core.assign_wcs import fits_keyword_transform
from image2.core.cards import Cards
from image2.core.fast_transform import evaluate, mapped_pixels, plan
from image2.core.output_grid import default_grid
from image2.core.resample import PIXMAP_BLOCK, _footprints, _inside_box
from tests.resample_inputs import cal_exposure, imaging_wcs

SIP_CARDS = {
    "CRPIX1": 1024.5, "CRPIX2": 1020.25, "CRVAL1": 80.4875, "CRVAL2": -69.4975,
    "CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "CUNIT1": "deg", "CUNIT2": "deg",
    "CD1_1": -8.4e-06, "CD1_2": 1.86e-06, "CD2_1": 1.86e-06, "CD2_2": 8.4e-06,
    "A_ORDER": 3, "B_ORDER": 3, "A_2_0": 2.1e-06, "A_1_1": -1.3e-06, "A_0_2": 4.0e-07, "A_3_0": 1.1e-10,
    "B_2_0": -7.0e-07, "B_1_1": 9.0e-07, "B_0_2": 1.7e-06, "B_0_3": -2.2e-10,
}
TAN_CARDS = {
    "CRPIX1": 1024.5, "CRPIX2": 1024.5, "CRVAL1": 80.4875, "CRVAL2": -69.4975, "CTYPE1": "RA---TAN",
    "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg", "CDELT1": 8.61e-06, "CDELT2": 8.61e-06,
    "PC1_1": -0.976, "PC1_2": 0.216, "PC2_1": 0.216, "PC2_2": 0.976,
}


def same_bits(ours: tuple, theirs: tuple | np.ndarray) -> bool:
    """Same number of outputs, each of the same type, dtype and shape, with the same bytes."""
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs, strict=True):
        if type(a) is not type(b) or np.shape(a) != np.shape(b) or np.asarray(a).dtype != np.asarray(b).dtype:
            return False
        if np.asarray(a).tobytes() != np.asarray(b).tobytes():
            return False
    return True


def pixels(shape: tuple[int, int], seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A pixel grid with a sprinkle of off-grid points, some outside the detector and NaN."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    rng = np.random.default_rng(seed)
    xx += rng.uniform(-0.5, 0.5, xx.shape)
    xx.flat[rng.choice(xx.size, 40, replace=False)] = rng.uniform(-300, 2400, 40)
    yy.flat[rng.choice(yy.size, 5, replace=False)] = np.nan
    return xx, yy


@pytest.fixture(scope="module")
def nircam():
    exposure = cal_exposure((2048, 2048), (1, 1))
    footprints = _footprints(exposure.meta.header("SCI").get("S_REGION"))
    grid = default_grid(exposure.wcs, footprints, exposure.meta.pointing, exposure.shape)
    return exposure, grid


@pytest.mark.parametrize("boxed", [False, True])
def test_nircam_distortion_chain_forward(nircam, boxed):
    exposure, _ = nircam
    forward = exposure.wcs.forward_transform
    xx, yy = pixels((300, 2048))
    assert same_bits(evaluate(forward, xx, yy, with_bounding_box=boxed),
                     forward(xx, yy, with_bounding_box=boxed, fill_value=np.nan))


def test_nircam_output_grid_backward_and_distortion_inverse(nircam):
    exposure, grid = nircam
    world = exposure.wcs.forward_transform(*pixels((200, 2048)))
    backward = grid.wcs.backward_transform
    assert same_bits(evaluate(backward, *world), backward(*world))
    inverse = exposure.wcs.get_transform("v2v3", "detector")
    v2, v3 = exposure.wcs.get_transform("detector", "v2v3")(*pixels((100, 512)))
    assert same_bits(evaluate(inverse, v2, v3), inverse(v2, v3))


def test_subarray_wcs_with_its_shift(nircam):
    wcs = imaging_wcs((96, 128), (961, 977))
    xx, yy = pixels((96, 128))
    assert same_bits(evaluate(wcs.forward_transform, xx, yy, with_bounding_box=True),
                     wcs.forward_transform(xx, yy, with_bounding_box=True))


@pytest.mark.parametrize("cards", [SIP_CARDS, TAN_CARDS], ids=["tan-sip", "tan"])
def test_fits_keyword_wcs(cards):
    transform = fits_keyword_transform(Cards(list(cards.items())), "SCI")
    xx, yy = pixels((256, 2048))
    sky = transform(xx, yy)
    assert same_bits(evaluate(transform, xx, yy), sky)
    if cards is TAN_CARDS:  # SIP polynomials have no analytic inverse
        assert same_bits(evaluate(transform.inverse, *sky), transform.inverse(*sky))


def test_arithmetic_operators_scalars_and_unknown_leaves_are_exact():
    @custom_model
    def warped(x, y, k=1.0e-4):  # a leaf class of its own, evaluated through the plain path
        return x + k * y * y

    model = (models.Shift(3.5) & models.Scale(0.7)) | (models.Polynomial2D(2, c0_0=1, c1_0=0.3, c1_1=1e-3)
                                                      + warped(k=2e-4)) * models.Const2D(1.5)
    xx, yy = pixels((40, 70))
    assert same_bits(evaluate(model, xx, yy), model(xx, yy))
    assert same_bits(evaluate(model, 3.0, 4.0), model(3.0, 4.0))


def test_a_plan_can_be_reused_and_inputs_are_not_modified(nircam):
    exposure, _ = nircam
    forward = exposure.wcs.forward_transform
    compiled = plan(forward)
    xx, yy = pixels((50, 2048))
    before = xx.copy()
    first = evaluate(forward, xx, yy, compiled=compiled)
    assert same_bits(evaluate(forward, xx, yy, compiled=compiled), first)
    assert np.array_equal(xx, before)


@pytest.mark.parametrize("threads", [1, 2])
def test_mapped_pixels_equals_the_serial_gwcs_loop(nircam, threads):
    exposure, grid = nircam
    shape = (700, 2048)  # several blocks, the last one short
    box = exposure.wcs.bounding_box
    rows = PIXMAP_BLOCK // shape[1]
    forward, backward = exposure.wcs.forward_transform, grid.wcs.backward_transform
    expected = np.empty((*shape, 2))
    x = np.arange(shape[1], dtype=np.float64)
    for start in range(0, shape[0], rows):
        stop = min(shape[0], start + rows)
        xx, yy = np.meshgrid(x, np.arange(start, stop, dtype=np.float64))
        boxed = not _inside_box(box, (0, shape[1] - 1, start, stop - 1))
        world = forward(xx, yy, with_bounding_box=boxed, fill_value=np.nan)
        expected[start:stop, :, 0], expected[start:stop, :, 1] = backward(*world)
    ours = mapped_pixels(forward, backward, shape, rows,
                         lambda start, stop: not _inside_box(box, (0, shape[1] - 1, start, stop - 1)), threads=threads)
    assert np.array_equal(ours.view(np.uint64), expected.view(np.uint64))
