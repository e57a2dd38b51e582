"""A local, offline store of CRDS-format reference files that picks the right one per exposure.

``ReferenceStore`` indexes the headers (FITS PRIMARY / ASDF ``meta``) of the reference files in
one or more folders and the user's CRDS cache, keeps that index as JSON in a cache folder of
ours (never in a reference folder) and refreshes it from file mtimes and sizes. Selection
follows reference_files.md §10: every selection keyword present in a reference must match the
exposure (exact, ``ANY``/``N/A``/``GENERIC`` wildcards, ``P_*`` patterns with ``|``
alternatives); among the matches the most specific one, then the newest USEAFTER not later
than the exposure start, wins; two equally good files are reported as ambiguous. A time-series
imaging exposure is served by the imaging references when none names its own EXP_TYPE
(:func:`imaging_stand_in`), as the CRDS rules do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import asdf
import attrs
import yaml
from astropy.io import fits

from image2.core.frozen import frozen_mapping
from image2.core.meta import Meta
from image2.core.references import NOT_APPLICABLE, REFTYPES, References
from image2.core.steps import needed_reftypes, reftype_order
from image2.errors import InvalidInputError, ReferenceFileError
from image2.io.atomic import atomic_write
from image2.io.reference_readers import read_reference, source_of

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1
REFERENCE_SUFFIXES = (".fits", ".fit", ".asdf")
WILDCARDS = frozenset({"ANY", "N/A", "GENERIC", "*", ""})

MATCH_KEYS = ("DETECTOR", "EXP_TYPE", "FILTER", "PUPIL", "SUBARRAY", "CHANNEL", "MODULE", "READPATT")
"""Selection keywords compared with the exposure (besides REFTYPE and INSTRUME), in report order."""

PATTERN_KEYS: Mapping[str, str] = frozen_mapping({
    "DETECTOR": "P_DETECT", "EXP_TYPE": "P_EXP_TY", "FILTER": "P_FILTER", "PUPIL": "P_PUPIL",
    "SUBARRAY": "P_SUBARR", "CHANNEL": "P_CHANNE", "READPATT": "P_READPA",
})
"""The ``P_*`` keyword listing several allowed values for a selection keyword."""

ASDF_META_PATHS: Mapping[str, tuple[str, ...]] = frozen_mapping({
    "REFTYPE": ("reftype",), "INSTRUME": ("instrument", "name"), "TELESCOP": ("telescope",),
    "DATAMODL": ("model_type",), "USEAFTER": ("useafter",),
    "DETECTOR": ("instrument", "detector"), "P_DETECT": ("instrument", "p_detector"),
    "FILTER": ("instrument", "filter"), "P_FILTER": ("instrument", "p_filter"),
    "PUPIL": ("instrument", "pupil"), "P_PUPIL": ("instrument", "p_pupil"),
    "CHANNEL": ("instrument", "channel"), "P_CHANNE": ("instrument", "p_channel"),
    "MODULE": ("instrument", "module"),
    "EXP_TYPE": ("exposure", "type"), "P_EXP_TY": ("exposure", "p_exptype"),
    "READPATT": ("exposure", "readpatt"), "P_READPA": ("exposure", "p_readpatt"),
    "SUBARRAY": ("subarray", "name"), "P_SUBARR": ("subarray", "p_subarray"),
})
"""Where each indexed keyword lives in an ASDF reference's ``meta`` tree."""

INDEXED_KEYS = tuple(ASDF_META_PATHS)

MJD_EPOCH = dt.datetime(1858, 11, 17)


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return image2's cache folder: ``$XDG_CACHE_HOME/image2`` or ``~/.cache/image2``."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "image2"


