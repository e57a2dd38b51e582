"""The stage-2 pipeline: the plan for an exposure, and ``calibrate`` composing the steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from image2.core.assign_wcs import assign_wcs
from image2.core.background import CombinedBackground, bkg_subtract, combine_backgrounds
from image2.core.config import Config
from image2.core.dark_current import dark_current
from image2.core.exposure import Exposure
from image2.core.flat_field import flat_field
from image2.core.parse_subarray_map import parse_subarray_map
from image2.core.photom import photom
from image2.core.plan import PlannedStep, is_tso, plan_steps
from image2.core.provenance import skip
from image2.core.references import REFTYPES, References
from image2.core.resample import Resampled, resample
from image2.core.steps import family_of, preparations


@attrs.frozen
class Products:
    """What calibrating one exposure yields: the cal record and, when made, the others."""

    cal: Exposure
    i2d: Resampled | None = None
    bsub: Exposure | None = None
    background: CombinedBackground | None = None


def plan(exposure: Exposure, references: References, config: Config, n_background: int = 0) -> tuple[PlannedStep, ...]:
    """Return which steps run for ``exposure`` with these references and configuration, and why."""
    skipped = [name for name in config.steps if config.skipped(name)]
    supplied = [reftype for reftype in REFTYPES if getattr(references, reftype) is not None]
    return plan_steps(exposure.meta, cube=exposure.is_cube, n_background=n_background,
                      extensions=exposure.extensions, supplied=supplied, skip=skipped)


def prepare(references: References, exposure: Exposure, config: Config | None = None) -> References:
    """Return ``references`` cut to the exposure's subarray, once for all its integrations.

    References of steps that configuration skips are dropped rather than cut (a misfit one
    must not fail a step that will not run).
    """
    config = config or Config()
    meta, shape = exposure.meta, exposure.shape
    cut = {reftype: prepared(None if config.skipped(step) else getattr(references, reftype), meta, shape)
           for reftype, (step, prepared) in preparations(family_of(meta)).items()}
    return attrs.evolve(references, **cut)


def background_for(exposure: Exposure, backgrounds: Sequence[Exposure], config: Config) -> CombinedBackground | None:
    """Return the combined background to subtract, or None when background subtraction does not run."""
    if not backgrounds or is_tso(exposure.meta) or config.skipped("bkg_subtract"):
        return None
    return combine_backgrounds(exposure, backgrounds, **config.parameters("bkg_subtract"))


def _run(exposure: Exposure, planned: PlannedStep, config: Config, function: Any, *args: Any) -> Exposure:
    """Run a planned step, mark it SKIPPED when it applies but must not run, else leave no trace."""
    if planned.runs:
        return function(exposure, *args, **config.parameters(planned.name))
    if planned.applies:
        return skip(exposure, planned.name, planned.reason)
    return exposure


def calibrate_steps(
    exposure: Exposure,
    references: References,
    config: Config,
    background: CombinedBackground | None = None,
    n_background: int = 0,
) -> Products:
    """Run the planned steps on ``exposure`` (all integrations or a chunk of them).

    ``references`` should come from :func:`prepare`; ``background`` from :func:`background_for`.
    """
    steps = {s.name: s for s in plan(exposure, references, config, n_background)}
    if steps["bkg_subtract"].runs:
        if background is None:
            raise ValueError("bkg_subtract runs but no combined background was given")
        exposure = bkg_subtract(exposure, background)
    else:
        exposure = _run(exposure, steps["bkg_subtract"], config, bkg_subtract)
    bsub = exposure if background is not None and config.value("bkg_subtract", "save_results") else None
    exposure = _run(exposure, steps["parse_subarray_map"], config, parse_subarray_map)
    exposure = _run(exposure, steps["assign_wcs"], config, assign_wcs, references.distortion, references.filteroffset)
    exposure = _run(exposure, steps["dark_current"], config, dark_current, references.dark)
    exposure = _run(exposure, steps["flat_field"], config, flat_field, references.flat)
    exposure = _run(exposure, steps["photom"], config, photom, references.photom, references.area)
    i2d = None
    if steps["resample"].runs:
        result = resample(exposure, **config.parameters("resample"))
        if isinstance(result, Resampled):
            i2d = result
        else:
            exposure = result  # resample declined (e.g. no exposure time): its status is on the cal
    else:
        exposure = _run(exposure, steps["resample"], config, resample)
    return Products(cal=exposure, i2d=i2d, bsub=bsub, background=background)


def calibrate(
    exposure: Exposure,
    references: References,
    config: Config | None = None,
    backgrounds: Sequence[Exposure] = (),
) -> Products:
    """Calibrate one exposure: background → subarray map → WCS → dark → flat → photom → resample."""
    config = config or Config()
    prepared = prepare(references, exposure, config)
    background = background_for(exposure, backgrounds, config)
    return calibrate_steps(exposure, prepared, config, background, n_background=len(backgrounds))
