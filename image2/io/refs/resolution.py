"""Where each reference of an exposure comes from (the user's override or a reference source), and reading them.

A reference source is anything with ``select(meta, reftype) -> Choice``: the
:class:`~image2.io.refs.store.ReferenceStore`, or the
:class:`~image2.io.refs.choices.ChosenReferences` a coordinator handed to a worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from image2.core.frozen import frozen_mapping
from image2.core.meta import Meta
from image2.core.references import NOT_APPLICABLE, REFTYPES, References
from image2.errors import ReferenceFileError
from image2.core.steps import needed_reftypes, reftype_order
from image2.io.refs.readers import read_reference, source_of
from image2.io.refs.selection import Choice, ReferenceSource


@attrs.frozen
class Resolution:
    """Where one reference type of an exposure comes from.

    ``origin`` is ``override`` (the user's path or N/A), ``store`` (chosen by the store) or
    ``none``; ``source`` is what R_* records (absolute path, ``crds://<basename>`` or ``N/A``).
    """

    reftype: str
    origin: str
    source: str
    path: Path | None = None
    choice: Choice | None = None


def _ordered(reftypes: Iterable[str]) -> tuple[str, ...]:
    wanted = set(reftypes)
    return tuple(t for t in reftype_order() if t in wanted)


def plan_references(meta: Meta, store: ReferenceSource | None,
                    overrides: Mapping[str, str] | None = None) -> Mapping[str, Resolution]:
    """Decide, without reading any reference, where each needed (or overridden) type comes from.

    Returns {reftype: Resolution} in the order the steps use them. An override (a path, or
    ``N/A`` for none) always wins; otherwise ``store`` (any reference source) chooses.
    """
    overrides = {key.lower(): value for key, value in (overrides or {}).items()}
    unknown = sorted(set(overrides) - set(REFTYPES))
    if unknown:
        raise ValueError(f"unknown reference type(s) {', '.join(unknown)}; valid: {', '.join(REFTYPES)}")
    plan = []
    for reftype in _ordered((*needed_reftypes(meta), *overrides)):
        if reftype in overrides:
            value = str(overrides[reftype]).strip()
            if value.upper() == NOT_APPLICABLE:
                plan.append(Resolution(reftype, "override", NOT_APPLICABLE))
            else:
                path = Path(source_of(value))
                plan.append(Resolution(reftype, "override", str(path), path))
        elif store is None:
            plan.append(Resolution(reftype, "none", NOT_APPLICABLE,
                                   choice=Choice(reftype, note="no reference store")))
        else:
            choice = store.select(meta, reftype)
            origin = "store" if choice.path is not None else "none"
            plan.append(Resolution(reftype, origin, choice.source, choice.path, choice))
    return frozen_mapping({item.reftype: item for item in plan})


def resolve_references(meta: Meta, store: ReferenceSource | None,
                       overrides: Mapping[str, str] | None = None) -> tuple[References, Mapping[str, Resolution]]:
    """Return the references of an exposure, read and validated, and {reftype: how it was found}.

    A type with no reference is None (its step then skips); two equally good store candidates
    raise ReferenceFileError, as does a malformed or missing file.
    """
    plan = plan_references(meta, store, overrides)
    records: dict[str, Any] = {}
    for item in plan.values():
        if item.choice is not None and item.choice.ambiguous:
            raise ReferenceFileError(", ".join(str(p) for p in item.choice.ambiguous),
                                     f"ambiguous {item.reftype.upper()} selection: {item.choice.explanation()}")
        if item.path is not None:
            records[item.reftype] = read_reference(item.reftype, item.path, item.source)
    return References(**records), plan
