"""The step decorator: statuses, reference records, parameters and skips in one place."""

from __future__ import annotations

import numpy as np

from image2.core.exposure import Exposure
from image2.core.provenance import Outcome, StepSkipped, skip, step
from image2.core.references import FlatReference


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
