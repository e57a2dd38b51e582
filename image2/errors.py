"""Exceptions shared by every layer; each names the file or item it concerns.

Those about the data (an input, a reference, a step) are also ValueErrors, the built-in exception a
library user catches for a value that cannot be used.
"""

from __future__ import annotations


class Image2Error(Exception):
    """Base class of the errors image2 reports to users without a traceback."""


class InvalidInputError(Image2Error, ValueError):
    """An input file or association that cannot be processed as given."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ReferenceFileError(Image2Error, ValueError):
    """A reference file that is malformed, ambiguous or does not fit the exposure."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MissingReferenceError(ReferenceFileError):
    """Reference files an exposure needs that were not found: calibrating without them would be partial."""

    def __init__(self, path: object, reftypes: tuple[str, ...], exposure: str = "") -> None:
        self.reftypes = reftypes
        names = ", ".join(reftype.upper() for reftype in reftypes)
        skips = " ".join(f"--ref {reftype}=N/A" for reftype in reftypes)
        super().__init__(path, f"no {names} reference found{f' for {exposure}' if exposure else ''}; "
                               f"give reference files with --refs DIR or $CRDS_PATH (`image2 refs` shows why "
                               f"none matched), or calibrate without on purpose with {skips}")


class StepError(Image2Error, ValueError):
    """A calibration step that cannot run on the exposure it was given."""

    def __init__(self, step: str, problem: str) -> None:
        self.step = step
        self.problem = problem
        super().__init__(f"{step}: {problem}")


class OutputConflictError(Image2Error):
    """A product's destination that must not be written: a symlink, or a file the run did not leave there."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
