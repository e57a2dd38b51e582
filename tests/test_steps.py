"""The step registry: one declaration per step (and per family variant) that everything else derives from."""

from __future__ import annotations

import inspect
from pathlib import Path

import attrs
import numpy as np
import pytest

from image2.core import steps
from image2.core.config import build_config, defaults
from image2.core.exposure import Exposure
from image2.core.meta import ExposureInfo, Instrument, Meta
from image2.core.naming import product_filename, strip_suffix
from image2.core.plan import plan_step, plan_steps
from image2.core.pipeline import calibrate
from image2.core.provenance import step
from image2.core.references import REFTYPES, FlatReference, References
from image2.core.steps import (
    JWST,
    LIGER,
    LIGER_FORMAT,
    OPTIONAL,
    STEPS,
    Step,
    Uses,
    declaration,
    family_of,
    needed_reftypes,
    reftype_order,
    required_reftypes,
    status_keyword,
    step_names,
    steps_for,
)
from image2.io.fits import read_exposure
from image2.synthetic.exposures import make_rate


def meta(instrument: str, exp_type: str | None = None, **exposure) -> Meta:
    return Meta(instrument=Instrument(name=instrument), exposure=ExposureInfo(type=exp_type, **exposure))


# The required reference types per instrument (issue 12): a missing one fails the exposure.
@pytest.mark.parametrize("instrument, needed, required", [
    ("NIRCAM", ("distortion", "filteroffset", "flat", "photom", "area"),
     ("distortion", "filteroffset", "flat", "photom", "area")),
    ("MIRI", ("distortion", "filteroffset", "flat", "photom", "area"),
     ("distortion", "filteroffset", "flat", "photom", "area")),
    ("NIRISS", ("distortion", "filteroffset", "flat", "photom", "area"), ("distortion", "flat", "photom", "area")),
    ("FGS", ("distortion", "flat", "photom", "area"), ("distortion", "flat", "photom", "area")),
    ("LIGER", ("distortion", "dark", "flat", "photom", "area"), ("flat",)),
    ("IRIS", ("distortion", "dark", "flat", "photom", "area"), ("flat",)),
])
def test_needed_and_required_reference_types_per_instrument(instrument, needed, required):
    assert needed_reftypes(meta(instrument)) == needed
    assert required_reftypes(meta(instrument)) == required


def test_every_declaration_names_a_decorated_function_taking_its_inputs():
    for declared in STEPS:
        function = declared.function
        assert callable(getattr(function, "run", None)), declared.name
        parameters = inspect.signature(function).parameters
        assert all(taken in parameters for taken in declared.takes), declared.name
        assert set(declared.takes) <= {*REFTYPES, "background"}, declared.name


def test_each_family_runs_every_step_once_in_one_order():
    order = ("bkg_subtract", "parse_subarray_map", "assign_wcs", "dark_current", "flat_field", "photom", "resample")
    assert step_names() == (*order[:5], "sky_sub", *order[5:])
    for family in (JWST, LIGER):
        assert tuple(declared.name for declared in steps_for(family)) == order
    assert tuple(declared.name for declared in steps_for(LIGER_FORMAT)) == (*order[:5], "sky_sub", "resample")
    assert declaration("dark_current", LIGER).family == LIGER and declaration("flat_field", LIGER).family is None
    assert family_of(meta("IRIS")) == LIGER and family_of(meta("NIRCAM")) == JWST
    assert family_of(attrs.evolve(meta("IRIS"), layout="liger")) == LIGER_FORMAT


def test_the_liger_format_declares_its_own_steps_and_status_keywords():
    assert [declared.status for declared in steps_for(LIGER_FORMAT)] == [
        "S_BKDSUB", "S_PARSSA", "S_WCS", "S_DARK", "S_FLAT", "S_SKYSUB", "S_RESAMP"]
    assert all(declaration(name, LIGER_FORMAT).family == LIGER_FORMAT
               for name in ("parse_subarray_map", "assign_wcs", "dark_current", "flat_field", "sky_sub"))
    liger = attrs.evolve(meta("Liger", "SCI"), layout="liger")
    planned = {s.name: s for s in plan_steps(liger, cube=False, n_background=2)}
    assert not planned["bkg_subtract"].applies and "sky_sub" in planned["bkg_subtract"].reason
    assert planned["sky_sub"].runs and planned["sky_sub"].reason == "sky from 2 background member(s)"
    assert not planned["resample"].applies and "no resample" in planned["resample"].reason
    requested = {s.name: s for s in plan_steps(liger, cube=False, requested={"resample"})}
    assert requested["resample"].applies and "EFFEXPTM" in requested["resample"].reason  # then the usual rules
    assert needed_reftypes(liger) == ("dark", "flat") and required_reftypes(liger) == ("flat",)


