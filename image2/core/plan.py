"""Which stage-2 steps run for an exposure, and why (pipeline.md §2, §4)."""

from __future__ import annotations

from collections.abc import Collection

import attrs

from image2.core.meta import Meta

STEP_ORDER = (
    "bkg_subtract", "parse_subarray_map", "assign_wcs", "dark_current", "flat_field",
    "photom", "resample",
)
RESAMPLED_EXP_TYPES = frozenset({"NRC_IMAGE", "NIS_IMAGE", "MIR_IMAGE", "FGS_IMAGE"})
TSO_EXP_TYPES = frozenset({"NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ"})
LIGER_INSTRUMENTS = frozenset({"IRIS", "LIGER"})


@attrs.frozen
class PlannedStep:
    """One step of the plan.

    ``applies``: the step belongs to this exposure's pipeline (jwst would invoke it);
    ``runs``: it applies and is neither disabled by configuration nor skipped for TSO.
    A step that applies but does not run is marked SKIPPED; one that does not apply leaves
    no status keyword.
    """

    name: str
    applies: bool
    runs: bool
    reason: str


def is_tso(meta: Meta) -> bool:
    """True for a time-series exposure: TSOVISIT set, or a TSO EXP_TYPE."""
    return bool(meta.exposure.tsovisit) or (meta.exposure.type or "").upper() in TSO_EXP_TYPES


def is_liger(meta: Meta) -> bool:
    """True for Liger/IRIS data, whose pipeline always runs dark_current."""
    return (meta.instrument.name or "").upper() in LIGER_INSTRUMENTS


def plan_steps(
    meta: Meta,
    *,
    cube: bool,
    n_background: int = 0,
    has_subarray_map: bool = False,
    dark_supplied: bool = False,
    skip: Collection[str] = (),
) -> tuple[PlannedStep, ...]:
    """Return the seven stage-2 steps in order with whether each runs and why."""
    tso = is_tso(meta)
    exp_type = (meta.exposure.type or "").upper()

    def applies(name: str) -> tuple[bool, str]:
        if name == "bkg_subtract":
            return (n_background > 0, f"{n_background} background member(s)" if n_background else "no background members")
        if name == "parse_subarray_map":
            return (True, "SUBARR_MAP extension present") if has_subarray_map else (False, "no SUBARR_MAP extension")
        if name == "dark_current":
            if dark_supplied:
                return True, "rate-level dark supplied"
            if is_liger(meta):
                return True, "Liger/IRIS exposure"
            return False, "JWST exposure without a rate-level dark"
        if name == "resample":
            if cube:
                return False, "3-D exposure (never resampled)"
            if exp_type not in RESAMPLED_EXP_TYPES:
                return False, f"EXP_TYPE {exp_type or '(missing)'} is not resampled"
            return True, f"2-D {exp_type}"
        return True, "always (per integration)" if cube else "always"

    def decide(name: str) -> PlannedStep:
        applicable, reason = applies(name)
        if applicable and name in skip:
            return PlannedStep(name, True, False, "skipped by configuration")
        if applicable and tso and name in ("bkg_subtract", "resample"):
            return PlannedStep(name, True, False, "time-series exposure")
        return PlannedStep(name, applicable, applicable, reason)

    return tuple(decide(name) for name in STEP_ORDER)
