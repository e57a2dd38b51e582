"""The references of one exposure for a run: chosen from the options' folders or a coordinator's
choice, checked against what the exposure requires, and described for the end-of-run summary."""

from __future__ import annotations

import functools
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
from image2.io.refs.resolution import Resolution, resolve_references
from image2.io.refs.store import ReferenceStore
from image2.run.options import RunOptions


@functools.lru_cache(maxsize=8)
def reference_store(folders: tuple[Path, ...]) -> ReferenceStore:
    """One reference store per set of folders and process (its index is built once)."""
    return ReferenceStore(folders)


def choose_references(meta: Meta, options: RunOptions, science: Path,
                      config: Config) -> tuple[References, Mapping[str, Resolution]]:
    """Return the references for an exposure and where each came from: overrides first, then the store.

    A type the exposure requires (a missing one would leave it partly calibrated) and that was
    not found fails the exposure, unless its step is skipped by configuration or the type was
    set to N/A on purpose; ``--strict`` makes every needed type required.
    """
    chosen = options.references.get(str(science))
    store = reference_store(options.reference_dirs) if chosen is None else ChosenReferences(chosen)
    references, plan = resolve_references(meta, store, options.overrides)
    required = set(needed_reftypes(meta) if options.strict else required_reftypes(meta))
    steps = reftype_steps()
    missing = tuple(reftype for reftype, item in plan.items()
                    if item.origin == "none" and reftype in required and not config.skipped(steps[reftype]))
    if missing:
        raise MissingReferenceError(science, missing, exposure_label(meta))
    return references, plan


def exposure_label(meta: Meta) -> str:
    """Return the keys references are chosen by, in a few words (e.g. ``NIRCAM NRCB1 F150W/CLEAR NRC_IMAGE``)."""
    ins = meta.instrument
    optics = "/".join(value for value in (ins.filter, ins.pupil) if value)
    return " ".join(value for value in (ins.name, ins.detector, optics, meta.exposure.type, meta.subarray.name)
                    if value)


def skipped_steps(cal: Exposure, plan: Mapping[str, Resolution]) -> tuple[str, ...]:
    """Return ``"<step> SKIPPED: <why>"`` for each step the cal product skipped, naming ``--ref TYPE=N/A``
    when the user declined the reference it needed."""
    declined: dict[str, list[str]] = {}
    steps = reftype_steps()
    for reftype, item in plan.items():
        if item.origin == "override" and item.path is None:
            declined.setdefault(steps[reftype], []).append(f"--ref {reftype}=N/A")
    return tuple(f"{record.step} SKIPPED: {', '.join(declined.get(record.step, ())) or '; '.join(record.notes)}"
                 for record in cal.meta.provenance if record.status == SKIPPED)


def with_reference_choices(path: Path | str, options: RunOptions) -> RunOptions:
    """Return ``options`` carrying the references of every science exposure of ``path``, chosen here
    from headers only, for a worker elsewhere to read; unchanged when the store cannot be opened."""
    try:
        store = reference_store(options.reference_dirs)
    except (Image2Error, OSError):
        return options
    return attrs.evolve(options, references=reference_choices(Path(path), store, options.overrides,
                                                              options.allow_outside))
