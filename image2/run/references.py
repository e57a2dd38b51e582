"""The references of one exposure for a run: chosen from the options' folders or a coordinator's
choice, checked against what the exposure requires, and described for the end-of-run summary."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from image2.core.config import Config
from image2.core.exposure import Exposure
from image2.core.meta import Meta
from image2.core.provenance import SKIPPED
from image2.core.references import References
from image2.core.steps import needed_reftypes, reftype_steps, required_reftypes
from image2.errors import Image2Error, MissingReferenceError
from image2.io.refs.choices import ChosenReferences, reference_choices
from image2.io.refs.crds import CRDS_VARIABLES, context_cards, reference_selector
from image2.io.refs.resolution import Resolution, resolve_references
from image2.io.refs.selection import Choice, ReferenceSource
from image2.run.options import RunOptions


CHOICE_VARIABLES = (*CRDS_VARIABLES, "XDG_CACHE_HOME")
"""The environment that decides which references a run chooses from (and where our index is kept)."""


def reference_source(options: RunOptions) -> ReferenceSource:
    """The source that chooses references for ``options``, one per process (its index and rules loaded once):
    the rules of a CRDS cache with mappings (``--crds-path`` or $CRDS_PATH), else header matching."""
    environment = tuple((name, os.environ[name]) for name in CHOICE_VARIABLES if name in os.environ)
    return _reference_source(options.reference_dirs, options.crds_path, options.crds_context, environment)


@functools.lru_cache(maxsize=8)
def _reference_source(folders: tuple[Path, ...], crds_path: Path | None, crds_context: str | None,
                      environment: tuple[tuple[str, str], ...]) -> ReferenceSource:
    return reference_selector(folders, crds_path=crds_path, crds_context=crds_context, environ=dict(environment))


def choose_references(meta: Meta, options: RunOptions, science: Path,
                      config: Config) -> tuple[References, Mapping[str, Resolution]]:
    """Return the references for an exposure and where each came from: overrides first, then the
    coordinator's choice when it made one, else the run's reference source.

    A type the exposure requires (a missing one would leave it partly calibrated) and that was
    not found fails the exposure, unless its step is skipped by configuration, the type was
    set to N/A on purpose, or the rules of the CRDS context declare it N/A for this exposure;
    ``--strict`` makes every needed type required.
    """
    chosen = options.references.get(str(science))
    source = reference_source(options) if chosen is None else ChosenReferences(chosen)
    references, plan = resolve_references(meta, source, options.overrides)
    required = set(needed_reftypes(meta) if options.strict else required_reftypes(meta))
    steps = reftype_steps()
    missing = tuple(reftype for reftype, item in plan.items()
                    if item.origin == "none" and reftype in required and not config.skipped(steps[reftype])
                    and (item.choice is None or item.choice.applicable))
    if missing:
        raise MissingReferenceError(science, missing, exposure_label(meta))
    return references, plan


def reference_cards(plan: Mapping[str, Resolution]) -> dict[str, str]:
    """Return the PRIMARY cards a product records about how its references were chosen: the CRDS context
    and crds version when the rules of a context chose (CRDS_CTX, CRDS_VER), else none."""
    return context_cards(item.choice for item in plan.values() if item.choice is not None)


def exposure_label(meta: Meta) -> str:
    """Return the keys references are chosen by, in a few words (e.g. ``NIRCAM NRCB1 F150W/CLEAR NRC_IMAGE``)."""
    ins = meta.instrument
    optics = "/".join(value for value in (ins.filter, ins.pupil) if value)
    return " ".join(value for value in (ins.name, ins.detector, optics, meta.exposure.type, meta.subarray.name)
                    if value)


def skipped_steps(cal: Exposure, plan: Mapping[str, Resolution]) -> tuple[str, ...]:
    """Return ``"<step> SKIPPED: <why>"`` for each step the cal product skipped, naming ``--ref TYPE=N/A``
    when the user declined the reference it needed, and the context whose rules declare it N/A."""
    declined: dict[str, list[str]] = {}
    steps = reftype_steps()
    for reftype, item in plan.items():
        if item.origin == "override" and item.path is None:
            declined.setdefault(steps[reftype], []).append(f"--ref {reftype}=N/A")
        elif item.choice is not None and not item.choice.applicable:
            declined.setdefault(steps[reftype], []).append(not_applicable_reason(item.choice))
    return tuple(f"{record.step} SKIPPED: {', '.join(declined.get(record.step, ())) or '; '.join(record.notes)}"
                 for record in cal.meta.provenance if record.status == SKIPPED)


def not_applicable_reason(choice: Choice) -> str:
    """Return why a type does not apply, in a few words (``FLAT not applicable by the rules of context X``)."""
    context = getattr(choice, "context", "")
    by = f"by the rules of context {context}" if context else "by the rules"
    return f"{choice.reftype.upper()} not applicable {by}"


def with_reference_choices(path: Path | str, options: RunOptions) -> RunOptions:
    """Return ``options`` carrying the references of every science exposure of ``path``, chosen here
    from headers only, for a worker elsewhere to read; unchanged when no source can be opened."""
    try:
        source = reference_source(options)
    except (Image2Error, OSError):
        return options
    return attrs.evolve(options, references=reference_choices(Path(path), source, options.overrides,
                                                              options.allow_outside))