def test_status_keywords_and_reference_order_come_from_the_declarations():
    assert [status_keyword(declared.name) for declared in steps_for(JWST)] == [
        "S_BKDSUB", None, "S_WCS", "S_DARK", "S_FLAT", "S_PHOTOM", "S_RESAMP"]
    assert reftype_order() == ("distortion", "filteroffset", "dark", "flat", "photom", "area")


def test_configuration_defaults_are_the_declared_functions_keywords():
    table = defaults()
    for declared in STEPS:
        signature = inspect.signature(declared.configured)
        for parameter in signature.parameters.values():
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
                assert table[declared.name][parameter.name] == parameter.default
    assert set(table["bkg_subtract"]) == {"skip", "sigma", "maxiters", "save_combined_background", "save_results"}


def test_product_names_come_from_the_declared_products():
    assert product_filename("x", "i2d") == "x_i2d.fits"
    assert product_filename("x", "bsub", cube=True) == "x_bsubints.fits"
    assert product_filename("x", "cal", cube=True) == "x_calints.fits"
    assert product_filename("x", "combinedbackground", cube=True) == "x_combinedbackground.fits"
    with pytest.raises(ValueError):
        product_filename("x", "crf")
    for declared in STEPS:
        assert strip_suffix(f"x_{declared.name}") == "x"


def test_the_one_rule_of_which_exposures_are_resampled():
    imaging = meta("NIRCAM", "NRC_IMAGE", effexptm=10.0)
    assert plan_step("resample", imaging, cube=False).runs
    assert not plan_step("resample", imaging, cube=True).applies
    assert not plan_step("resample", meta("NIRCAM", "NRC_CORON", effexptm=10.0), cube=False).applies
    timeless = plan_step("resample", meta("NIRCAM", "NRC_IMAGE", effexptm=0.0), cube=False)
    assert timeless.applies and not timeless.runs and "EFFEXPTM" in timeless.reason
    tso = plan_step("resample", meta("NIRCAM", "NRC_IMAGE", effexptm=10.0, tsovisit=True), cube=False)
    assert tso.applies and not tso.runs and tso.reason == "time-series exposure"
    planned = {step.name: step for step in plan_steps(meta("NIRCAM", "NRC_IMAGE"), cube=False)}
    assert planned["resample"].reason == plan_step("resample", meta("NIRCAM", "NRC_IMAGE"), cube=False).reason


def test_dark_current_applies_to_jwst_only_with_a_dark_and_always_to_liger():
    jwst = {s.name: s for s in plan_steps(meta("NIRCAM", "NRC_IMAGE", effexptm=1.0), cube=False)}
    with_dark = {s.name: s for s in plan_steps(meta("NIRCAM", "NRC_IMAGE", effexptm=1.0), cube=False,
                                               supplied=("dark",))}
    liger = {s.name: s for s in plan_steps(meta("IRIS", "IRIS_IMAGE"), cube=False)}
    assert not jwst["dark_current"].applies and with_dark["dark_current"].runs
    assert liger["dark_current"].runs and liger["dark_current"].reason == "Liger/IRIS exposure"


@step("flat_field", family=LIGER)
def liger_flat(exposure: Exposure, flat: FlatReference | None, *, gain: float = 2.0) -> Exposure:
    """A stand-in for a Liger/IRIS variant of flat_field: multiplies by ``gain``."""
    return exposure.evolve(sci=exposure.sci * np.float32(gain))


def test_a_family_variant_is_one_declaration_plus_its_function(monkeypatch, tmp_path: Path):
    variant = Step("flat_field", "tests.test_steps:liger_flat", status="S_FLAT", family=LIGER,
                   references=(Uses("flat", OPTIONAL),))
    at = next(i for i, declared in enumerate(steps.STEPS) if declared.name == "flat_field") + 1
    monkeypatch.setattr(steps, "STEPS", (*steps.STEPS[:at], variant, *steps.STEPS[at:]))
    assert declaration("flat_field", LIGER) is variant and declaration("flat_field", JWST).family is None
    config = build_config(overrides=["flat_field.gain=3.0", "resample.skip=true"])
    iris = read_exposure(make_rate(tmp_path / "iris_rate.fits", shape=(32, 32), primary={
        "INSTRUME": "IRIS", "DETECTOR": "IMG1", "EXP_TYPE": "IRIS_IMAGE", "FILTER": "KN3", "PUPIL": "NONE"}))
    assert "flat" not in required_reftypes(iris.meta)
    cal = calibrate(iris, References(), config).cal
    np.testing.assert_array_equal(cal.sci, iris.sci * np.float32(3.0))
    record = next(r for r in cal.meta.provenance if r.step == "flat_field")
    assert (record.status, dict(record.parameters)) == ("COMPLETE", {"gain": 3.0})
    nircam = read_exposure(make_rate(tmp_path / "x_rate.fits", shape=(32, 32)))
    assert calibrate(nircam, References(), config).cal.meta.status["S_FLAT"] == "SKIPPED"  # JWST's own flat_field
