"""The pipeline as data: the plan, status semantics and composition of the steps (no files written)."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest

from image2.core.config import build_config
from image2.core.pipeline import calibrate, calibrate_chunks, plan
from image2.core.references import FlatReference, References
from image2.io.fits import read_exposure
from image2.synthetic.exposures import make_rate


@pytest.fixture
def exposure(tmp_path: Path):
    return read_exposure(make_rate(tmp_path / "x_rate.fits", shape=(48, 64)))


def _statuses(products) -> dict:
    return {k: v for k, v in products.cal.meta.status.items() if k in ("S_BKDSUB", "S_WCS", "S_DARK", "S_FLAT",
                                                                       "S_PHOTOM", "S_RESAMP")}


def test_without_references_wcs_comes_from_fits_keywords_and_calibration_skips(exposure):
    products = calibrate(exposure, References())
    assert _statuses(products) == {"S_WCS": "COMPLETE", "S_FLAT": "SKIPPED", "S_PHOTOM": "SKIPPED"}
    assert products.i2d is not None and products.i2d.meta.status["S_RESAMP"] == "COMPLETE"
    assert products.cal.meta.refs["R_FLAT"] == "N/A"
    np.testing.assert_array_equal(products.cal.sci[np.isfinite(products.cal.sci)],
                                  exposure.sci[np.isfinite(products.cal.sci)])
    assert exposure.meta.status.get("S_WCS") is None  # input untouched


def test_skipped_by_configuration_marks_skipped_and_ignores_a_misfit_reference(exposure):
    misfit = FlatReference("crds://small.fits", np.ones((10, 10)), np.zeros((10, 10)), np.zeros((10, 10)))
    config = build_config(overrides=["flat_field.skip=true", "resample.skip=true"])
    products = calibrate(exposure, References(flat=misfit), config)
    assert _statuses(products)["S_FLAT"] == "SKIPPED" and _statuses(products)["S_RESAMP"] == "SKIPPED"
    assert products.i2d is None
    assert products.cal.meta.provenance[-1].notes == ("skipped by configuration",)


def test_tso_skips_background_and_resample(exposure):
    tso = exposure.evolve(meta=exposure.meta.evolve(exposure=attrs.evolve(exposure.meta.exposure, tsovisit=True)))
    products = calibrate(tso, References(), backgrounds=[exposure])
    assert _statuses(products)["S_BKDSUB"] == "SKIPPED" and _statuses(products)["S_RESAMP"] == "SKIPPED"
    assert products.i2d is None and products.background is None


def test_cubes_are_never_resampled_and_leave_no_resample_status(tmp_path: Path):
    cube = read_exposure(make_rate(tmp_path / "c_rateints.fits", shape=(3, 16, 20)))
    products = calibrate(cube, References())
    assert products.i2d is None and "S_RESAMP" not in products.cal.meta.status
    assert products.cal.sci.shape == (3, 16, 20)


def test_background_runs_only_with_members_and_bsub_only_when_asked(exposure, tmp_path: Path):
    member = read_exposure(make_rate(tmp_path / "b_rate.fits", shape=(48, 64), seed=5))
    plain = calibrate(exposure, References(), build_config(overrides=["resample.skip=true"]), [member])
    assert plain.cal.meta.status["S_BKDSUB"] == "COMPLETE" and plain.bsub is None
    saved = calibrate(exposure, References(), build_config({"save_bsub": True}), [member])
    np.testing.assert_array_equal(saved.bsub.sci, (exposure.sci - saved.background.data).astype(np.float32))


def test_plan_explains_every_step(exposure):
    steps = {s.name: s for s in plan(exposure, References(), build_config(overrides=["photom.skip=true"]))}
    assert steps["bkg_subtract"].applies is False and steps["bkg_subtract"].reason == "no background members"
    assert steps["dark_current"].applies is False
    assert steps["photom"].applies and not steps["photom"].runs and steps["photom"].reason == "skipped by configuration"
    assert steps["resample"].runs and steps["resample"].reason == "2-D NRC_IMAGE"


def test_chunks_of_integrations_calibrate_as_the_whole_cube(tmp_path: Path):
    cube = read_exposure(make_rate(tmp_path / "c_rateints.fits", shape=(5, 16, 20)))
    member = read_exposure(make_rate(tmp_path / "b_rateints.fits", shape=(2, 16, 20), seed=4))
    config = build_config({"save_bsub": True})
    whole = calibrate(cube, References(), config, [member])
    chunks = [cube.integrations(0, 2), cube.integrations(2, 4), cube.integrations(4, 5)]
    parts = list(calibrate_chunks(iter(chunks), References(), config, [member]))
    assert [part.cal.nints for part in parts] == [2, 2, 1]
    for name in ("sci", "err", "dq", "var_poisson", "var_rnoise"):
        stacked = np.concatenate([getattr(part.cal, name) for part in parts])
        assert stacked.tobytes() == getattr(whole.cal, name).tobytes(), name
    assert np.concatenate([part.bsub.sci for part in parts]).tobytes() == whole.bsub.sci.tobytes()
    assert all(part.background is parts[0].background for part in parts)  # combined once, for every chunk
    assert parts[0].cal.meta.provenance == whole.cal.meta.provenance


def test_the_cal_is_told_settled_before_resample_and_is_the_record_returned(exposure):
    told: list = []

    def settled(cal) -> None:
        assert "S_RESAMP" not in cal.meta.status and cal.meta.status["S_WCS"] == "COMPLETE"
        told.append(cal)

    products = calibrate(exposure, References(), settled=settled)
    assert len(told) == 1 and told[0] is products.cal and products.i2d is not None


def test_a_cal_that_a_skipped_resample_still_stamps_is_never_told_settled(exposure):
    told: list = []
    products = calibrate(exposure, References(), build_config(overrides=["resample.skip=true"]), settled=told.append)
    assert told == [] and products.cal.meta.status["S_RESAMP"] == "SKIPPED"
