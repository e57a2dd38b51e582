"""Without the compiled one-pass kernel, resample runs drizzle's own passes and gets the same bits."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core import coadd, drizzle_passes
from image2.core.resample import Resampled, resample
from tests.resample_inputs import cal_exposure, gaussian_image

pytestmark = pytest.mark.skipif(not coadd.available(), reason="the compiled one-pass kernel is not built here")

def _spy(function, name, calls):
    def spied(*args, **kwargs):
        calls.append(name)
        return function(*args, **kwargs)
    return spied


ARRAYS = ("sci", "wht", "con", "err", "var_rnoise", "var_poisson", "var_flat", "dq")


@pytest.mark.parametrize("kernel", ["square", "turbo", "point", "gaussian", "lanczos3"])
@pytest.mark.parametrize("fillval", ["NAN", "0.5"])
def test_drizzles_passes_stand_in_for_the_missing_kernel_bit_for_bit(monkeypatch, kernel, fillval):
    shape = (96, 128)
    exposure = cal_exposure(shape, sci=gaussian_image(shape, 40.3, 52.7, 1.6, 30.0) + 1.0)
    ran = []
    monkeypatch.setattr(coadd, "coadd", _spy(coadd.coadd, "fused", ran))
    monkeypatch.setattr(drizzle_passes, "sci_pass", _spy(drizzle_passes.sci_pass, "passes", ran))
    fused = resample(exposure, kernel=kernel, fillval=fillval, pixfrac=0.8)
    monkeypatch.setattr(coadd, "_coadd", None)  # as when `pip install .` could not build the extension
    fallback = resample(exposure, kernel=kernel, fillval=fillval, pixfrac=0.8)
    assert ran == ["fused", "passes"]
    assert isinstance(fused, Resampled) and isinstance(fallback, Resampled)
    for name in ARRAYS:
        one, other = getattr(fused, name), getattr(fallback, name)
        assert (one is None) == (other is None), name
        if one is not None:
            assert one.dtype == other.dtype and one.shape == other.shape, name
            assert np.ascontiguousarray(one).tobytes() == np.ascontiguousarray(other).tobytes(), name



def test_a_build_of_another_interface_version_is_not_used(monkeypatch):
    """A stale build (another _coadd.VERSION) would take the same arguments to mean something else: it is
    left alone and drizzle's passes run."""
    assert coadd.available()
    monkeypatch.setattr(coadd._coadd, "VERSION", coadd.KERNEL_VERSION - 1)
    assert not coadd.available() and not coadd.supports({"exptime": 1.0, "pixmap": None}, None)
