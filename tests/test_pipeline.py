"""The pipeline as data: the plan, status semantics and composition of the steps (no files written)."""

from __future__ import annotations

import weakref
from pathlib import Path

import attrs
import numpy as np
import pytest

from image2.core.background import combine_backgrounds
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
    assert plain.background is None  # let go once subtracted: it is not saved
    saved = calibrate(exposure, References(), build_config({"save_bsub": True}), [member])
    combined = combine_backgrounds(exposure, [member])
    np.testing.assert_array_equal(saved.bsub.sci, (exposure.sci - combined.data).astype(np.float32))
    kept = calibrate(exposure, References(),
                     build_config(overrides=["resample.skip=true", "bkg_subtract.save_combined_background=true"]),
                     [member])
    assert kept.background.data.tobytes() == combined.data.tobytes()


def test_plan_explains_every_step(exposure):
    steps = {s.name: s for s in plan(exposure, References(), build_config(overrides=["photom.skip=true"]))}
    assert steps["bkg_subtract"].applies is False and steps["bkg_subtract"].reason == "no background members"
    assert steps["dark_current"].applies is False
    assert steps["photom"].applies and not steps["photom"].runs and steps["photom"].reason == "skipped by configuration"
    assert steps["resample"].runs and steps["resample"].reason == "2-D NRC_IMAGE"


def test_chunks_of_integrations_calibrate_as_the_whole_cube(tmp_path: Path):
    cube = read_exposure(make_rate(tmp_path / "c_rateints.fits", shape=(5, 16, 20)))
    member = read_exposure(make_rate(tmp_path / "b_rateints.fits", shape=(2, 16, 20), seed=4))
    config = build_config({"save_bsub": True}, overrides=["bkg_subtract.save_combined_background=true"])
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


class _Alive:
    """Weak references to records handed to the pipeline, and which were still alive as each step ended."""

    def __init__(self) -> None:
        self.refs: dict[str, weakref.ref] = {}
        self.after: dict[str, set[str]] = {}

    def tracked(self, name: str, record):
        self.refs[name] = weakref.ref(record)
        return record

    def alive(self) -> set[str]:
        return {name for name, ref in self.refs.items() if ref() is not None}

    def planned(self, steps) -> None:
        pass

    def started(self, step: str) -> None:
        pass

    def ended(self, step: str, status: str, notes) -> None:
        self.after[step] = self.alive()


def test_each_input_is_let_go_after_the_last_step_that_takes_it(exposure, tmp_path: Path, monkeypatch):
    """Handed over (a generator of chunks, references and members held by calibrate_chunks alone), the exposure
    read is freed by its first step, the members once combined, the combined background after bkg_subtract
    and the flat after flat_field, while the later steps run."""
    import image2.core.pipeline as pipeline

    alive = _Alive()
    combine = pipeline.combine_backgrounds
    monkeypatch.setattr(pipeline, "combine_backgrounds", lambda *a, **k: alive.tracked("background", combine(*a, **k)))
    path = tmp_path / "x_rate.fits"  # written by the fixture
    member = make_rate(tmp_path / "b_rate.fits", shape=(48, 64), seed=5)
    shape = exposure.shape

    def chunks():
        yield alive.tracked("exposure", read_exposure(path))

    calibrated = calibrate_chunks(
        chunks(),
        References(flat=alive.tracked("flat", FlatReference(
            "crds://flat.fits", np.full(shape, 2, np.float32), np.zeros(shape, np.float32), np.zeros(shape, np.uint32),
            exposure.meta.subarray))),
        build_config(), [alive.tracked("member", read_exposure(member))], alive)
    products = next(calibrated)
    assert alive.after["bkg_subtract"] == {"background", "flat"}  # the exposure read and the member are gone
    assert alive.after["flat_field"] == {"flat"}  # let go right after the step that takes it
    assert alive.after["photom"] == alive.after["resample"] == set()
    assert products.cal.meta.status["S_FLAT"] == "COMPLETE" and products.i2d is not None
    assert products.background is None


def test_a_cube_keeps_its_inputs_for_every_chunk_and_a_2d_exposure_is_one_chunk(tmp_path: Path):
    cube = read_exposure(make_rate(tmp_path / "c_rateints.fits", shape=(4, 16, 20)))
    shape = cube.shape
    flat = FlatReference("crds://flat.fits", np.full(shape, 2, np.float32), np.zeros(shape, np.float32),
                         np.zeros(shape, np.uint32), cube.meta.subarray)
    parts = list(calibrate_chunks(iter([cube.integrations(0, 2), cube.integrations(2, 4)]), References(flat=flat)))
    assert [part.cal.meta.status["S_FLAT"] for part in parts] == ["COMPLETE", "COMPLETE"]
    whole = calibrate(cube, References(flat=flat))
    assert np.concatenate([part.cal.sci for part in parts]).tobytes() == whole.cal.sci.tobytes()
    image = read_exposure(make_rate(tmp_path / "x_rate.fits", shape=(16, 20)))
    with pytest.raises(ValueError, match="one chunk"):
        list(calibrate_chunks(iter([image, image]), References()))


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


def test_a_cube_is_never_told_settled(tmp_path: Path):
    told: list = []
    cube = read_exposure(make_rate(tmp_path / "c_rateints.fits", shape=(3, 16, 20)))
    calibrate(cube, References(), settled=told.append)
    assert told == []
