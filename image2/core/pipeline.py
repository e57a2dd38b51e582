"""The stage-2 pipeline: the plan for an exposure, and ``calibrate`` composing the declared steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from image2.core.background import CombinedBackground, combine_backgrounds
from image2.core.config import Config
from image2.core.exposure import Exposure
from image2.core.plan import PlannedStep, is_tso, plan_steps
from image2.core.provenance import SKIPPED, skip
from image2.core.references import REFTYPES, References
from image2.core.resample import Resampled

if TYPE_CHECKING:
    from image2.core.liger.sky import SkyBackground
from image2.core.steps import LIGER_FORMAT, Step, configured_names, declaration, family_of, preparations, steps_for


@attrs.frozen
class Products:
    """What calibrating one exposure yields: the cal record and, when made, the others.

    ``background``: the Liger/IRIS sky, or the combined background of background members when the
    configuration saves it (``bkg_subtract.save_combined_background``); otherwise None, so that
    it is let go once subtracted.
    """

    cal: Exposure
    i2d: Resampled | None = None
    bsub: Exposure | None = None
    background: CombinedBackground | SkyBackground | None = None


class StepObserver(Protocol):
    """Told which steps an exposure goes through and as each starts and ends, so a caller can time,
    log and show them (core itself keeps no clock and logs nothing)."""

    def planned(self, steps: Sequence[str]) -> None:
        """The steps that apply, in order: each will end (run or skipped)."""

    def started(self, step: str) -> None:
        """``step`` is about to run."""

    def ended(self, step: str, status: str, notes: Sequence[str]) -> None:
        """``step`` ran or was skipped: its provenance's status (COMPLETE, SKIPPED) and notes."""


def plan(exposure: Exposure, references: References, config: Config, n_background: int = 0) -> tuple[PlannedStep, ...]:
    """Return which steps run for ``exposure`` with these references and configuration, and why."""
    skipped = [name for name in config.steps if config.skipped(name)]
    supplied = [reftype for reftype in REFTYPES if getattr(references, reftype) is not None]
    requested = [declared.name for declared in steps_for(family_of(exposure.meta))
                 if declared.opt_in is not None and config.value(declared.name, declared.opt_in)]
    return plan_steps(exposure.meta, cube=exposure.is_cube, n_background=n_background,
                      extensions=exposure.extensions, supplied=supplied, skip=skipped, requested=requested)


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


def background_for(exposure: Exposure, backgrounds: Sequence[Exposure], config: Config,
                   references: References | None = None) -> CombinedBackground | SkyBackground | None:
    """Return the combined background to subtract, or None when background subtraction does not run.

    Liger/IRIS format: the sky of the background members, else of the exposure itself, each
    first calibrated by the steps before sky_sub with ``references`` cut to it (as Liger's
    ImagerStage2Pipeline estimates the sky after dark and flat).
    """
    if family_of(exposure.meta) == LIGER_FORMAT:
        if config.skipped("sky_sub"):
            return None
        references = references or References()
        frames = (_calibrated({"exposure": frame, **_inputs(prepare(references, frame, config), None)}, config, 0,
                              until="sky_sub").cal
                  for frame in (backgrounds or (exposure,)))
        estimate = declaration("sky_sub", LIGER_FORMAT).configured
        return estimate(frames, "background" if backgrounds else "science", **config.parameters("sky_sub"))
    if not backgrounds or is_tso(exposure.meta) or config.skipped("bkg_subtract"):
        return None
    return combine_backgrounds(exposure, backgrounds, **config.parameters("bkg_subtract"))


def _inputs(references: References, background: CombinedBackground | SkyBackground | None) -> dict[str, Any]:
    """Return what the steps take besides the exposure, by the names they declare: each reference type and
    ``background``."""
    return {"background": background, **{reftype: getattr(references, reftype) for reftype in REFTYPES}}


def _keeps_background(exposure: Exposure, config: Config) -> bool:
    """True when the products carry the background subtracted: the Liger/IRIS sky always, the combined
    background of background members only when it is saved (``bkg_subtract.save_combined_background``);
    otherwise it is let go once subtracted."""
    return family_of(exposure.meta) == LIGER_FORMAT or bool(config.value("bkg_subtract", "save_combined_background"))


def _settled_from(declarations: Sequence[Step], planned: dict[str, PlannedStep]) -> int | None:
    """The index of the first step from which on no step changes the cal record: each one left either
    does not apply or runs and makes a record of its own (resample's i2d); None when none of them runs."""
    index = len(declarations)
    while index > 0:
        step = planned[declarations[index - 1].name]
        if step.applies and not (step.runs and declarations[index - 1].makes is not None):
            break
        index -= 1
    return index if any(planned[declared.name].runs for declared in declarations[index:]) else None


