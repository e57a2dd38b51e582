"""The stage-2 steps, each declared once: the registry that the plan, configuration, reference needs,
product names and the public API derive from.

A :class:`Step` names the step's function, the status keyword it writes, the inputs it takes (the
reference types by their names, or the combined background), how much an exposure of its
instrument family needs each reference type and how a reference is cut to the exposure, when the
step applies, and the products it yields. An instrument family's variant of a step is one more
declaration with the same name and that ``family``; a declaration without a family serves every
family that has none of its own. Functions are named ``"module:attribute"`` and imported on first
use, so that planning and choosing references stay light.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from image2.core.meta import Meta

JWST, LIGER, LIGER_FORMAT = "jwst", "liger", "liger_format"
"""The instrument families: JWST imagers; Liger/IRIS imagers in the JWST layout (the spec's steps); and
Liger/IRIS exposures in their own format, calibrated as liger_iris_pipeline's ImagerStage2Pipeline does."""

LIGER_INSTRUMENTS = frozenset({"IRIS", "LIGER"})
RESAMPLED_EXP_TYPES = frozenset({"NRC_IMAGE", "NIS_IMAGE", "MIR_IMAGE", "FGS_IMAGE"})

REQUIRED, OPTIONAL, UNUSED = "required", "optional", "unused"
"""How much an exposure needs a reference type: a missing required one fails the exposure; an
optional one is looked for and its step copes without; an unused one is not looked for (it is
only used when given explicitly)."""


def family_of(meta: Meta) -> str:
    """Return the instrument family of an exposure: LIGER_FORMAT for a file in the Liger/IRIS layout (io
    decides it once, ``meta.layout``), LIGER for Liger and IRIS in the JWST layout, JWST otherwise."""
    if meta.layout == "liger":
        return LIGER_FORMAT
    return LIGER if (meta.instrument.name or "").upper() in LIGER_INSTRUMENTS else JWST


@attrs.frozen
class Situation:
    """What decides whether a step applies to an exposure: its metadata and shape, its background
    members, its extra extensions, the reference types at hand and the steps configuration asks for
    where the family does not run them by default (``Step.opt_in``)."""

    meta: Meta
    cube: bool
    n_background: int = 0
    extensions: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    supplied: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    requested: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)


@attrs.frozen
class Uses:
    """A reference type a step takes (as the parameter of that name) and how much an exposure needs it.

    ``instruments`` holds exceptions to ``need`` by INSTRUME; ``prepare`` names the function
    ``(reference, meta, image-plane shape) -> reference`` that cuts the reference to the exposure once,
    for all its integrations.
    """

    reftype: str
    need: str = REQUIRED
    instruments: Mapping[str, str] = attrs.field(factory=dict)
    prepare: str | None = None

    def need_of(self, meta: Meta) -> str:
        """Return how much the exposure of ``meta`` needs this reference type."""
        return self.instruments.get((meta.instrument.name or "").upper(), self.need)


@attrs.frozen
class Product:
    """A kind of product file: its suffix, and its suffix for 3-D data (None: made from 2-D data only)."""

    kind: str
    cube_suffix: str | None = None


def _always(situation: Situation) -> tuple[bool, str]:
    return True, "always (per integration)" if situation.cube else "always"


def _with_background(situation: Situation) -> tuple[bool, str]:
    if family_of(situation.meta) == LIGER_FORMAT:
        return False, "Liger/IRIS format: sky_sub subtracts the sky after flat_field"
    n = situation.n_background
    return (True, f"{n} background member(s)") if n else (False, "no background members")


def _with_subarray_map(situation: Situation) -> tuple[bool, str]:
    if "SUBARR_MAP" in situation.extensions:
        return True, "SUBARR_MAP extension present"
    return False, "no SUBARR_MAP extension"


def _with_dark(situation: Situation) -> tuple[bool, str]:
    if "dark" in situation.supplied:
        return True, "rate-level dark supplied"
    return False, "JWST exposure without a rate-level dark"


