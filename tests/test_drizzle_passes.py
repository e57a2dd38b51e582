"""drizzle_passes: the passes split over a forked child give each output bit for bit as drizzle alone does."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from drizzle.resample import Drizzle

from image2.core import coadd
from image2.core.drizzle_passes import drizzle_passes

SHAPE_IN, SHAPE_OUT = (60, 70), (75, 80)


def inputs(seed: int = 1) -> tuple[np.ndarray, list[np.ndarray | None], dict]:
    """Random data, variances (some negative: NaN deviations), weights with zeros, a rotated NaN-holed pixel map."""
    rng = np.random.default_rng(seed)
    data = rng.normal(5, 2, SHAPE_IN).astype(np.float32)
    variances = [rng.uniform(-0.1, 2, SHAPE_IN).astype(np.float32) for _ in range(3)]
    weights = rng.uniform(0, 2, SHAPE_IN).astype(np.float32)
    weights[rng.random(SHAPE_IN) < 0.1] = 0
    yy, xx = np.mgrid[0:SHAPE_IN[0], 0:SHAPE_IN[1]].astype(np.float64)
    angle = 0.3
    pixmap = np.dstack([8 + xx * np.cos(angle) - yy * np.sin(angle) + 20 + rng.normal(0, 0.01, xx.shape),
                        4 + xx * np.sin(angle) + yy * np.cos(angle) + rng.normal(0, 0.01, xx.shape)])
    pixmap[5, 7] = np.nan
    common = {"exptime": 10.0, "pixmap": pixmap, "iscale": 1.0, "pixel_scale_ratio": 1.0, "weight_map": weights,
              "wht_scale": 1.0, "pixfrac": 0.9, "in_units": "cps", "xmin": 0, "xmax": SHAPE_IN[1] - 1,
              "ymin": 0, "ymax": SHAPE_IN[0] - 1}
    return data, variances, common


def alone(data, common, kernel):
    driz = Drizzle(kernel=kernel, fillval="NAN", out_shape=SHAPE_OUT, begin_ctx_id=0, max_ctx_id=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        driz.add_image(data, **common)
    return driz


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize(("processes", "fused"), [(1, False), (2, False), (1, True)])
@pytest.mark.parametrize("kernel", ["square", "turbo", "point", "gaussian", "lanczos3"])
def test_each_pass_is_bit_identical_to_drizzle_alone(processes, fused, kernel):
    if fused and not coadd.available():
        pytest.skip("the compiled one-pass kernel is not built")
    data, variances, common = inputs()
    variances[1] = None  # an absent variance has no pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        passes = drizzle_passes(data, variances, common, kernel=kernel, fillval="NAN", enable_ctx=True,
                                shape=SHAPE_OUT, processes=processes, fused=fused)
    sci = alone(data, common, kernel)
    assert bits(passes.sci) == bits(sci.out_img) and bits(passes.wht) == bits(sci.out_wht)
    assert bits(passes.con) == bits(sci.out_ctx)
    assert passes.deviations[1] is None
    for index in (0, 2):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = Drizzle(kernel=kernel, fillval=np.nan, out_shape=SHAPE_OUT, disable_ctx=True)
            expected.add_image(np.sqrt(variances[index]), **common)
        assert bits(passes.deviations[index]) == bits(expected.out_img)
        assert np.isnan(passes.deviations[index]).any()


@pytest.mark.parametrize("fused", [False, True])
def test_warnings_of_the_sci_pass_are_returned(fused):
    data, variances, common = inputs()
    passes = drizzle_passes(data, variances, common, kernel="lanczos2", fillval="NAN", enable_ctx=False,
                            shape=SHAPE_OUT, processes=2, fused=fused)
    assert passes.con is None
    assert passes.warnings == ("Kernel 'lanczos2' is not a flux-conserving kernel.",
                               "In lanczos kernel, pixel_fraction is ignored and assumed to be 1.0")


def test_a_failing_child_raises_its_error_here():
    data, variances, common = inputs()
    variances[2] = variances[2][:10]  # wrong shape: the child's pass fails
    with pytest.raises(ValueError, match="shape"):
        drizzle_passes(data, variances, common, kernel="square", fillval="NAN", enable_ctx=True,
                       shape=SHAPE_OUT, processes=2, fused=False)


def test_no_child_is_forked_while_another_thread_runs(monkeypatch):
    import os
    import threading

    from image2.core import drizzle_passes as module

    def no_fork():
        raise AssertionError("forked while another thread was running")

    data, variances, common = inputs()
    monkeypatch.setattr(module, "usable_cores", lambda: 2)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        monkeypatch.setattr(os, "fork", no_fork)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            passes = drizzle_passes(data, variances, common, kernel="square", fillval="NAN", enable_ctx=True,
                                    shape=SHAPE_OUT, fused=False)
    finally:
        release.set()
        other.join()
    assert bits(passes.sci) == bits(alone(data, common, "square").out_img)
    assert all(deviation is not None for deviation in passes.deviations)