def crds_reference_folders(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """Return the JWST reference folder of the user's CRDS cache, if one is configured and exists.

    Honours ``CRDS_REFPATH_SINGLE``, ``CRDS_REFPATH`` (+ ``/jwst``), ``CRDS_PATH_SINGLE``
    (+ ``/references``) and ``CRDS_PATH`` (+ ``/references/jwst``), in that order. The folder
    is scanned recursively, which covers both the ``instrument`` and the ``flat`` cache modes.
    """
    environ = os.environ if environ is None else environ
    for variable, tail in (("CRDS_REFPATH_SINGLE", ()), ("CRDS_REFPATH", ("jwst",)),
                           ("CRDS_PATH_SINGLE", ("references",)), ("CRDS_PATH", ("references", "jwst"))):
        root = environ.get(variable)
        if root:
            folder = Path(root).expanduser().joinpath(*tail)
            return (folder,) if folder.is_dir() else ()
    return ()


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
    }
    return {key: (str(value).strip().upper() or None) if value is not None else None for key, value in values.items()}


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
    if text is None:
        return None
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


@attrs.frozen
class IndexEntry:
    """One indexed file: how it looked on disk and the selection keywords of its header."""

    mtime_ns: int
    size: int
    keys: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    sci_ndim: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"mtime_ns": self.mtime_ns, "size": self.size, "keys": dict(self.keys),
                "sci_ndim": self.sci_ndim, "error": self.error}

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> IndexEntry:
        return cls(int(item["mtime_ns"]), int(item["size"]), {str(k): str(v) for k, v in item["keys"].items()},
                   item.get("sci_ndim"), item.get("error"))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple)):
        return None
    return str(value).strip()


FITS_BLOCK = 2880
FITS_CARD = 80


def primary_cards(path: Path, wanted: Iterable[str] = INDEXED_KEYS) -> dict[str, str]:
    """Return the ``wanted`` keywords of a FITS file's PRIMARY header as text, read directly.

    Reads 2880-byte blocks up to the END card and decodes only the wanted cards: quoted strings
    (with ``''`` escapes and CONTINUE long strings) or the raw value text. Much faster than a
    full astropy header for indexing thousands of files; anything unexpected raises ValueError.
    """
    wanted = frozenset(wanted)
    out: dict[str, str] = {}
    pending: str | None = None
    with open(path, "rb") as handle:
        first = True
        while True:
            block = handle.read(FITS_BLOCK)
            if len(block) < FITS_BLOCK:
                raise ValueError("truncated FITS header (no END card)")
            if first and not block.startswith(b"SIMPLE  ="):
                raise ValueError("not a FITS file (no SIMPLE card)")
            first = False
            for offset in range(0, FITS_BLOCK, FITS_CARD):
                card = block[offset:offset + FITS_CARD].decode("ascii", errors="replace")
                keyword = card[:8].rstrip()
                if keyword == "END":
                    return out
                if pending is not None and keyword == "CONTINUE":
                    text, more = _quoted(card[8:])
                    out[pending] = out[pending][:-1] + text
                    pending = pending if more else None
                    continue
                pending = None
                if keyword in wanted and card[8:10] == "= ":
                    value = card[10:].lstrip()
                    if value.startswith("'"):
                        text, more = _quoted(value)
                        out[keyword] = text
                        pending = keyword if more else None
                    else:
                        out[keyword] = value.split("/", 1)[0].strip()


def _quoted(value: str) -> tuple[str, bool]:
    """Decode a FITS quoted string at the start of ``value``; return (text, whether it continues)."""
    value = value.lstrip()
    if not value.startswith("'"):
        raise ValueError(f"expected a quoted string in {value!r}")
    text, i = [], 1
    while i < len(value):
        if value[i] == "'":
            if value[i + 1:i + 2] == "'":
                text.append("'")
                i += 2
                continue
            break
        text.append(value[i])
        i += 1
    else:
        raise ValueError(f"unterminated string in {value!r}")
    joined = "".join(text).rstrip()
    return joined, joined.endswith("&")


