"""Which indexed reference suits an exposure (reference_files.md §10), and the outcome in words.

Every selection keyword present in a reference must match the exposure (exact,
``ANY``/``N/A``/``GENERIC`` wildcards, ``P_*`` patterns with ``|`` alternatives; a FULL-frame
reference covers any subarray). Among the matches the most specific one, then the newest
USEAFTER not later than the exposure start, wins; two equally good files are ambiguous.

Liger/IRIS references have no USEAFTER: their date is that of the exposures they were made from
(EXPDTST, else EXPJDST). For a Liger/IRIS exposure a subarray reference with a window
(SUBSTRT/SUBSIZE) is not matched by SUBARRAY name: its window must contain the exposure's, as
the step cuts it out; the same window is an exact (specific) match.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import attrs

from image2.core.frozen import frozen_mapping
from image2.core.meta import Meta
from image2.core.references import NOT_APPLICABLE
from image2.io.refs.index import FolderIndex, IndexEntry

WILDCARDS = frozenset({"ANY", "N/A", "GENERIC", "*", ""})

MATCH_KEYS = ("DETECTOR", "EXP_TYPE", "FILTER", "PUPIL", "SUBARRAY", "CHANNEL", "MODULE", "READPATT")
"""Selection keywords compared with the exposure (besides REFTYPE and INSTRUME), in report order."""

PATTERN_KEYS: Mapping[str, str] = frozen_mapping({
    "DETECTOR": "P_DETECT", "EXP_TYPE": "P_EXP_TY", "FILTER": "P_FILTER", "PUPIL": "P_PUPIL",
    "SUBARRAY": "P_SUBARR", "CHANNEL": "P_CHANNE", "READPATT": "P_READPA",
})
"""The ``P_*`` keyword listing several allowed values for a selection keyword."""

MJD_EPOCH = dt.datetime(1858, 11, 17)
JD_UNIX_EPOCH = 2440587.5
LIGER_INSTRUMENTS = frozenset({"LIGER", "IRIS"})
WINDOW_KEYS = ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2")


def parse_useafter(value: str | None) -> dt.datetime | None:
    """Return a USEAFTER value as a datetime (ISO with ``T`` or space, or CRDS ``Jan 01 2000 00:00:00``)."""
    if not value:
        return None
    text = str(value).strip()
    try:
        return dt.datetime.fromisoformat(text.replace(" ", "T", 1) if "-" in text[:10] else text)
    except ValueError:
        pass
    for layout in ("%b %d %Y %H:%M:%S", "%b %d %Y"):
        try:
            return dt.datetime.strptime(text, layout)
        except ValueError:
            continue
    return None


def reference_date(keys: Mapping[str, object]) -> dt.datetime | None:
    """The date a Liger/IRIS file stands for when it has no USEAFTER: EXPDTST (``YYYYMMDDHHMMSS``),
    else EXPJDST (a Julian date); UTC, naive. None when neither is a date."""
    text = str(keys.get("EXPDTST") or "").strip()
    if text:
        try:
            return dt.datetime.strptime(text, "%Y%m%d%H%M%S") if len(text) == 14 and text.isdigit() else None
        except ValueError:
            return None
    try:
        days = float(keys.get("EXPJDST"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return dt.datetime(1970, 1, 1) + dt.timedelta(days=days - JD_UNIX_EPOCH)


def reference_dating(keys: Mapping[str, str]) -> tuple[dt.datetime | None, str]:
    """Return a reference's date and the keyword it comes from: USEAFTER, else (Liger/IRIS) EXPDTST or EXPJDST."""
    if "USEAFTER" in keys or (keys.get("INSTRUME") or "").upper() not in LIGER_INSTRUMENTS:
        return parse_useafter(keys.get("USEAFTER")), "USEAFTER"
    return reference_date(keys), "EXPDTST" if keys.get("EXPDTST") else "EXPJDST"


