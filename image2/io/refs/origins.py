"""Where each reference of an exposure comes from, and why a type stays unfilled (``image2 refs``).

Every needed type gets an Origin: a ``--ref`` override, the rules (an rmap of a CRDS context),
a header match, not applicable by the rules, or none. For a type left unfilled the closest
candidates are listed, each with every reason it was refused: rmap rows nearest to matching
under rules; under header matching the exposure's detector's references ranked by how many
selection keywords refuse them (read from the store's index, never from the files).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import attrs

from image2.core.frozen import frozen_mapping
from image2.core.meta import Meta
from image2.core.references import NOT_APPLICABLE
from image2.io.refs.crds import CrdsRules, RuleChoice
from image2.io.refs.index import IndexEntry
from image2.io.refs.resolution import Resolution, plan_references
from image2.io.refs.selection import (
    MATCH_KEYS,
    Choice,
    ReferenceSource,
    Rejection,
    apply_rule,
    exposure_keys,
    exposure_start,
    imaging_stand_in,
    parse_useafter,
    rule_of,
)
from image2.io.refs.store import ReferenceStore

OVERRIDE = "override"
RULES = "rules"
HEADER = "header match"
NOT_APPLICABLE_BY_RULES = "not applicable"
NONE = "none"
CLOSEST = 3
"""How many refused candidates are listed for an unfilled type."""


@attrs.frozen
class Origin:
    """Where one reference type comes from (``kind``), what R_* records, and why.

    ``summary`` says where in words (``--ref``, ``rmap X of context Y``, ``header match``,
    or why nothing); ``matched`` how the chosen file matched; ``refused`` the closest
    candidates of an unfilled type with why each was refused, ``unlisted`` how many more;
    ``ambiguous`` marks a header match between equally good files (an error to report).
    """

    reftype: str
    kind: str
    source: str
    summary: str
    path: Path | None = None
    matched: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    refused: tuple[Rejection, ...] = attrs.field(default=(), converter=tuple)
    unlisted: int = 0
    ambiguous: bool = False


def reference_origins(meta: Meta, selector: ReferenceSource | None,
                      overrides: Mapping[str, str] | None = None, closest: int = CLOSEST) -> Mapping[str, Origin]:
    """Return {reftype: Origin} for every type the exposure needs (or that is overridden), in step order."""
    plan = plan_references(meta, selector, overrides)
    return frozen_mapping({reftype: origin_of(meta, item, selector, closest) for reftype, item in plan.items()})


def origin_of(meta: Meta, item: Resolution, selector: ReferenceSource | None, closest: int = CLOSEST) -> Origin:
    """Return the Origin of one planned type."""
    choice = item.choice
    if item.origin == "override":
        summary = f"--ref {item.reftype}=N/A" if item.source == NOT_APPLICABLE else "--ref"
        return Origin(item.reftype, OVERRIDE, item.source, summary, item.path)
    if choice is None:
        return Origin(item.reftype, NONE, item.source, "no reference store")
    if isinstance(choice, RuleChoice):
        where = f"rmap {choice.rmap} of context {choice.context}" if choice.rmap else f"context {choice.context}"
        if choice.path is not None:
            return Origin(item.reftype, RULES, choice.source, where, choice.path, choice.matched[1:])
        kind = NONE if choice.applicable else NOT_APPLICABLE_BY_RULES
        return Origin(item.reftype, kind, NOT_APPLICABLE, choice.explanation(), refused=choice.rejected[:closest],
                      unlisted=max(0, len(choice.rejected) - closest))
    if choice.path is not None:
        return Origin(item.reftype, HEADER, choice.source, HEADER, choice.path, choice.matched)
    refused = closest_candidates(meta, choice, _header_store(selector))
    return Origin(item.reftype, NONE, NOT_APPLICABLE, choice.explanation(), refused=refused[:closest],
                  unlisted=max(0, len(refused) - closest) + choice.other_detectors, ambiguous=bool(choice.ambiguous))


def _header_store(selector: ReferenceSource | None) -> ReferenceStore | None:
    """The header-matching store behind ``selector`` (itself, or a CrdsRules' fallback)."""
    store = selector.header_store if isinstance(selector, CrdsRules) else selector
    return store if isinstance(store, ReferenceStore) else None


def closest_candidates(meta: Meta, choice: Choice, store: ReferenceStore | None) -> tuple[Rejection, ...]:
    """Return the refused candidates of an unfilled type, fewest refusing keywords first, each with all its reasons.

    The candidates' keywords come from the store's index (no file is read); a candidate missing there keeps
    the store's own reason and comes last.
    """
    if not choice.rejected:
        return ()
    entries = {r.path: entry for r in choice.rejected
               if store is not None and (entry := store.indexed(r.path)) is not None}
    exposure = exposure_keys(meta)
    known = list(entries.values())
    constraints = ([rule for key in MATCH_KEYS if (rule := rule_of(key, e.keys)) is not None] for e in known)
    stand_in = imaging_stand_in(exposure, constraints)
    if stand_in is not None:
        exposure = {**exposure, "EXP_TYPE": stand_in}
    start = exposure_start(meta)
    ranked = []
    for rejection in choice.rejected:
        entry = entries.get(rejection.path)
        reasons = refusals(choice.reftype, entry, exposure, start) if entry is not None else []
        if reasons:
            ranked.append((len(reasons), Rejection(rejection.path, "; ".join(reasons))))
        else:
            ranked.append((len(MATCH_KEYS) + 2, rejection))
    ranked.sort(key=lambda item: item[0])
    return tuple(rejection for _, rejection in ranked)


def refusals(reftype: str, entry: IndexEntry, exposure: Mapping[str, str | None],
             start: dt.datetime | None) -> list[str]:
    """Return every reason an indexed reference does not serve the exposure (empty when it would)."""
    reasons = []
    if reftype == "dark" and (entry.sci_ndim or 2) > 2:
        reasons.append("ramp-level JWST dark (3-D/4-D SCI), not applicable to rate data")
    for key in MATCH_KEYS:
        rule = rule_of(key, entry.keys)
        if rule is not None:
            matches, how, _ = apply_rule(rule, exposure[key])
            if not matches:
                reasons.append(how)
    useafter = parse_useafter(entry.keys.get("USEAFTER"))
    if useafter is None:
        reasons.append(f"USEAFTER {entry.keys.get('USEAFTER', '(missing)')!r} is not a date")
    elif start is not None and useafter > start:
        reasons.append(f"USEAFTER {useafter.isoformat()} is later than the exposure start {start.isoformat()}")
    return reasons


def describe_origins(path: Path, meta: Meta, origins: Mapping[str, Origin]) -> str:
    """Return the per-reftype report of ``image2 refs`` for one exposure: choice, where from, why."""
    ins = meta.instrument
    lines = [f"{path}",
             f"  {ins.name or '?'} {ins.detector or ''} {ins.filter or '-'}/{ins.pupil or '-'} "
             f"{meta.exposure.type or '?'} {meta.subarray.name or ''} "
             f"{meta.exposure.date_obs or ''} {meta.exposure.time_obs or ''}".rstrip()]
    pad = f"  {'':<13}"
    for origin in origins.values():
        head = f"  {origin.reftype:<13}"
        if origin.kind in (OVERRIDE, RULES, HEADER):
            lines.append(f"{head}{origin.source}  (from {origin.summary})")
            if origin.path is not None and origin.kind != OVERRIDE:
                lines.append(f"{pad}{origin.path}")
            if origin.matched:
                lines.append(f"{pad}matched: {', '.join(origin.matched)}")
        elif origin.kind == NOT_APPLICABLE_BY_RULES:
            lines.append(f"{head}N/A  ({origin.summary})")
        else:
            lines.append(f"{head}{'AMBIGUOUS' if origin.ambiguous else 'none'}: {origin.summary}")
            if origin.refused:
                lines.append(f"{pad}closest candidates:")
            lines += [f"{pad}- {r.path.name}: {r.reason}" for r in origin.refused]
            if origin.unlisted:
                lines.append(f"{pad}- {origin.unlisted} more refused")
    return "\n".join(lines)