def _dark_always(situation: Situation) -> tuple[bool, str]:
    return True, "rate-level dark supplied" if "dark" in situation.supplied else "Liger/IRIS exposure"


def _sky_source(situation: Situation) -> tuple[bool, str]:
    n = situation.n_background
    return True, f"sky from {n} background member(s)" if n else "sky from the frame itself"


LIGER_I2D = "liger_i2d"
"""The resample parameter with which a user asks for an i2d of Liger/IRIS-format frames."""


def _resampled(situation: Situation) -> tuple[bool, str]:
    """The one rule of which exposures are resampled: 2-D images of the imaging EXP_TYPEs, and 2-D
    Liger/IRIS-format frames only on request (Liger's stage 2 has no resample)."""
    exp_type = (situation.meta.exposure.type or "").upper()
    liger = family_of(situation.meta) == LIGER_FORMAT
    if liger and "resample" not in situation.requested:
        return False, (f"Liger/IRIS format: not resampled (Liger's stage 2 has no resample; "
                       f"--step resample.{LIGER_I2D}=true makes an _i2d from the header WCS)")
    if situation.cube:
        return False, "3-D exposure (never resampled)"
    if liger:
        return True, f"Liger/IRIS format: resampled on request (resample.{LIGER_I2D})"
    if exp_type not in RESAMPLED_EXP_TYPES:
        return False, f"EXP_TYPE {exp_type or '(missing)'} is not resampled"
    return True, f"2-D {exp_type}"


def _without_exposure_time(situation: Situation) -> str | None:
    effexptm = situation.meta.exposure.effexptm
    if effexptm is None or not effexptm > 0:
        return f"EFFEXPTM is {effexptm}: drizzle needs a positive exposure time"
    return None