def exposure_start(meta: Meta) -> dt.datetime | None:
    """Return the exposure start from DATE-OBS/TIME-OBS, else EXPSTART (MJD), else None."""
    exposure = meta.exposure
    if exposure.date_obs:
        text = f"{exposure.date_obs.strip()}T{(exposure.time_obs or '00:00:00').strip()}"
        start = parse_useafter(text)
        if start is not None:
            return start
    if exposure.start is not None:
        return MJD_EPOCH + dt.timedelta(days=float(exposure.start))
    return None


def exposure_keys(meta: Meta) -> dict[str, str | None]:
    """Return the exposure's values of the selection keywords, upper-cased (None when absent)."""
    values = {
        "INSTRUME": meta.instrument.name, "DETECTOR": meta.instrument.detector,
        "EXP_TYPE": meta.exposure.type, "FILTER": meta.instrument.filter,
        "PUPIL": meta.instrument.pupil, "SUBARRAY": meta.subarray.name,
        "CHANNEL": meta.instrument.channel, "MODULE": meta.instrument.module,
        "READPATT": meta.exposure.readpatt,
        "SUBSTRT1": meta.subarray.xstart, "SUBSTRT2": meta.subarray.ystart,
        "SUBSIZE1": meta.subarray.xsize, "SUBSIZE2": meta.subarray.ysize,
    }
    return {key: (str(value).strip().upper() or None) if value is not None else None for key, value in values.items()}


def _window(keys: Mapping[str, str | None]) -> tuple[int, int, int, int] | None:
    """Return ``(x0, y0, x1, y1)`` (1-based, inclusive) of SUBSTRT/SUBSIZE keywords; None when incomplete."""
    try:
        x0, y0, nx, ny = (int(float(keys[key])) for key in WINDOW_KEYS)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return None
    return x0, y0, x0 + nx - 1, y0 + ny - 1


def liger_window_rule(reference: Mapping[str, str], exposure: Mapping[str, str | None]) -> tuple[bool, str, bool] | None:
    """Compare a Liger/IRIS reference's window with the exposure's: (matches, how in words, exact).

    Its SUBSTRT/SUBSIZE window must contain the exposure's. None when the reference names no
    window (FULL, a wildcard, or no SUBSTRT/SUBSIZE): its SUBARRAY is then matched as any other's.
    """
    name = (reference.get("SUBARRAY") or "").strip().upper()
    theirs = _window(reference)
    if theirs is None or name in FULL_ONLY | WILDCARDS:
        return None
    ours = _window(exposure)
    if ours is None:
        return False, f"SUBARRAY {name} window needs the exposure's SUBSTRT/SUBSIZE, which it lacks", False
    text = f"{theirs[0]}:{theirs[2]}×{theirs[1]}:{theirs[3]}"
    if ours == theirs:
        return True, f"SUBARRAY window {text} equals the exposure's", True
    if theirs[0] <= ours[0] and theirs[1] <= ours[1] and ours[2] <= theirs[2] and ours[3] <= theirs[3]:
        return True, f"SUBARRAY window {text} contains the exposure's", False
    return False, (f"SUBARRAY window {text} does not contain the exposure's "
                   f"{ours[0]}:{ours[2]}×{ours[1]}:{ours[3]}"), False


FULL_ONLY = frozenset({"FULL"})


@attrs.frozen
class Rule:
    """How one reference constrains one selection keyword: the allowed values, or a wildcard.

    ``source`` is the keyword that carries the constraint: the keyword itself, or its ``P_*``
    pattern, which decides when present.
    """

    key: str
    source: str
    text: str
    allowed: frozenset[str]
    wildcard: bool


def rule_of(key: str, reference: Mapping[str, str]) -> Rule | None:
    """Return the reference's constraint on ``key`` (None when the reference does not constrain it)."""
    pattern_key = PATTERN_KEYS.get(key)
    pattern = reference.get(pattern_key) if pattern_key else None
    source, text = (pattern_key, pattern) if pattern and pattern.strip() else (key, reference.get(key))
    return None if text is None else _rule(key, source, text)


