"""The one mechanism that stamps status, references and parameters of a step into the record.

A step is written as a plain function ``f(exposure, *references, **parameters) -> Exposure``
decorated with :func:`step`. Raising :class:`StepSkipped` inside it means "decided not to
act": the input comes back with the status SKIPPED and the reason in its provenance.
Returning :class:`Outcome` instead of an Exposure attaches notes (warnings for the caller
to log) to the record.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from image2.core.exposure import Exposure
from image2.core.meta import StepRecord
from image2.core.references import NOT_APPLICABLE, REFERENCE_CLASSES
from image2.core.steps import family_of, status_keyword

COMPLETE = "COMPLETE"
SKIPPED = "SKIPPED"

F = TypeVar("F", bound=Callable[..., Any])


class StepSkipped(Exception):
    """Raised by a step that decides not to act; the message is the reason."""


@attrs.frozen
class Outcome:
    """A step's result with notes worth telling the user (they go into the provenance)."""

    exposure: Exposure
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)


def _reference_parameters(signature: inspect.Signature) -> dict[str, str]:
    """Map parameter names annotated with a reference class to that class's R_* keyword."""
    by_name = {cls.__name__: cls.keyword for cls in REFERENCE_CLASSES}
    found = {}
    for name, parameter in signature.parameters.items():
        annotation = str(parameter.annotation)
        for class_name, keyword in by_name.items():
            if class_name in annotation:
                found[name] = keyword
    return found


def _plain(value: Any) -> Any:
    """A parameter value as plain data for the provenance record."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def stamp(exposure: Exposure, name: str, status: str, parameters: dict[str, Any],
          references: dict[str, str], notes: tuple[str, ...] = ()) -> Exposure:
    """Return ``exposure`` with step ``name``'s status, R_* records and provenance added."""
    meta = exposure.meta
    keyword = status_keyword(name, family_of(meta))
    if keyword is not None:
        meta = meta.with_status(keyword, status)
    meta = meta.with_refs(references)
    record = StepRecord(name, status, parameters, references, notes)
    return exposure.evolve(meta=meta.evolve(provenance=(*meta.provenance, record)))


def skip(exposure: Exposure, name: str, reason: str) -> Exposure:
    """Return ``exposure`` marked as having skipped step ``name`` (e.g. skipped by configuration)."""
    return stamp(exposure, name, SKIPPED, {}, {}, (reason,))


def step(name: str) -> Callable[[F], F]:
    """Decorate a step function so every call records its status, references and parameters."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)
        reference_params = _reference_parameters(signature)

        @functools.wraps(function)
        def wrapper(exposure: Exposure, *args: Any, **kwargs: Any) -> Exposure:
            bound = signature.bind(exposure, *args, **kwargs)
            bound.apply_defaults()
            references = {keyword: getattr(bound.arguments[param], "source", NOT_APPLICABLE)
                          if bound.arguments[param] is not None else NOT_APPLICABLE
                          for param, keyword in reference_params.items()}
            first = next(iter(signature.parameters))
            parameters = {key: _plain(value) for key, value in bound.arguments.items()
                          if key != first and key not in reference_params
                          and signature.parameters[key].kind is inspect.Parameter.KEYWORD_ONLY}
            try:
                result = function(*bound.args, **bound.kwargs)
            except StepSkipped as skipped:
                return stamp(exposure, name, SKIPPED, parameters, references, (str(skipped),))
            outcome = result if isinstance(result, Outcome) else Outcome(result)
            return stamp(outcome.exposure, name, COMPLETE, parameters, references, outcome.notes)

        wrapper.step_name = name  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