@attrs.frozen
class Step:
    """One step of stage 2 (or one family's variant of it), declared once.

    ``function``: ``"module:attribute"`` of the step function ``f(exposure, *takes, **parameters)``.
    ``status``: the status keyword (S_*) it writes; None when it writes none.
    ``family``: the instrument family this declaration is for; None for every family without its own.
    ``references``: the reference types it takes, how much each is needed and how each is cut.
    ``takes``: the inputs after the exposure, by name: reference types, or ``background``
    (the combined background); by default the reference types of ``references``.
    ``applies``: whether the step belongs to an exposure's pipeline, and why.
    ``declines``: why a step that applies cannot run on this exposure (None: it can).
    ``time_series``: whether it runs on time-series exposures.
    ``parameters_of``: the function whose keyword-only parameters configure the step, when not the
    step function itself: it makes the step's first input, whose attributes record them.
    ``extras``: parameters the pipeline acts on (beyond ``skip``), with their defaults.
    ``opt_in``: the boolean extra with which configuration asks for the step where its family does
    not run it by default (``applies`` finds the step in ``Situation.requested``).
    ``makes``: the product kind of the new record the function returns (the step leaves the exposure alone).
    ``saves``: the product kind the exposure becomes after this step when ``save_results`` is set.
    ``products``: the kinds of product file it yields; ``aliases``: other names of the step in file names.
    """

    name: str
    function_path: str = attrs.field(alias="function")
    status: str | None = None
    family: str | None = None
    references: tuple[Uses, ...] = ()
    takes: tuple[str, ...] = attrs.field(default=attrs.Factory(lambda self: tuple(u.reftype for u in self.references),
                                                               takes_self=True))
    applies: Callable[[Situation], tuple[bool, str]] = _always
    declines: Callable[[Situation], str | None] | None = None
    time_series: bool = True
    parameters_of: str | None = None
    extras: Mapping[str, Any] = attrs.field(factory=dict)
    opt_in: str | None = None
    makes: str | None = None
    saves: str | None = None
    products: tuple[Product, ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def function(self) -> Callable[..., Any]:
        """The step function (imported on first use)."""
        return resolve(self.function_path)

    @property
    def configured(self) -> Callable[..., Any]:
        """The function whose keyword-only parameters are this step's configuration parameters."""
        return resolve(self.parameters_of or self.function_path)


def resolve(path: str) -> Callable[..., Any]:
    """Return the object named ``"module:attribute"``."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


_CORE = "image2.core"
_LIGER = "image2.core.liger"

STEPS: tuple[Step, ...] = (
    Step("bkg_subtract", f"{_CORE}.background:bkg_subtract", status="S_BKDSUB", takes=("background",),
         applies=_with_background, time_series=False, parameters_of=f"{_CORE}.background:combine_backgrounds",
         extras={"save_combined_background": False, "save_results": False}, saves="bsub",
         products=(Product("bsub", "bsubints"), Product("combinedbackground")),
         aliases=("backgroundstep", "background")),
    Step("parse_subarray_map", f"{_CORE}.parse_subarray_map:parse_subarray_map", applies=_with_subarray_map,
         aliases=("parsesubarraymapstep",)),
    Step("parse_subarray_map", f"{_LIGER}.subarray_map:parse_subarrays", status="S_PARSSA", family=LIGER_FORMAT),
    Step("assign_wcs", f"{_CORE}.assign_wcs:assign_wcs", status="S_WCS", family=JWST,
         references=(Uses("distortion"), Uses("filteroffset", instruments={"NIRISS": OPTIONAL, "FGS": UNUSED})),
         aliases=("assignwcsstep",)),
    Step("assign_wcs", f"{_CORE}.assign_wcs:assign_wcs", status="S_WCS", family=LIGER,
         references=(Uses("distortion", OPTIONAL), Uses("filteroffset", UNUSED))),
    Step("assign_wcs", f"{_LIGER}.wcs:assign_header_wcs", status="S_WCS", family=LIGER_FORMAT),
    Step("dark_current", f"{_CORE}.dark_current:dark_current", status="S_DARK", family=JWST,
         references=(Uses("dark", UNUSED, prepare=f"{_CORE}.cutout:dark_for"),), applies=_with_dark,
         aliases=("darkcurrentstep",)),
    Step("dark_current", f"{_CORE}.dark_current:dark_current", status="S_DARK", family=LIGER,
         references=(Uses("dark", OPTIONAL, prepare=f"{_CORE}.cutout:dark_for"),), applies=_dark_always),
    Step("dark_current", f"{_LIGER}.dark:subtract_dark", status="S_DARK", family=LIGER_FORMAT,
         references=(Uses("dark", OPTIONAL, prepare=f"{_LIGER}.cutout:dark_for"),), applies=_dark_always),
    Step("flat_field", f"{_CORE}.flat_field:flat_field", status="S_FLAT",
         references=(Uses("flat", prepare=f"{_CORE}.cutout:flat_for"),), aliases=("flatfieldstep",)),
    Step("flat_field", f"{_LIGER}.flat:apply_flat", status="S_FLAT", family=LIGER_FORMAT,
         references=(Uses("flat", prepare=f"{_LIGER}.cutout:flat_for"),)),
    Step("sky_sub", f"{_LIGER}.sky:subtract_sky", status="S_SKYSUB", family=LIGER_FORMAT, takes=("background",),
         applies=_sky_source, parameters_of=f"{_LIGER}.sky:sky_background"),
    Step("photom", f"{_CORE}.photom:photom", status="S_PHOTOM", family=JWST,
         references=(Uses("photom"), Uses("area", prepare=f"{_CORE}.cutout:area_for")), aliases=("photomstep",)),
    Step("photom", f"{_CORE}.photom:photom", status="S_PHOTOM", family=LIGER,
         references=(Uses("photom", OPTIONAL), Uses("area", OPTIONAL, prepare=f"{_CORE}.cutout:area_for"))),
    Step("resample", f"{_CORE}.resample:resample", status="S_RESAMP", applies=_resampled,
         declines=_without_exposure_time, time_series=False, extras={LIGER_I2D: False}, opt_in=LIGER_I2D,
         makes="i2d", products=(Product("i2d"),), aliases=("resamplestep",)),
)
"""Every step in the order it runs; variants of one step follow each other."""

CAL = Product("cal", "calints")
"""The pipeline's own product: the calibrated exposure."""


def step_names() -> tuple[str, ...]:
    """Return the names of the steps in the order they run."""
    return tuple(dict.fromkeys(declared.name for declared in STEPS))


def declaration(name: str, family: str | None = None) -> Step:
    """Return step ``name``'s declaration for ``family`` (its own variant, else the one for every family);
    without a family, the first declaration of ``name``. KeyError when there is none."""
    found = variants(name)
    if family is not None:
        found = (*(d for d in found if d.family == family), *(d for d in found if d.family is None))
    if not found:
        raise KeyError(f"no step {name!r}" + (f" for the {family} family" if family else ""))
    return found[0]


def variants(name: str) -> tuple[Step, ...]:
    """Return every declaration of step ``name``: the one for every family and the families' own."""
    return tuple(declared for declared in STEPS if declared.name == name)


def steps_for(family: str) -> tuple[Step, ...]:
    """Return the declarations an exposure of ``family`` runs, in order (one per step name)."""
    found = []
    for name in step_names():
        try:
            found.append(declaration(name, family))
        except KeyError:
            continue
    return tuple(found)


def status_keyword(name: str, family: str = JWST) -> str | None:
    """Return the status keyword (S_*) step ``name`` writes for ``family``; None when it writes none."""
    return declaration(name, family).status


def reftype_order() -> tuple[str, ...]:
    """Return every reference type the steps take, in the order the steps use them."""
    return tuple(dict.fromkeys(uses.reftype for declared in STEPS for uses in declared.references))


def reftype_steps() -> dict[str, str]:
    """Return the step that takes each reference type."""
    return {uses.reftype: declared.name for declared in STEPS for uses in declared.references}


def _needs(meta: Meta) -> Iterator[tuple[str, str]]:
    for declared in steps_for(family_of(meta)):
        for uses in declared.references:
            yield uses.reftype, uses.need_of(meta)


def needed_reftypes(meta: Meta) -> tuple[str, ...]:
    """Return the reference types the exposure's steps look for, in the order they use them.

    JWST imaging: distortion and filteroffset (assign_wcs; FGS has no filter offsets), flat,
    photom and area. Liger/IRIS: distortion, dark, flat, photom and area.
    """
    return tuple(reftype for reftype, need in _needs(meta) if need != UNUSED)


def required_reftypes(meta: Meta) -> tuple[str, ...]:
    """Return the needed types without which the exposure is not fully calibrated: a missing one fails it.

    JWST imaging: every needed type, except NIRISS's optional FILTEROFFSET. Liger/IRIS: the flat
    only; its dark, photom and area are optional and its WCS comes from the FITS keywords.
    """
    return tuple(reftype for reftype, need in _needs(meta) if need == REQUIRED)


def preparations(family: str) -> dict[str, tuple[str, Callable[..., Any]]]:
    """Return, per reference type cut to the exposure, the step that takes it and the function that cuts it."""
    return {uses.reftype: (declared.name, resolve(uses.prepare))
            for declared in steps_for(family) for uses in declared.references if uses.prepare is not None}


def products() -> tuple[Product, ...]:
    """Return every kind of product file: the cal, then the steps' products."""
    return (CAL, *(product for declared in STEPS for product in declared.products))


def public_functions() -> dict[str, str]:
    """Return the step functions (and the functions configuring them) that ``image2`` exports, by module."""
    paths = [path for declared in STEPS for path in (declared.parameters_of, declared.function_path) if path]
    return {path.partition(":")[2]: path.partition(":")[0] for path in dict.fromkeys(paths)}


def configured_names(declared: Step) -> tuple[str, ...]:
    """Return the names of a step's keyword-only configuration parameters."""
    signature = inspect.signature(declared.configured)
    return tuple(p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY)