@functools.lru_cache(maxsize=4096)
def _rule(key: str, source: str, text: str) -> Rule:
    """The rule ``text`` of keyword ``source`` makes on ``key``; shared, as thousands of references repeat a few."""
    allowed = frozenset(part.strip().upper() for part in text.split("|"))
    wildcard = allowed <= WILDCARDS or bool(allowed & (WILDCARDS - {""}))
    return Rule(key, source, text.strip(), allowed, wildcard)


def apply_rule(rule: Rule, value: str | None) -> tuple[bool, str, bool]:
    """Compare the exposure's ``value`` with a rule: return (matches, how in words, whether specific).

    A wildcard matches anything. A FULL-frame reference covers any subarray of its detector (the
    step cuts it out) but counts as less specific than an exact subarray match.
    """
    if rule.wildcard:
        return True, f"{rule.key} {rule.text} (wildcard)", False
    if value is not None and value in rule.allowed:
        if rule.source == rule.key and len(rule.allowed) == 1:
            return True, f"{rule.key}={value}", True
        return True, f"{rule.key}={value} in {rule.source}", True
    if rule.key == "SUBARRAY" and rule.allowed == FULL_ONLY:
        return True, f"SUBARRAY FULL covers {value or 'the exposure (no SUBARRAY)'}", False
    return False, f"{rule.source} {rule.text} does not match the exposure's {rule.key} {value or '(none)'}", False


@attrs.frozen
class Candidate:
    """An indexed reference of one REFTYPE and instrument, with its parsed USEAFTER."""

    path: Path
    folder: FolderIndex = attrs.field(eq=False, repr=False)
    relative: str
    entry: IndexEntry
    useafter: dt.datetime | None
    rules: tuple[Rule, ...]
    dated_by: str = "USEAFTER"

    @classmethod
    def of(cls, index: FolderIndex, relative: str, entry: IndexEntry) -> Candidate:
        """Return the candidate an index entry makes: its rules on the selection keywords, its date parsed."""
        rules = tuple(rule for key in MATCH_KEYS if (rule := rule_of(key, entry.keys)) is not None)
        date, dated_by = reference_dating(entry.keys)
        return cls(index.folder / relative, index, relative, entry, date, rules, dated_by)


@attrs.frozen
class Group:
    """The candidates of one REFTYPE and instrument, also bucketed by the DETECTOR they allow.

    ``by_detector`` maps each detector a reference names (exactly or in P_DETECT) to those
    references; ``any_detector`` holds the ones that do not constrain the detector.
    """

    candidates: tuple[Candidate, ...]
    by_detector: Mapping[str, tuple[Candidate, ...]]
    any_detector: tuple[Candidate, ...]

    @classmethod
    def of(cls, candidates: list[Candidate]) -> Group:
        buckets: dict[str, list[Candidate]] = {}
        anywhere = []
        for candidate in candidates:
            rule = next((r for r in candidate.rules if r.key == "DETECTOR"), None)
            if rule is None or rule.wildcard:
                anywhere.append(candidate)
                continue
            for detector in rule.allowed - {""}:
                buckets.setdefault(detector, []).append(candidate)
        return cls(tuple(candidates), {k: tuple(v) for k, v in buckets.items()}, tuple(anywhere))

    def for_detector(self, detector: str | None) -> tuple[Candidate, ...]:
        """The candidates that may match ``detector`` (all of them when none names it)."""
        pool = (*self.by_detector.get(detector or "", ()), *self.any_detector)
        return pool if pool else self.candidates


@attrs.frozen
class Rejection:
    """A reference of the requested type that was not chosen, and why."""

    path: Path
    reason: str


