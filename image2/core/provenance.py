"""The one step contract: the decorator that stamps status, references and parameters into the record.

Every step function is declared in :mod:`image2.core.steps` and decorated with :func:`step`; it is a
plain function ``f(exposure, *inputs, **parameters)`` whose inputs are those its declaration takes
(reference records by their type's name, or the combined background) and whose keyword-only
parameters are its configuration. Raising :class:`StepSkipped` inside it means "decided not to
act": the input comes back with the status SKIPPED and the reason in its provenance. Returning
:class:`Outcome` instead of a record attaches notes (warnings for the caller to log). A step
declared to make a new record (``makes``: resample's i2d) returns that record, which is stamped
instead of the exposure; the exposure itself is left as it was.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import numpy as np

from image2.core.exposure import Exposure
from image2.core.meta import StepRecord
from image2.core.references import NOT_APPLICABLE, REFERENCE_KEYWORDS
from image2.core.steps import configured_names, declaration, family_of, status_keyword

COMPLETE = "COMPLETE"
SKIPPED = "SKIPPED"
CUSTOM = "custom"
"""What the provenance records for a parameter given as an object (e.g. a gwcs) rather than plain data."""

F = TypeVar("F", bound=Callable[..., Any])


class StepSkipped(Exception):
    """Raised by a step that decides not to act; the message is the reason."""


@attrs.frozen
class Outcome:
    """A step's result (the exposure, or the record it makes) with notes worth telling the user."""

    record: Any
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen
class Ran:
    """What running a step gave: the exposure to go on with and, for a step that makes one, the new record."""

    exposure: Exposure
    made: Any = None


def _plain(value: Any) -> Any:
    """A parameter value as plain data for the provenance record."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return CUSTOM


def stamp(record: Any, name: str, keyword: str | None, status: str, parameters: dict[str, Any],
          references: dict[str, str], notes: tuple[str, ...] = ()) -> Any:
    """Return ``record`` with step ``name``'s status (under ``keyword``), R_* records and provenance added."""
    meta = record.meta
    if keyword is not None:
        meta = meta.with_status(keyword, status)
    meta = meta.with_refs(references)
    entry = StepRecord(name, status, parameters, references, notes)
    return attrs.evolve(record, meta=meta.evolve(provenance=(*meta.provenance, entry)))


def skip(exposure: Exposure, name: str, reason: str) -> Exposure:
    """Return ``exposure`` marked as having skipped step ``name`` (e.g. skipped by configuration)."""
    return stamp(exposure, name, status_keyword(name, family_of(exposure.meta)), SKIPPED, {}, {}, (reason,))


def step(name: str, family: str | None = None) -> Callable[[F], F]:
    """Decorate the function of declared step ``name`` (``family``'s variant when given) so that every
    call records its status, references and parameters.

    The decorated function also has ``run(exposure, *inputs, **parameters) -> Ran``, which the
    pipeline calls: the same for every kind of step.
    """
    declared = declaration(name, family)

    def decorate(function: F) -> F:
        signature = inspect.signature(function)
        missing = [taken for taken in declared.takes if taken not in signature.parameters]
        if missing:
            raise TypeError(f"step {name}: {function.__qualname__} lacks the declared input(s) {', '.join(missing)}")
        keywords = {taken: REFERENCE_KEYWORDS[taken] for taken in declared.takes if taken in REFERENCE_KEYWORDS}
        first = next(iter(signature.parameters))
        own = tuple(key for key, parameter in signature.parameters.items()
                    if key != first and parameter.kind is inspect.Parameter.KEYWORD_ONLY)
        made_with = configured_names(declared) if declared.parameters_of else ()

        def recorded(arguments: dict[str, Any]) -> dict[str, Any]:
            """The parameters to record: the function's own, or those its first input was made with."""
            if declared.parameters_of:
                source = arguments[declared.takes[0]]
                return {} if source is None else {key: _plain(getattr(source, key)) for key in made_with}
            return {key: _plain(arguments[key]) for key in own}

        def run(exposure: Exposure, *args: Any, **kwargs: Any) -> Ran:
            bound = signature.bind(exposure, *args, **kwargs)
            bound.apply_defaults()
            references = {keyword: getattr(bound.arguments[param], "source", NOT_APPLICABLE)
                          if bound.arguments[param] is not None else NOT_APPLICABLE
                          for param, keyword in keywords.items()}
            parameters = recorded(bound.arguments)
            try:
                result = function(*bound.args, **bound.kwargs)
            except StepSkipped as skipped:
                return Ran(stamp(exposure, name, declared.status, SKIPPED, parameters, references, (str(skipped),)))
            outcome = result if isinstance(result, Outcome) else Outcome(result)
            stamped = stamp(outcome.record, name, declared.status, COMPLETE, parameters, references, outcome.notes)
            return Ran(exposure, stamped) if declared.makes else Ran(stamped)

        @functools.wraps(function)
        def wrapper(exposure: Exposure, *args: Any, **kwargs: Any) -> Any:
            ran = run(exposure, *args, **kwargs)
            return ran.exposure if ran.made is None else ran.made

        wrapper.run = run  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
