"""The step decorator: statuses, reference records, parameters and skips in one place."""

from __future__ import annotations

import numpy as np
import pytest

from image2.core.background import CombinedBackground, bkg_subtract
from image2.core.exposure import Exposure
from image2.core.provenance import Outcome, StepSkipped, skip, step
from image2.core.references import FlatReference
from image2.core.resample import Resampled, resample
from tests.resample_inputs import cal_exposure


@step("flat_field")
def _scale(exposure: Exposure, flat: FlatReference | None, *, factor: float = 2.0) -> Exposure | Outcome:
    if flat is None:
        raise StepSkipped("no FLAT reference")
    return Outcome(exposure.evolve(sci=exposure.sci * factor), notes=("scaled",))


def _exposure() -> Exposure:
    return Exposure(sci=np.ones((2, 2)), err=np.zeros((2, 2)), dq=np.zeros((2, 2)))


def _flat() -> FlatReference:
    return FlatReference("crds://jwst_nircam_flat_0001.fits", np.ones((2, 2)), np.zeros((2, 2)), np.zeros((2, 2)))


def test_complete_step_records_status_reference_parameters_and_notes():
    out = _scale(_exposure(), _flat(), factor=3.0)
    assert out.sci[0, 0] == 3.0
    assert out.meta.status == {"S_FLAT": "COMPLETE"}
    assert out.meta.refs == {"R_FLAT": "crds://jwst_nircam_flat_0001.fits"}
    (record,) = out.meta.provenance
    assert (record.step, record.status, dict(record.parameters), record.notes) == (
        "flat_field", "COMPLETE", {"factor": 3.0}, ("scaled",))


def test_skipped_step_returns_input_arrays_with_reason():
    exposure = _exposure()
    out = _scale(exposure, None)
    assert np.shares_memory(out.sci, exposure.sci)  # no copy of the arrays
    assert out.meta.status == {"S_FLAT": "SKIPPED"} and out.meta.refs == {"R_FLAT": "N/A"}
    assert out.meta.provenance[0].notes == ("no FLAT reference",)
    assert exposure.meta.status == {}  # input untouched


def test_skip_by_configuration():
    out = skip(_exposure(), "photom", "skipped by configuration")
    assert out.meta.status == {"S_PHOTOM": "SKIPPED"}
    assert out.meta.provenance[0].notes == ("skipped by configuration",)


def test_a_function_lacking_a_declared_input_is_refused_when_decorated():
    with pytest.raises(TypeError, match="lacks the declared input"):
        @step("photom")
        def _no_area(exposure: Exposure, photom: object) -> Exposure:
            return exposure


def test_references_are_recorded_by_the_declared_inputs_not_by_annotation():
    @step("flat_field")
    def _untyped(exposure: Exposure, flat, *, gain=1.0):
        return exposure

    out = _untyped(_exposure(), _flat(), gain=np.float32(2.0))
    assert out.meta.refs == {"R_FLAT": "crds://jwst_nircam_flat_0001.fits"}
    assert dict(out.meta.provenance[0].parameters) == {"gain": 2.0}


def test_a_step_that_makes_a_new_record_stamps_it_and_leaves_the_exposure_alone():
    exposure = cal_exposure((40, 48))
    ran = resample.run(exposure, output_wcs=None, pixfrac=0.5)
    assert ran.exposure is exposure and isinstance(ran.made, Resampled)
    assert ran.made.meta.status["S_RESAMP"] == "COMPLETE" and "S_RESAMP" not in exposure.meta.status
    record = ran.made.meta.provenance[-1]
    assert record.step == "resample" and record.parameters["pixfrac"] == 0.5 and record.parameters["output_wcs"] is None
    assert resample(exposure).sci.shape == resample.run(exposure).made.sci.shape  # the plain call gives the i2d
    custom = resample.run(exposure, output_wcs=ran.made.wcs, output_shape=list(ran.made.shape[::-1]))
    assert custom.made.meta.provenance[-1].parameters["output_wcs"] == "custom"


def test_a_made_record_that_is_declined_marks_the_exposure_instead():
    exposure = cal_exposure((40, 48), exposure={"effexptm": None})
    ran = resample.run(exposure)
    assert ran.made is None and ran.exposure.meta.status["S_RESAMP"] == "SKIPPED"


def test_background_parameters_are_recorded_as_parameters():
    science = _exposure()
    combined = CombinedBackground(data=np.ones((2, 2), np.float32), err=np.zeros((2, 2), np.float32),
                                  dq=np.zeros((2, 2), np.uint32), members=("b1", "b2"), sigma=2.5, maxiters=4)
    out = bkg_subtract(science, combined)
    (record,) = out.meta.provenance
    assert dict(record.parameters) == {"sigma": 2.5, "maxiters": 4}
    assert not any("sigma=" in note or "maxiters" in note for note in record.notes)
    assert dict(bkg_subtract(science, None).meta.provenance[0].parameters) == {}