def fits_keys(path: Path) -> tuple[dict[str, str], int | None]:
    """Return the indexed keywords of a FITS reference's PRIMARY header (+ SCI NAXIS for darks)."""
    try:
        keys = {key: text.strip() for key, text in primary_cards(path).items()}
    except (ValueError, UnicodeError):
        keys = None
    if keys is not None and keys.get("REFTYPE", "").upper() != "DARK":
        return keys, None
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        header = hdul[0].header
        keys = {key: text for key in INDEXED_KEYS if (text := _text(header.get(key))) is not None}
        ndim = None
        if keys.get("REFTYPE", "").upper() == "DARK":
            try:
                ndim = int(hdul["SCI"].header.get("NAXIS", 0))
            except KeyError:
                ndim = None
        return keys, ndim


class _TolerantLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe YAML loader that turns any tagged node into plain data (tags are not needed here)."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TolerantLoader.add_multi_constructor("!", _untagged)
_TolerantLoader.add_multi_constructor("tag:", _untagged)


def asdf_meta_block(path: Path) -> Mapping[str, Any] | None:
    """Return the top-level ``meta`` mapping of an ASDF file by parsing only its YAML lines.

    The YAML tree ends at the ``...`` line; of it only the ``meta:`` entry (up to the next
    top-level key) is loaded, with tags ignored. None when the layout is not the usual block
    style, so the caller can fall back to asdf itself.
    """
    with open(path, "rb") as handle:
        head = handle.read(65536)
        while b"\n...\n" not in head and b"\xd3BLK" not in head:
            more = handle.read(1 << 20)
            if not more:
                break
            head += more
    if not head.startswith(b"#ASDF"):
        raise ValueError("not an ASDF file (no #ASDF header)")
    end = min(i for i in (head.find(b"\n...\n"), head.find(b"\xd3BLK"), len(head)) if i >= 0)
    lines = head[:end].decode("utf-8").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("meta:"))
    except StopIteration:
        return None
    block = [lines[start]]
    for line in lines[start + 1:]:
        if line and not line[0].isspace() and not line.startswith("#"):
            break
        block.append(line)
    try:
        document = yaml.load("\n".join(block), Loader=_TolerantLoader)
    except yaml.YAMLError:
        return None
    meta = document.get("meta") if isinstance(document, dict) else None
    return meta if isinstance(meta, Mapping) else None


def asdf_keys(path: Path) -> dict[str, str]:
    """Return the indexed keywords of an ASDF reference's ``meta`` tree (the model is not built)."""
    meta = asdf_meta_block(path)
    if meta is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True) as handle:
                tree_meta = handle.tree.get("meta")
                meta = dict(tree_meta) if isinstance(tree_meta, Mapping) else {}
    keys = {}
    for key, where in ASDF_META_PATHS.items():
        node: Any = meta
        for part in where:
            node = node.get(part) if isinstance(node, Mapping) else None
        if (text := _text(node)) is not None:
            keys[key] = text
    return keys