@attrs.frozen
class Choice:
    """The outcome of selecting one reference type for one exposure.

    ``path`` is the chosen file (None when nothing matched or when ``ambiguous`` lists several
    equally good files); ``matched`` says, per keyword, how the chosen file matched; ``rejected``
    says why each other file of the type was not taken, except the ``other_detectors`` files
    that name only other detectors (counted, not listed); ``note`` explains an empty result;
    ``applicable`` is False when the type does not apply to the exposure (the rules of a CRDS
    context say N/A): its step has nothing to apply, which is not a missing reference.
    """

    reftype: str
    path: Path | None = None
    matched: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    useafter: str | None = None
    rejected: tuple[Rejection, ...] = attrs.field(default=(), converter=tuple)
    ambiguous: tuple[Path, ...] = attrs.field(default=(), converter=tuple)
    note: str = ""
    other_detectors: int = 0
    applicable: bool = True

    @property
    def source(self) -> str:
        """What R_* records for a store-chosen file: ``crds://<basename>`` (``N/A`` when none)."""
        return f"crds://{self.path.name}" if self.path is not None else NOT_APPLICABLE

    def explanation(self) -> str:
        """Return in words why no file was chosen (empty when one was)."""
        if self.path is not None:
            return ""
        if self.ambiguous:
            names = ", ".join(p.name for p in self.ambiguous)
            return (f"{names} match equally well (same specificity and USEAFTER {self.useafter}); "
                    f"choose one with --ref {self.reftype}=PATH")
        if self.note:
            return self.note
        return f"no {self.reftype.upper()} reference matched"


class ReferenceSource(Protocol):
    """Anything that chooses an exposure's reference of one type: the store, or choices made earlier."""

    def select(self, meta: Meta, reftype: str) -> Choice:
        """Choose the ``reftype`` reference for the exposure described by ``meta``."""
        ...


TSO_IMAGING_STAND_INS: Mapping[str, str] = frozen_mapping({"NRC_TSIMAGE": "NRC_IMAGE"})
"""The imaging EXP_TYPE whose references serve each time-series imaging EXP_TYPE.

An imaging exposure with TSOVISIT=T keeps an imaging EXP_TYPE (MIR_IMAGE, NRC_IMAGE, ...) and
matches those references as it is; only NIRCam has an EXP_TYPE of its own for imaging TSO.
"""


def imaging_stand_in(exposure: Mapping[str, str | None], constraints: Iterable[Iterable[Rule]]) -> str | None:
    """Return the EXP_TYPE to match in place of a time-series imaging exposure's own, or None.

    CRDS serves NRC_TSIMAGE with the imaging (NRC_IMAGE) references of the exposure's detector,
    filter and pupil, although their headers say EXP_TYPE=NRC_IMAGE and carry no P_EXP_TY. The
    header match does the same unless one of the candidates (``constraints``: each one's rules)
    fits the exposure in every other keyword and names its own EXP_TYPE, exactly or in P_EXP_TY.
    """
    own = exposure.get("EXP_TYPE")
    stand_in = TSO_IMAGING_STAND_INS.get(own or "")
    if stand_in is None:
        return None
    for rules in map(tuple, constraints):
        names_own = any(r.key == "EXP_TYPE" and not r.wildcard and own in r.allowed for r in rules)
        if names_own and all(apply_rule(r, exposure.get(r.key))[0] for r in rules if r.key != "EXP_TYPE"):
            return None
    return stand_in


