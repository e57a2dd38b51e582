"""Typed results: each failure's kind is set where the exception is caught, from what was raised."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from image2.core.config import ConfigError
from image2.errors import InvalidInputError, MissingReferenceError, ReferenceFileError, StepError
from image2.io.atomic import ProductExistsError, Staging
from image2.run.options import RunOptions
from image2.run.process import process_input
from image2.run.results import FAILED, Failure, FailureKind, failure_of
from image2.synthetic import references as rf
from image2.synthetic.exposures import make_rate


@pytest.mark.parametrize("error, expected", [
    (InvalidInputError("x_rate.fits", "no SCI extension"), Failure(FailureKind.INVALID_INPUT, "no SCI extension")),
    (MissingReferenceError("x_rate.fits", ("flat",)), FailureKind.MISSING_REFERENCE),
    (ReferenceFileError("flat.fits", "not 2-D"), Failure(FailureKind.REFERENCE, "flat.fits: not 2-D")),
    (StepError("photom", "no row"), Failure(FailureKind.STEP, "photom: no row")),
    (ConfigError("unknown step 'x'"), Failure(FailureKind.CONFIGURATION, "unknown step 'x'")),
    (OSError(errno.ENOSPC, "No space left on device"),
     Failure(FailureKind.IO, "[Errno 28] No space left on device", errno.ENOSPC)),
    (ProductExistsError(Path("x_cal.fits")), FailureKind.IO),
    (KeyError("oops"), Failure(FailureKind.INTERNAL, "KeyError: 'oops'")),
])
def test_each_exception_class_gives_its_kind(error, expected):
    failure = failure_of(error)
    if isinstance(expected, Failure):
        assert failure == expected
    else:
        assert failure.kind is expected


@pytest.fixture
def rate(tmp_path: Path) -> Path:
    return make_rate(tmp_path / "x_rate.fits", shape=(48, 64), primary={"SUBSTRT1": 101, "SUBSTRT2": 201})


def _only(results):
    (result,) = results
    assert result.status == FAILED
    return result


def test_a_missing_reference_is_its_kind(rate: Path, tmp_path: Path):
    result = _only(process_input(rate, RunOptions(output_dir=tmp_path / "out")))
    assert result.failure.kind is FailureKind.MISSING_REFERENCE and "no DISTORTION" in result.error


def test_a_corrupt_input_is_invalid(rate: Path, tmp_path: Path):
    corrupt = tmp_path / "c_rate.fits"
    corrupt.write_bytes(rate.read_bytes()[:4000])
    result = _only(process_input(corrupt, RunOptions(output_dir=tmp_path / "out")))
    assert result.failure.kind is FailureKind.INVALID_INPUT and str(corrupt) in result.error


def test_a_reference_that_does_not_fit_is_a_reference_failure(rate: Path, tmp_path: Path):
    elsewhere = rf.make_flat(tmp_path / "flat.fits", shape=(60, 80), detector="NRCB1", substrt=(300, 300))
    overrides = {"flat": str(elsewhere), **{t: "N/A" for t in ("distortion", "filteroffset", "photom", "area")}}
    result = _only(process_input(rate, RunOptions(output_dir=tmp_path / "out", overrides=overrides)))
    assert result.failure.kind is FailureKind.REFERENCE and "bad reference slice" in result.error


def test_a_configuration_problem_is_not_blamed_on_the_input(rate: Path, tmp_path: Path):
    config = tmp_path / "steps.toml"
    config.write_text("[steps.flat_field]\nnot_a_parameter = 1\n")
    result = _only(process_input(rate, RunOptions(output_dir=tmp_path / "out", config_file=config)))
    assert result.failure.kind is FailureKind.CONFIGURATION and "not_a_parameter" in result.error


def test_an_operating_system_error_keeps_its_number(rate: Path, tmp_path: Path, monkeypatch):
    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Staging, "publish", full)
    overrides = {t: "N/A" for t in ("distortion", "filteroffset", "flat", "photom", "area")}
    result = _only(process_input(rate, RunOptions(output_dir=tmp_path / "out", overrides=overrides)))
    assert result.failure == Failure(FailureKind.IO, "[Errno 28] No space left on device", errno.ENOSPC)
    assert not list((tmp_path / "out").iterdir())