def scan_file(path: Path, mtime_ns: int, size: int) -> IndexEntry:
    """Read the selection keywords of one file; a file that cannot be read is indexed with its error."""
    try:
        if path.suffix.lower() == ".asdf":
            return IndexEntry(mtime_ns, size, asdf_keys(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged file is reported below, once
            keys, ndim = fits_keys(path)
        return IndexEntry(mtime_ns, size, keys, ndim)
    except Exception as error:  # any unreadable file is reported, never fatal to the whole store
        logger.warning("%s: cannot read reference header (%s)", path, error, extra={"file": str(path)})
        return IndexEntry(mtime_ns, size, {}, None, f"{type(error).__name__}: {error}")


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


class FolderIndex:
    """The index of one reference folder, mirrored in a JSON file in our cache folder."""

    def __init__(self, folder: Path, index_path: Path | None) -> None:
        self.folder = folder
        self.index_path = index_path
        self.entries: dict[str, IndexEntry] = {}
        self.directories: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        if self.index_path is None or not self.index_path.is_file():
            return
        try:
            document = json.loads(self.index_path.read_text())
            if document.get("format") != INDEX_FORMAT or document.get("folder") != str(self.folder):
                return
            self.entries = {name: IndexEntry.from_json(item) for name, item in document["files"].items()}
            self.directories = {name: int(mtime) for name, mtime in document["directories"].items()}
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("%s: ignoring unreadable reference index (%s)", self.index_path, error,
                           extra={"file": str(self.index_path)})
            self.entries, self.directories = {}, {}

    def is_stale(self) -> bool:
        """True when a file may have been added or removed: some directory's mtime changed."""
        if not self.directories:
            return True
        for name, mtime in self.directories.items():
            try:
                if (self.folder / name).stat().st_mtime_ns != mtime:
                    return True
            except OSError:
                return True
        return False

    def sync(self) -> bool:
        """Bring the index up to date with the folder (new, changed, removed files); True if it changed."""
        seen: dict[str, IndexEntry] = {}
        directories: dict[str, int] = {}
        changed = False
        for root, dirs, files in os.walk(self.folder):
            dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
            base = Path(root)
            relative_root = base.relative_to(self.folder).as_posix()
            try:
                directories[relative_root] = base.stat().st_mtime_ns
            except OSError:
                continue
            for name in files:
                if _is_hidden(name) or not name.lower().endswith(REFERENCE_SUFFIXES):
                    continue
                path = base / name
                try:
                    status = path.stat()
                except OSError:
                    continue
                relative = path.relative_to(self.folder).as_posix()
                known = self.entries.get(relative)
                if known is not None and (known.mtime_ns, known.size) == (status.st_mtime_ns, status.st_size):
                    seen[relative] = known
                else:
                    seen[relative] = scan_file(path, status.st_mtime_ns, status.st_size)
                    changed = True
        changed = changed or seen.keys() != self.entries.keys() or directories != self.directories
        self.entries, self.directories = seen, directories
        if changed:
            self._save()
        return changed

    def rescan(self, relative: str) -> bool:
        """Re-read one file if its mtime or size changed (or drop it if it vanished); True if it did."""
        path = self.folder / relative
        try:
            status = path.stat()
        except OSError:
            self.entries.pop(relative, None)
            self._save()
            return True
        known = self.entries.get(relative)
        if known is not None and (known.mtime_ns, known.size) == (status.st_mtime_ns, status.st_size):
            return False
        self.entries[relative] = scan_file(path, status.st_mtime_ns, status.st_size)
        self._save()
        return True

    def _save(self) -> None:
        if self.index_path is None:
            return
        document = {"format": INDEX_FORMAT, "folder": str(self.folder), "directories": self.directories,
                    "files": {name: entry.to_json() for name, entry in sorted(self.entries.items())}}
        try:
            self.index_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.index_path, overwrite=True) as handle:
                handle.write(json.dumps(document, separators=(",", ":")).encode())
        except OSError as error:
            logger.warning("%s: cannot write reference index, keeping it in memory (%s)", self.index_path,
                           error, extra={"file": str(self.index_path)})


@attrs.frozen
class Candidate:
    """An indexed reference of one REFTYPE and instrument, with its parsed USEAFTER."""

    path: Path
    folder: FolderIndex = attrs.field(eq=False, repr=False)
    relative: str
    entry: IndexEntry
    useafter: dt.datetime | None
    rules: tuple[Rule, ...]


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
    that name only other detectors (counted, not listed); ``note`` explains an empty result.
    """

    reftype: str
    path: Path | None = None
    matched: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    useafter: str | None = None
    rejected: tuple[Rejection, ...] = attrs.field(default=(), converter=tuple)
    ambiguous: tuple[Path, ...] = attrs.field(default=(), converter=tuple)
    note: str = ""
    other_detectors: int = 0

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


class ReferenceStore:
    """Reference files of one or more folders (plus the CRDS cache), indexed for selection.

    ``cache_dir`` holds the on-disk index (default :func:`default_cache_dir`); it must not lie
    inside a reference folder, which the store only ever reads. ``use_crds`` adds the folder of
    :func:`crds_reference_folders`. The index refreshes itself on every selection when a folder's
    directory listing changed, and re-reads any matching file whose mtime or size changed;
    :meth:`refresh` forces a full check.
    """

    def __init__(self, folders: Iterable[Path | str] = (), cache_dir: Path | str | None = None, *,
                 use_crds: bool = True, environ: Mapping[str, str] | None = None) -> None:
        chosen: list[Path] = []
        for folder in (*folders, *(crds_reference_folders(environ) if use_crds else ())):
            resolved = Path(folder).expanduser().resolve()
            if not resolved.is_dir():
                raise InvalidInputError(folder, "reference folder does not exist")
            if resolved not in chosen:
                chosen.append(resolved)
        self.folders: tuple[Path, ...] = tuple(chosen)
        self.cache_dir = Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir(environ).resolve()
        for folder in self.folders:
            if self.cache_dir == folder or folder in self.cache_dir.parents:
                raise InvalidInputError(self.cache_dir, f"cache folder lies inside the reference folder {folder}; "
                                                        "the store never writes into reference folders")
        self._indexes = [FolderIndex(folder, self._index_path(folder)) for folder in self.folders]
        self._groups: dict[tuple[str, str], Group] = {}
        self.refresh()

    def _index_path(self, folder: Path) -> Path:
        digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
        return self.cache_dir / "reference-index" / f"{folder.name or 'root'}-{digest}.json"

    @property
    def index_files(self) -> tuple[Path, ...]:
        """The JSON index file of each folder."""
        return tuple(index.index_path for index in self._indexes if index.index_path is not None)

    def refresh(self) -> None:
        """Check every file of every folder against the index and re-read what changed."""
        for index in self._indexes:
            index.sync()
        self._regroup()

    def _refresh_if_stale(self) -> None:
        stale = [index for index in self._indexes if index.is_stale()]
        for index in stale:
            index.sync()
        if stale:
            self._regroup()

    def _regroup(self) -> None:
        groups: dict[tuple[str, str], list[Candidate]] = {}
        for index in self._indexes:
            for relative, entry in index.entries.items():
                reftype, instrument = entry.keys.get("REFTYPE"), entry.keys.get("INSTRUME")
                if not reftype or not instrument:
                    continue
                rules = tuple(rule for key in MATCH_KEYS if (rule := rule_of(key, entry.keys)) is not None)
                candidate = Candidate(index.folder / relative, index, relative, entry,
                                      parse_useafter(entry.keys.get("USEAFTER")), rules)
                groups.setdefault((reftype.upper(), instrument.upper()), []).append(candidate)
        self._groups = {key: Group.of(candidates) for key, candidates in groups.items()}

    def __len__(self) -> int:
        """The number of indexed reference files (files with REFTYPE and INSTRUME)."""
        return sum(len(group.candidates) for group in self._groups.values())

    def select(self, meta: Meta, reftype: str) -> Choice:
        """Choose the ``reftype`` reference for the exposure described by ``meta``."""
        self._refresh_if_stale()
        choice, candidates = self._select(meta, reftype)
        if any(c.folder.rescan(c.relative) for c in candidates):
            self._regroup()
            choice, _ = self._select(meta, reftype)
        return choice

    def _select(self, meta: Meta, reftype: str) -> tuple[Choice, list[Candidate]]:
        reftype = reftype.lower()
        exposure = exposure_keys(meta)
        instrument = exposure["INSTRUME"]
        if not self.folders:
            return Choice(reftype, note="no reference folders (give --refs DIR or set CRDS_PATH)"), []
        if instrument is None:
            return Choice(reftype, note="the exposure has no INSTRUME keyword"), []
        group = self._groups.get((reftype.upper(), instrument))
        if group is None:
            return Choice(reftype, note=f"no {reftype.upper()} reference for {instrument} in "
                                        f"{', '.join(map(str, self.folders))}"), []
        start = exposure_start(meta)
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
            reason, specificity, how = self._verdict(candidate, reftype, exposure, start)
            if reason:
                rejected.append(Rejection(candidate.path, reason))
            else:
                passed.append((specificity, candidate.useafter, candidate, how))
        if not passed:
            detector = f" {exposure['DETECTOR']}" if exposure["DETECTOR"] else ""
            return Choice(reftype, rejected=rejected, other_detectors=others,
                          note=f"none of {len(pool)} {reftype.upper()} reference(s) for {instrument}{detector} "
                               f"matched{'; ' + served[0] if served else ''}"), []
        passed.sort(key=lambda item: (item[0], item[1]), reverse=True)
        best_specificity, best_useafter, best, how = passed[0]
        ties = [c for s, u, c, _ in passed if (s, u) == (best_specificity, best_useafter)]
        for specificity, useafter, candidate, _ in passed[len(ties):]:
            why = (f"less specific match than {best.path.name} ({specificity} vs {best_specificity} keywords)"
                   if specificity < best_specificity else
                   f"USEAFTER {useafter.isoformat()} is older than {best.path.name}'s {best_useafter.isoformat()}")
            rejected.append(Rejection(candidate.path, why))
        useafter_text = best_useafter.isoformat()
        candidates = [item[2] for item in passed]
        if len(ties) > 1:
            return Choice(reftype, rejected=rejected, ambiguous=tuple(c.path for c in ties),
                          useafter=useafter_text, other_detectors=others), candidates
        return Choice(reftype, path=best.path, matched=(*how, *served), useafter=useafter_text, rejected=rejected,
                      other_detectors=others), candidates

    @staticmethod
    def _verdict(candidate: Candidate, reftype: str, exposure: Mapping[str, str | None],
                 start: dt.datetime | None) -> tuple[str, int, tuple[str, ...]]:
        """Return (reason it fails or "", number of specific matches, how each keyword matched)."""
        keys = candidate.entry.keys
        if reftype == "dark" and (candidate.entry.sci_ndim or 2) > 2:
            return "ramp-level JWST dark (3-D/4-D SCI), not applicable to rate data", 0, ()
        specificity = 0
        for rule in candidate.rules:
            if rule.wildcard:
                continue
            value = exposure[rule.key]
            if value in rule.allowed:
                specificity += 1
            elif not (rule.key == "SUBARRAY" and rule.allowed == FULL_ONLY):
                return apply_rule(rule, value)[1], 0, ()
        if candidate.useafter is None:
            return f"USEAFTER {keys.get('USEAFTER', '(missing)')!r} is not a date", 0, ()
        if start is not None and candidate.useafter > start:
            return (f"USEAFTER {candidate.useafter.isoformat()} is later than the exposure start "
                    f"{start.isoformat()}"), 0, ()
        how = [f"REFTYPE={reftype.upper()}", f"INSTRUME={exposure['INSTRUME']}",
               *(apply_rule(rule, exposure[rule.key])[1] for rule in candidate.rules),
               f"USEAFTER {candidate.useafter.isoformat()} <= "
               f"{start.isoformat() if start else '(exposure start unknown)'}"]
        return "", specificity, tuple(how)


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


def plan_references(meta: Meta, store: ReferenceStore | None,
                    overrides: Mapping[str, str] | None = None) -> Mapping[str, Resolution]:
    """Decide, without reading any reference, where each needed (or overridden) type comes from.

    Returns {reftype: Resolution} in the order the steps use them. An override (a path, or
    ``N/A`` for none) always wins; otherwise the store chooses.
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


def resolve_references(meta: Meta, store: ReferenceStore | None,
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
