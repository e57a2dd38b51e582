"""What became of one product: done, skipped or failed; and for a failure, which kind of failure.

The kind is set where the exception is caught, from its class, so that callers (the command
line's exit code, the watch daemon's retry or quarantine) never read it back from a message.
"""

from __future__ import annotations

import enum
import errno
from pathlib import Path

import attrs

from image2.core.config import ConfigError
from image2.errors import (Image2Error, InvalidInputError, MissingReferenceError, OutputConflictError,
                           ReferenceFileError, StepError)
from image2.io.atomic import ProductExistsError

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


class FailureKind(enum.StrEnum):
    """Why a product could not be made."""

    INVALID_INPUT = "invalid-input"
    """The input file or association (or one of its members) cannot be processed as given."""
    MISSING_REFERENCE = "missing-reference"
    """A reference the exposure requires was not found."""
    REFERENCE = "reference"
    """A reference file is malformed, ambiguous or does not fit the exposure."""
    CONFIGURATION = "configuration"
    """The step configuration (file, overrides or a file it names) is unusable."""
    IO = "io"
    """An operating-system error reading or writing files (``errno`` says which)."""
    STEP = "step"
    """A step cannot run on the exposure it was given."""
    INTERNAL = "internal"
    """A defect of image2 (an unexpected exception)."""


@attrs.frozen
class Failure:
    """A failure's kind, the problem in words (without the input's name), and the OS error number if any."""

    kind: FailureKind
    problem: str
    errno: int | None = None


@attrs.frozen
class ProductResult:
    """The outcome of one product: ``done``, ``skipped`` (products exist) or ``failed``."""

    input: Path
    product: str
    status: str
    outputs: tuple[Path, ...] = ()
    error: str | None = None
    """Why the product failed or was skipped, in words (naming the file)."""
    seconds: float = 0.0
    failure: Failure | None = None
    """For a failed product: what kind of failure."""
    skipped_steps: tuple[str, ...] = ()
    """For a done product, each step it skipped and why (e.g. ``flat_field SKIPPED: --ref flat=N/A``)."""


def failure_of(error: BaseException) -> Failure:
    """Return the kind of failure an exception caught while processing an input stands for."""
    problem = getattr(error, "problem", None) or str(error)
    if isinstance(error, InvalidInputError):
        return Failure(FailureKind.INVALID_INPUT, problem)
    if isinstance(error, MissingReferenceError):
        return Failure(FailureKind.MISSING_REFERENCE, problem)
    if isinstance(error, ReferenceFileError):
        return Failure(FailureKind.REFERENCE, str(error))
    if isinstance(error, StepError):
        return Failure(FailureKind.STEP, str(error))
    if isinstance(error, ConfigError):
        return Failure(FailureKind.CONFIGURATION, str(error))
    if isinstance(error, OutputConflictError):
        return Failure(FailureKind.IO, str(error), errno.EEXIST)
    if isinstance(error, ProductExistsError):
        return Failure(FailureKind.IO, str(error), errno.EEXIST)
    if isinstance(error, OSError):
        return Failure(FailureKind.IO, str(error), error.errno)
    if isinstance(error, Image2Error):  # an error of ours not classified above
        return Failure(FailureKind.INTERNAL, str(error))
    return Failure(FailureKind.INTERNAL, f"{type(error).__name__}: {error}")