def _calibrated(inputs: dict[str, Any], config: Config, n_background: int, observer: StepObserver | None = None,
                until: str | None = None, settled: Callable[[Exposure], None] | None = None) -> Products:
    """Run the planned steps on ``inputs["exposure"]`` (all integrations or a chunk of them) with the prepared
    inputs the steps take (:func:`_inputs`), up to step ``until`` (all of them when None), telling
    ``observer`` as each starts and ends, and ``settled`` the cal record before the steps that only
    make records of their own.

    ``inputs`` is handed over: each input is taken out of it after the last step that takes it (the
    exposure at once; each step's record replaces the one before), so that when the caller keeps no
    other reference each is let go as soon as no later step needs it.
    """
    exposure = inputs.pop("exposure")
    supplied = References(**{reftype: inputs[reftype] for reftype in REFTYPES})
    planned = {step.name: step for step in plan(exposure, supplied, config, n_background)}
    del supplied  # the inputs alone hold the references, to let each go after its last step
    background = inputs["background"] if _keeps_background(exposure, config) else None
    kept: dict[str, object] = {}
    declarations = steps_for(family_of(exposure.meta))
    if until is not None:
        declarations = declarations[:[declared.name for declared in declarations].index(until)]
    last_taker = {name: declared.name for declared in declarations for name in declared.takes}
    if observer is not None:
        observer.planned([declared.name for declared in declarations if planned[declared.name].applies])
    settled_at = None if settled is None else _settled_from(declarations, planned)
    for index, declared in enumerate(declarations):
        if index == settled_at:
            settled(exposure)
        step = planned[declared.name]
        if step.runs:
            if observer is not None:
                observer.started(declared.name)
            own = () if declared.parameters_of else configured_names(declared)
            parameters = {key: value for key, value in config.parameters(declared.name).items() if key in own}
            ran = declared.function.run(exposure, *(inputs[name] for name in declared.takes), **parameters)
            exposure = ran.exposure
            if declared.makes is not None and ran.made is not None:
                kept[declared.makes] = ran.made
            if declared.saves is not None and config.value(declared.name, "save_results"):
                kept[declared.saves] = exposure
            if observer is not None:
                record = (exposure if ran.made is None else ran.made).meta.provenance[-1]
                observer.ended(declared.name, record.status, record.notes)
        elif step.applies:
            exposure = skip(exposure, step.name, step.reason)
            if observer is not None:
                observer.ended(step.name, SKIPPED, exposure.meta.provenance[-1].notes)
        for name in declared.takes:
            if last_taker[name] == declared.name:
                del inputs[name]
    return Products(cal=exposure, background=background, **kept)


def calibrate_chunks(
    chunks: Iterable[Exposure],
    references: References,
    config: Config | None = None,
    backgrounds: Sequence[Exposure] = (),
    observer: StepObserver | None = None,
    settled: Callable[[Exposure], None] | None = None,
) -> Iterator[Products]:
    """Yield the products of each chunk of one exposure's integrations, in order, as each is calibrated.

    The references are cut to the exposure and the background combined once, from the first
    chunk, and serve every chunk; the chunks are read from ``chunks`` one at a time. A 2-D
    exposure is one chunk, whole. ``observer`` is told as each step of each chunk starts and ends,
    ``settled`` as in :func:`calibrate`.

    Memory: the background members are let go once combined, a chunk as soon as its first step has
    made the next record, and for a 2-D exposure each reference and the combined background after
    the last step that takes it. That frees them only when the caller holds none of them itself:
    it can pass a generator as ``chunks`` and drop its own references to the references and
    members once this generator is made (it holds them from then on).
    """
    config = config or Config()
    n_background = len(backgrounds)
    shared: dict[str, Any] | None = None
    whole = False
    for chunk in chunks:
        if whole:
            raise ValueError("a 2-D exposure is calibrated whole, as one chunk")
        if shared is None:
            shared = _inputs(prepare(references, chunk, config), background_for(chunk, backgrounds, config, references))
            references, backgrounds = References(), ()  # the inputs hold what the steps need; the members are combined
        whole = not chunk.is_cube
        inputs = {"exposure": chunk, **shared}
        del chunk  # the inputs hand it to the steps
        if whole:
            shared = None  # each input goes after the last step that takes it
        yield _calibrated(inputs, config, n_background, observer, settled=settled)


def calibrate(
    exposure: Exposure,
    references: References,
    config: Config | None = None,
    backgrounds: Sequence[Exposure] = (),
    observer: StepObserver | None = None,
    settled: Callable[[Exposure], None] | None = None,
) -> Products:
    """Calibrate one exposure: background → subarray map → WCS → dark → flat → photom → resample (the
    Liger/IRIS format: subarray map → WCS → dark → flat → sky); ``observer``, if given, is told as each
    step starts and ends.

    ``settled``, if given, is called with the cal record once only steps that make records of their
    own (resample) are left, so a caller can write it while they run. Such a step can still end up
    skipped and stamp the cal: the returned ``Products.cal`` is the record to keep, the same object
    when nothing changed it.
    """
    return next(calibrate_chunks((exposure,), references, config, backgrounds, observer, settled))