def choose(group: Group, reftype: str, exposure: Mapping[str, str | None],
           start: dt.datetime | None) -> tuple[Choice, list[Candidate]]:
    """Choose the group's candidate for an exposure; return the choice and every candidate that matched.

    ``reftype`` is lower case; ``exposure`` holds the exposure's selection keywords
    (:func:`exposure_keys`) and ``start`` its start (:func:`exposure_start`).
    """
    rejected: list[Rejection] = []
    passed: list[tuple[int, dt.datetime, Candidate, tuple[str, ...]]] = []
    pool = group.for_detector(exposure["DETECTOR"])
    others = len(group.candidates) - len(pool)
    served: tuple[str, ...] = ()
    stand_in = imaging_stand_in(exposure, (c.rules for c in pool))
    if stand_in is not None:
        served = (f"EXP_TYPE {exposure['EXP_TYPE']} served by {stand_in} references (no {reftype.upper()} "
                  f"reference names {exposure['EXP_TYPE']})",)
        exposure = {**exposure, "EXP_TYPE": stand_in}
    for candidate in pool:
        reason, specificity, how = _verdict(candidate, reftype, exposure, start)
        if reason:
            rejected.append(Rejection(candidate.path, reason))
        else:
            passed.append((specificity, candidate.useafter, candidate, how))
    if not passed:
        detector = f" {exposure['DETECTOR']}" if exposure["DETECTOR"] else ""
        return Choice(reftype, rejected=rejected, other_detectors=others,
                      note=f"none of {len(pool)} {reftype.upper()} reference(s) for {exposure['INSTRUME']}"
                           f"{detector} matched{'; ' + served[0] if served else ''}"), []
    passed.sort(key=lambda item: (item[0], item[1]), reverse=True)
    best_specificity, best_useafter, best, how = passed[0]
    ties = [c for s, u, c, _ in passed if (s, u) == (best_specificity, best_useafter)]
    for specificity, useafter, candidate, _ in passed[len(ties):]:
        why = (f"less specific match than {best.path.name} ({specificity} vs {best_specificity} keywords)"
               if specificity < best_specificity else
               f"{candidate.dated_by} {useafter.isoformat()} is older than {best.path.name}'s {best_useafter.isoformat()}")
        rejected.append(Rejection(candidate.path, why))
    useafter_text = best_useafter.isoformat()
    candidates = [item[2] for item in passed]
    if len(ties) > 1:
        return Choice(reftype, rejected=rejected, ambiguous=tuple(c.path for c in ties),
                      useafter=useafter_text, other_detectors=others), candidates
    return Choice(reftype, path=best.path, matched=(*how, *served), useafter=useafter_text, rejected=rejected,
                  other_detectors=others), candidates


def _verdict(candidate: Candidate, reftype: str, exposure: Mapping[str, str | None],
             start: dt.datetime | None) -> tuple[str, int, tuple[str, ...]]:
    """Return (reason it fails or "", number of specific matches, how each keyword matched)."""
    keys = candidate.entry.keys
    if reftype == "dark" and (candidate.entry.sci_ndim or 2) > 2:
        return "ramp-level JWST dark (3-D/4-D SCI), not applicable to rate data", 0, ()
    specificity = 0
    by_window = liger_window_rule(keys, exposure) if exposure["INSTRUME"] in LIGER_INSTRUMENTS else None
    window = ()
    if by_window is not None:
        covers, how_window, exact = by_window
        if not covers:
            return how_window, 0, ()
        specificity += exact
        window = (how_window,)
    for rule in candidate.rules:
        if rule.wildcard or (window and rule.key == "SUBARRAY"):
            continue
        value = exposure[rule.key]
        if value in rule.allowed:
            specificity += 1
        elif not (rule.key == "SUBARRAY" and rule.allowed == FULL_ONLY):
            return apply_rule(rule, value)[1], 0, ()
    dated_by = candidate.dated_by
    if candidate.useafter is None:
        return f"{dated_by} {keys.get(dated_by, '(missing)')!r} is not a date", 0, ()
    if start is not None and candidate.useafter > start:
        return (f"{dated_by} {candidate.useafter.isoformat()} is later than the exposure start "
                f"{start.isoformat()}"), 0, ()
    how = [f"REFTYPE={reftype.upper()}", f"INSTRUME={exposure['INSTRUME']}",
           *(apply_rule(rule, exposure[rule.key])[1] for rule in candidate.rules
             if not (window and rule.key == "SUBARRAY")), *window,
           f"{dated_by} {candidate.useafter.isoformat()} <= "
           f"{start.isoformat() if start else '(exposure start unknown)'}"]
    return "", specificity, tuple(how)
