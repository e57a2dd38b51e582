"""Which stage-2 steps run for an exposure, and why (pipeline.md §2, §4), from the step registry."""

from __future__ import annotations

from collections.abc import Collection

import attrs

from image2.core.meta import Meta
from image2.core.steps import Situation, Step, declaration, family_of, steps_for

TSO_EXP_TYPES = frozenset({"NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ"})


@attrs.frozen
class PlannedStep:
    """One step of the plan.

    ``applies``: the step belongs to this exposure's pipeline (jwst would invoke it);
    ``runs``: it applies and is neither disabled by configuration, nor skipped for TSO, nor
    declined for this exposure. A step that applies but does not run is marked SKIPPED; one that
    does not apply leaves no status keyword.
    """

    name: str
    applies: bool
    runs: bool
    reason: str


def is_tso(meta: Meta) -> bool:
    """True for a time-series exposure: TSOVISIT set, or a TSO EXP_TYPE."""
    return bool(meta.exposure.tsovisit) or (meta.exposure.type or "").upper() in TSO_EXP_TYPES


def planned(declared: Step, situation: Situation, skipped: bool = False) -> PlannedStep:
    """Return whether one declared step runs in ``situation`` and why; ``skipped``: configuration disables it."""
    applicable, reason = declared.applies(situation)
    if not applicable:
        return PlannedStep(declared.name, False, False, reason)
    if skipped:
        return PlannedStep(declared.name, True, False, "skipped by configuration")
    if not declared.time_series and is_tso(situation.meta):
        return PlannedStep(declared.name, True, False, "time-series exposure")
    declined = declared.declines(situation) if declared.declines is not None else None
    if declined is not None:
        return PlannedStep(declared.name, True, False, declined)
    return PlannedStep(declared.name, True, True, reason)


def plan_steps(
    meta: Meta,
    *,
    cube: bool,
    n_background: int = 0,
    extensions: Collection[str] = (),
    supplied: Collection[str] = (),
    skip: Collection[str] = (),
    requested: Collection[str] = (),
) -> tuple[PlannedStep, ...]:
    """Return the stage-2 steps of the exposure's instrument family in order, with whether each runs and why.

    ``extensions``: the exposure's extra extensions (e.g. SUBARR_MAP); ``supplied``: the reference
    types at hand; ``skip``: the steps configuration disables; ``requested``: the steps it asks for
    where the family does not run them by default.
    """
    situation = Situation(meta, cube, n_background, extensions, supplied, requested)
    return tuple(planned(declared, situation, declared.name in skip) for declared in steps_for(family_of(meta)))


def plan_step(name: str, meta: Meta, *, cube: bool) -> PlannedStep:
    """Return whether step ``name`` runs on an exposure of ``meta`` by the registry's rules alone (no
    configuration, members or references): what a step function called on its own checks. Calling
    it asks for it, so an opt-in step counts as requested."""
    return planned(declaration(name, family_of(meta)), Situation(meta, cube, requested={name}))
