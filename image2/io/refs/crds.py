"""Reference choice by the rules of a local CRDS cache (.pmap → .imap → .rmap), fully offline.

Which exposures a reference serves is decided by the CRDS rules, not by the file's own header
(a NIRCam flat whose header says EXP_TYPE=NRC_IMAGE serves NRC_TSIMAGE because its rmap row
says ``NRC_IMAGE|NRC_TSIMAGE``). ``CrdsRules`` evaluates one context of a user's CRDS cache with
the ``crds`` library (extra ``image2[crds]``, imported on first use) exactly as
``crds.getreferences`` computes best references locally — conditioned header, minimised to the
context's parameters, ``get_best_references`` of the .pmap — but at the rmap level, so no
server, cache config or download is ever involved. While crds runs, CRDS_SERVER_URL names a
serverless endpoint (crds then skips every server call) and CRDS_MODE is ``local``.

Types the context does not cover (an instrument it does not know, such as Liger/IRIS, or a
type missing from the instrument's .imap) are chosen by header matching (a fallback store);
a type the rules declare N/A is not applicable; a rule that matches nothing, or names a file
that is not in the cache, leaves the type unfilled, as it would for jwst.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.metadata
import importlib.util
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from image2.core.frozen import frozen_mapping
from image2.core.meta import KEYWORDS, Meta
from image2.errors import InvalidInputError
from image2.core.steps import needed_reftypes
from image2.io.refs.selection import Choice, ReferenceSource, Rejection
from image2.io.refs.store import ReferenceStore, crds_reference_folders

log = logging.getLogger(__name__)

SERVERLESS_URL = "https://jwst-serverless-mode.stsci.edu"
"""A CRDS server URL crds recognises as serverless: it then raises instead of connecting."""

OFFLINE_ENVIRONMENT: Mapping[str, str] = frozen_mapping({"CRDS_SERVER_URL": SERVERLESS_URL, "CRDS_MODE": "local"})
"""The environment crds sees while it chooses: no server, best references computed locally."""

CRDS_VARIABLES = ("CRDS_PATH", "CRDS_PATH_SINGLE", "CRDS_REFPATH", "CRDS_REFPATH_SINGLE", "CRDS_MAPPATH",
                  "CRDS_MAPPATH_SINGLE", "CRDS_CFGPATH", "CRDS_CFGPATH_SINGLE", "CRDS_CONTEXT")
"""The CRDS variables that say where a cache is and which context chooses."""

CONTEXT_NAME = re.compile(r"^jwst_(\d+)\.pmap$")
LATEST_NAMES = frozenset({"latest", "jwst-latest", "jwst-operational", "jwst-edit"})
"""Symbolic context names, resolved offline to the newest .pmap of the cache."""

NOT_FOUND = "NOT FOUND "
SPECIAL_CHOICES = frozenset({"N/A", "OMIT"})
"""rmap choices that are not files: the type does not apply, or is left out."""
NEEDS_CRDS = "choosing by CRDS rules needs the crds package: pip install 'image2[crds]'"

CRDS_KEYWORDS: Mapping[str, str] = frozen_mapping({
    "TELESCOP": "META.TELESCOPE", "INSTRUME": "META.INSTRUMENT.NAME",
    "DETECTOR": "META.INSTRUMENT.DETECTOR", "FILTER": "META.INSTRUMENT.FILTER",
    "PUPIL": "META.INSTRUMENT.PUPIL", "CHANNEL": "META.INSTRUMENT.CHANNEL",
    "MODULE": "META.INSTRUMENT.MODULE", "BAND": "META.INSTRUMENT.BAND",
    "CORONMSK": "META.INSTRUMENT.CORONAGRAPH", "GRATING": "META.INSTRUMENT.GRATING",
    "LAMP": "META.INSTRUMENT.LAMP_STATE", "EXP_TYPE": "META.EXPOSURE.TYPE",
    "READPATT": "META.EXPOSURE.READPATT", "NGROUPS": "META.EXPOSURE.NGROUPS",
    "NINTS": "META.EXPOSURE.NINTS", "NOUTPUTS": "META.EXPOSURE.NOUTPUTS",
    "EXPSTART": "META.EXPOSURE.START_TIME", "SUBARRAY": "META.SUBARRAY.NAME",
    "SUBSTRT1": "META.SUBARRAY.XSTART", "SUBSTRT2": "META.SUBARRAY.YSTART",
    "SUBSIZE1": "META.SUBARRAY.XSIZE", "SUBSIZE2": "META.SUBARRAY.YSIZE",
    "FASTAXIS": "META.SUBARRAY.FASTAXIS", "SLOWAXIS": "META.SUBARRAY.SLOWAXIS",
    "DATE-OBS": "META.OBSERVATION.DATE", "TIME-OBS": "META.OBSERVATION.TIME",
    "TSOVISIT": "META.VISIT.TSOVISIT", "VISITYPE": "META.VISIT.TYPE", "CROWDFLD": "META.VISIT.CROWDED_FIELD",
})
"""PRIMARY keywords of an exposure that JWST rmaps select on, by their jwst data-model path."""

SHORT_NAMES: Mapping[str, str] = frozen_mapping({path: keyword for keyword, path in CRDS_KEYWORDS.items()})


@attrs.frozen
class RuleChoice(Choice):
    """A Choice made by the rules of a CRDS context (``applicable`` False when they declare the type N/A).

    ``rmap`` is the rules file that decided (None when the .imap did); ``crds_version`` the crds
    that read the rules, recorded with the context in the products (CRDS_CTX, CRDS_VER).
    """

    context: str = ""
    rmap: str | None = None
    crds_version: str = ""


@attrs.frozen
class CrdsCache:
    """Where one CRDS cache keeps its JWST rules, references and synced server configuration."""

    mappings: Path = attrs.field(converter=Path)
    references: tuple[Path, ...] = attrs.field(default=(), converter=lambda v: tuple(map(Path, v)))
    config: Path | None = None

    @classmethod
    def at(cls, root: Path | str) -> CrdsCache:
        """The cache rooted at ``root`` as $CRDS_PATH is (``mappings/jwst``, ``references/jwst``, ``config/jwst``)."""
        root = Path(root).expanduser().resolve()
        return cls(root / "mappings" / "jwst", (root / "references" / "jwst",), root / "config" / "jwst")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> CrdsCache | None:
        """The cache the CRDS variables describe (CRDS_MAPPATH[_SINGLE], CRDS_PATH[_SINGLE], ...), or None."""
        environ = os.environ if environ is None else environ
        mappings = _cache_folder(environ, "CRDS_MAPPATH", "mappings")
        if mappings is None:
            return None
        return cls(mappings, crds_reference_folders(environ), _cache_folder(environ, "CRDS_CFGPATH", "config"))

    def contexts(self) -> tuple[str, ...]:
        """The pipeline contexts (``jwst_NNNN.pmap``) of the cache, oldest first."""
        try:
            names = [p.name for p in self.mappings.iterdir() if CONTEXT_NAME.match(p.name)]
        except OSError:
            return ()
        return tuple(sorted(names, key=lambda name: int(CONTEXT_NAME.match(name).group(1))))

    def context_name(self, requested: str | None = None, environ: Mapping[str, str] | None = None) -> str:
        """Return the context to use: ``requested``, else $CRDS_CONTEXT, else the newest .pmap.

        ``latest`` (and ``jwst-latest``, ``jwst-operational``, ``jwst-edit``) mean the newest
        .pmap here: without a server there is nothing newer to know of. Date-based names need
        the CRDS server and are refused.
        """
        environ = os.environ if environ is None else environ
        name = (requested or environ.get("CRDS_CONTEXT") or "").strip()
        available = self.contexts()
        if not available:
            raise InvalidInputError(self.mappings, "no CRDS context (jwst_NNNN.pmap) in this mappings folder")
        if not name or name.lower() in LATEST_NAMES:
            return available[-1]
        if name not in available:
            known = ", ".join(available[-5:])
            hint = " (a date-based context needs the CRDS server)" if not name.endswith(".pmap") else ""
            raise InvalidInputError(self.mappings, f"context {name} is not in this CRDS cache{hint}; it has {known}")
        return name

    def locate(self, name: str, instrument: str | None, folders: Iterable[Path] = ()) -> Path | None:
        """Return where reference ``name`` is: ``<folder>/<instrument>/name`` or ``<folder>/name``."""
        subfolder = (instrument or "").lower()
        for folder in (*self.references, *folders):
            places = (folder / subfolder / name, folder / name) if subfolder else (folder / name,)
            found = next((place for place in places if place.is_file()), None)
            if found is not None:
                return found
        return None

    def bad_files(self) -> frozenset[str]:
        """The references and rules the synced server configuration marks scientifically invalid."""
        if self.config is None:
            return frozenset()
        path = self.config / "server_config"
        try:
            info = ast.literal_eval(path.read_text())
        except FileNotFoundError:
            return frozenset()
        except (OSError, ValueError, SyntaxError) as error:
            log.warning("%s: cannot read the CRDS server configuration (%s); no file is treated as bad",
                        path, error, extra={"file": str(path)})
            return frozenset()
        listed = info.get("bad_files_list") or str(info.get("bad_files", "")).split()
        return frozenset(map(str, listed))


def _cache_folder(environ: Mapping[str, str], variable: str, subdir: str) -> Path | None:
    """Return a JWST cache sub-folder as crds derives it from the environment, if it exists."""
    for name, tail in ((f"{variable}_SINGLE", ()), (variable, ("jwst",)),
                       ("CRDS_PATH_SINGLE", (subdir,)), ("CRDS_PATH", (subdir, "jwst"))):
        root = environ.get(name)
        if root:
            folder = Path(root).expanduser().joinpath(*tail).resolve()
            return folder if folder.is_dir() else None
    return None


def crds_available() -> bool:
    """True when crds and stdatamodels (which crds needs for JWST rules) are installed; nothing is imported.

    Both come with the extra ``image2[crds]``.
    """
    return all(importlib.util.find_spec(name) is not None for name in ("crds", "stdatamodels"))


@functools.cache
def crds_version() -> str:
    """The installed crds version, as jwst records it in CRDS_VER."""
    return importlib.metadata.version("crds")


def context_cards(choices: Iterable[Choice]) -> dict[str, str]:
    """Return the PRIMARY cards recording the CRDS context that chose (CRDS_CTX, CRDS_VER); none without one."""
    chosen_by_rules = next((c for c in choices if isinstance(c, RuleChoice) and c.context), None)
    if chosen_by_rules is None:
        return {}
    return {"CRDS_CTX": chosen_by_rules.context, "CRDS_VER": chosen_by_rules.crds_version}


_ENVIRONMENT_LOCK = threading.RLock()


@attrs.frozen
class _CrdsModules:
    exceptions: Any
    rmap: Any
    selectors: Any
    utils: Any


@contextlib.contextmanager
def offline_crds() -> Iterator[_CrdsModules]:
    """Run crds with no server: yield its modules with :data:`OFFLINE_ENVIRONMENT` set, then restore.

    crds reads its variables on every call, so they are set only while it runs.
    """
    with _ENVIRONMENT_LOCK:
        saved = {name: os.environ.get(name) for name in OFFLINE_ENVIRONMENT}
        os.environ.update(OFFLINE_ENVIRONMENT)
        try:
            try:
                from crds.core import exceptions, rmap, selectors, utils
            except ImportError as error:
                raise InvalidInputError("crds", NEEDS_CRDS) from error
            yield _CrdsModules(exceptions, rmap, selectors, utils)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def exposure_keywords(meta: Meta) -> dict[str, Any]:
    """Return the exposure's PRIMARY keywords: carried cards, then the typed fields' values."""
    values = {card.keyword: card.value for card in meta.header("PRIMARY")}
    for keyword in KEYWORDS:
        if keyword.hdu == "PRIMARY":
            value = getattr(getattr(meta, keyword.group), keyword.field)
            if value is not None:
                values[keyword.keyword] = value
    return values


def crds_parameters(exposure: Meta | Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """Return the best-reference parameters of an exposure under their CRDS names (META.INSTRUMENT.DETECTOR).

    ``exposure`` is an image2 Meta, or a mapping of FITS keywords (DETECTOR) and/or jwst
    data-model paths (``meta.instrument.detector``), as ``get_crds_parameters`` gives them.
    """
    items = exposure_keywords(exposure) if isinstance(exposure, Meta) else exposure
    parameters: dict[str, str | int | float | bool] = {}
    for key, value in items.items():
        if value is None or not isinstance(value, (str, int, float, bool)):
            continue
        name = str(key).strip().upper()
        name = name if name.startswith("META.") else CRDS_KEYWORDS.get(name, "")
        if name:
            parameters[name] = value
    return parameters


class CrdsRules:
    """Chooses references by the rules of one context of a CRDS cache, offline.

    ``context`` is a .pmap name (default: $CRDS_CONTEXT, else the cache's newest). ``fallback``
    makes the header-matching store used for what the context does not cover; it is built on
    first need. ``folders`` are searched, after the cache, for a file the rules name.
    """

    def __init__(self, cache: CrdsCache, context: str | None = None, *,
                 fallback: Callable[[], ReferenceSource] | None = None, folders: Iterable[Path | str] = (),
                 environ: Mapping[str, str] | None = None) -> None:
        self.cache = cache
        self.context = cache.context_name(context, environ)
        self.folders = tuple(Path(f).expanduser().resolve() for f in folders)
        self._make_fallback = fallback
        self._fallback: ReferenceSource | None = None
        self._bad_files: frozenset[str] | None = None
        self._last: tuple[Meta, dict[str, Choice]] | None = None

    @property
    def header_store(self) -> ReferenceSource | None:
        """The header-matching store used for what the rules do not cover (None until first needed)."""
        return self._fallback

    def select(self, meta: Meta, reftype: str) -> Choice:
        """Choose the ``reftype`` reference for the exposure described by ``meta``.

        The first type asked of an exposure chooses every type it needs in one pass over the
        rules; the next types of the same ``meta`` object are answered from that pass.
        """
        reftype = reftype.lower()
        last = self._last
        if last is None or last[0] is not meta or reftype not in last[1]:
            last = (meta, self.choose(meta, tuple(dict.fromkeys((*needed_reftypes(meta), reftype)))))
            self._last = last
        return last[1][reftype]

    def choose(self, exposure: Meta | Mapping[str, Any], reftypes: Sequence[str]) -> dict[str, Choice]:
        """Choose every type of ``reftypes`` for an exposure: {reftype: Choice}, in one pass over the rules."""
        reftypes = [r.lower() for r in reftypes]
        with offline_crds() as crds:
            try:
                by_rules, uncovered = self._by_rules(crds, crds_parameters(exposure), reftypes)
            except (crds.exceptions.MappingError, OSError, SyntaxError) as error:
                raise InvalidInputError(self.cache.mappings / self.context,
                                        f"cannot load the CRDS rules: {error}") from error
        version = crds_version()
        chosen: dict[str, Choice] = {r: attrs.evolve(c, crds_version=version) for r, c in by_rules.items()}
        for reftype, why in uncovered.items():
            chosen[reftype] = (self._fall_back(exposure, reftype, why) if isinstance(exposure, Meta)
                               else Choice(reftype, note=f"{why}; header matching needs the exposure's Meta"))
        return {reftype: chosen[reftype] for reftype in reftypes}

    def _by_rules(self, crds: _CrdsModules, parameters: Mapping[str, Any],
                  reftypes: Sequence[str]) -> tuple[dict[str, RuleChoice], dict[str, str]]:
        """Return ({reftype: choice} for the types the rules cover, {reftype: why not} for the others)."""
        pmap = crds.rmap.get_cached_mapping(self.context, path=str(self.cache.mappings))
        header = crds.utils.condition_header(parameters)
        instrument = header.get(pmap.instrument_key, "UNDEFINED")
        try:
            imap = pmap.get_imap(instrument)
        except crds.exceptions.CrdsUnknownInstrumentError:
            return {}, {r: f"context {self.context} has no rules for instrument {instrument}" for r in reftypes}
        chosen: dict[str, RuleChoice] = {}
        uncovered: dict[str, str] = {}
        rmaps = {}
        for reftype in reftypes:
            try:
                rmaps[reftype] = imap.get_rmap(reftype)
            except crds.exceptions.CrdsUnknownReftypeError:
                uncovered[reftype] = f"context {self.context} has no {reftype.upper()} rules for {instrument}"
            except (crds.exceptions.IrrelevantReferenceTypeError, crds.exceptions.OmitReferenceTypeError):
                chosen[reftype] = RuleChoice(
                    reftype, note=f"not applicable: {_base(imap.filename)} of context {self.context} declares "
                                  f"{reftype.upper()} N/A for {instrument}", context=self.context, applicable=False)
        if rmaps:
            minimal = pmap.minimize_header(header)
            best = pmap.get_best_references(minimal, include=list(rmaps))
            for reftype, rules in rmaps.items():
                chosen[reftype] = self._outcome(crds, reftype, rules, best.get(reftype), minimal, instrument)
        return chosen, uncovered

    def _outcome(self, crds: _CrdsModules, reftype: str, rules: Any, best: str | None,
                 header: Mapping[str, str], instrument: str) -> RuleChoice:
        """Turn crds's answer for one type into a RuleChoice (file located, or why there is none)."""
        rmap_name = _base(rules.filename)
        where = f"{rmap_name} of context {self.context}"
        if best is None or best.strip().upper() == "NOT FOUND N/A":
            return RuleChoice(reftype, note=f"not applicable: {where} says N/A for this exposure",
                              context=self.context, rmap=rmap_name, applicable=False)
        if best.startswith(NOT_FOUND):
            rows = closest_rows(crds, rules, header)
            return RuleChoice(reftype, note=f"no rule of {where} matches: {best[len(NOT_FOUND):].strip()}",
                              rejected=rows, context=self.context, rmap=rmap_name)
        if best in self._bad():
            return RuleChoice(reftype, note=f"{best}, chosen by {where}, is marked scientifically invalid by "
                                            "CRDS (bad_files); choose a file with --ref",
                              context=self.context, rmap=rmap_name)
        path = self.cache.locate(best, instrument, self.folders)
        if path is None:
            return RuleChoice(reftype, note=f"{best}, chosen by {where}, is not in the cache "
                                            f"({', '.join(map(str, self.cache.references)) or 'no reference folder'}); "
                                            f"fetch it while online: crds sync --contexts {self.context} "
                                            "--fetch-references", context=self.context, rmap=rmap_name)
        parameters = [key for group in rules.parkey for key in group if key in header]
        matched = (f"rules: {where}",
                   *(f"{SHORT_NAMES.get(key, key)}={header[key]}" for key in parameters))
        return RuleChoice(reftype, path=path, matched=matched, context=self.context, rmap=rmap_name)

    def _bad(self) -> frozenset[str]:
        if self._bad_files is None:
            self._bad_files = self.cache.bad_files()
        return self._bad_files

    def _fall_back(self, meta: Meta, reftype: str, why: str) -> Choice:
        """Choose a type the rules do not cover by header matching, saying so when nothing is found."""
        if self._fallback is None and self._make_fallback is not None:
            self._fallback = self._make_fallback()
        if self._fallback is None:
            return Choice(reftype, note=f"{why}, and no reference folder to match headers in")
        choice = self._fallback.select(meta, reftype)
        return choice if choice.path is not None else attrs.evolve(choice, note=f"{why}; {choice.explanation()}")


def closest_rows(crds: _CrdsModules, rules: Any, header: Mapping[str, str]) -> tuple[Rejection, ...]:
    """Return the rmap's rows, nearest to matching ``header`` first (fewest refusing parameters), each with why.

    Each parameter is compared with crds's own matcher for the row's value (``|`` alternatives,
    ``N/A`` don't-care, globs); a row whose every parameter matches is refused by its USEAFTER
    dates. Rows that give no file (N/A) and rmaps of other layouts are not listed.
    """
    selector = rules.selector
    parameters = tuple(rules.parkey[0]) if rules.parkey else ()
    if not isinstance(selector, crds.selectors.MatchSelector) or not parameters:
        return ()
    date = " ".join(str(header.get(key, "")) for key in rules.parkey[1]) if len(rules.parkey) > 1 else ""
    scored = []
    for values, choice in zip(selector.keys(), selector.choices()):
        values = values if isinstance(values, tuple) else (values,)
        refusals = [f"{SHORT_NAMES.get(key, key)} {header.get(key, 'UNDEFINED')} not in {value}"
                    for key, value in zip(parameters, values)
                    if crds.selectors.matcher(value).match(header.get(key, "UNDEFINED")) == -1]
        name, dated = _row_file(choice, date)
        if name.upper() in SPECIAL_CHOICES:
            continue
        if not refusals and not dated:
            refusals = [f"its first USEAFTER is later than the exposure ({date})"]
        scored.append((len(refusals), name, "; ".join(refusals)))
    scored.sort(key=lambda item: item[0])
    return tuple(Rejection(Path(name), why) for _, name, why in scored)


def _row_file(choice: Any, date: str) -> tuple[str, bool]:
    """Return the file a row would give at ``date`` (its first when none yet) and whether one applies."""
    if isinstance(choice, str):
        return choice, True
    dates, files = list(choice.keys()), list(choice.choices())
    usable = [f for d, f in zip(dates, files) if str(d) <= date]
    if usable:
        return str(usable[-1]), True
    return str(files[0]) if files else "(empty row)", False


def _base(filename: str) -> str:
    return os.path.basename(str(filename))


def reference_selector(reference_dirs: Iterable[Path | str] = (), *, crds_path: Path | str | None = None,
                       crds_context: str | None = None, cache_dir: Path | str | None = None,
                       environ: Mapping[str, str] | None = None) -> ReferenceSource:
    """Return what chooses references: the rules of a CRDS cache when one with mappings is available, else
    header matching over ``reference_dirs`` and the cache's references.

    The cache is ``crds_path`` (which then replaces $CRDS_PATH) or the one the CRDS variables
    describe; asking for it explicitly
    (``crds_path`` or ``crds_context``) without usable rules, or without the crds package,
    is an error; finding $CRDS_PATH without them falls back to header matching.
    """
    environ = os.environ if environ is None else environ
    folders = tuple(reference_dirs)
    explicit = crds_path is not None or crds_context is not None
    cache = CrdsCache.at(crds_path) if crds_path is not None else CrdsCache.from_environ(environ)
    extra = cache.references if crds_path is not None else ()

    def header_matching() -> ReferenceStore:
        """The header-matching store: ``reference_dirs`` plus the given cache's, else $CRDS_PATH's, references."""
        return ReferenceStore((*folders, *(f for f in extra if f.is_dir())), cache_dir,
                              use_crds=crds_path is None, environ=environ)

    where = crds_path if crds_path is not None else "$CRDS_PATH"
    if cache is None or not cache.contexts():
        if explicit:
            raise InvalidInputError(where, "no CRDS rules here (expected mappings/jwst/jwst_NNNN.pmap)")
        return header_matching()
    if not crds_available():
        if explicit:
            raise InvalidInputError(where, NEEDS_CRDS)
        log.warning("%s: CRDS rules found but the crds package is not installed (pip install 'image2[crds]'); "
                    "choosing references by header matching", cache.mappings, extra={"file": str(cache.mappings)})
        return header_matching()
    return CrdsRules(cache, crds_context, fallback=header_matching, folders=folders, environ=environ)
