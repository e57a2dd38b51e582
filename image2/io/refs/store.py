"""A local, offline store of CRDS-format reference files that picks the right one per exposure.

``ReferenceStore`` indexes the headers of the reference files in one or more folders and the
user's CRDS cache (:mod:`image2.io.refs.index`), keeps each folder's index as JSON in a cache
folder of ours, and chooses per exposure by the rules of :mod:`image2.io.refs.selection`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from image2.core.meta import Meta
from image2.errors import InvalidInputError
from image2.io.refs.index import FolderIndex, IndexEntry
from image2.io.refs.selection import Candidate, Choice, Group, choose, exposure_keys, exposure_start


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
        self._members: dict[tuple[str, str], list[tuple[FolderIndex, str, IndexEntry]]] = {}
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
        """Sort the indexed files by (REFTYPE, INSTRUME); a group's candidates are made when first asked for."""
        members: dict[tuple[str, str], list[tuple[FolderIndex, str, IndexEntry]]] = {}
        for index in self._indexes:
            for relative, entry in index.entries.items():
                reftype, instrument = entry.keys.get("REFTYPE"), entry.keys.get("INSTRUME")
                if reftype and instrument:
                    members.setdefault((reftype.upper(), instrument.upper()), []).append((index, relative, entry))
        self._members = members
        self._groups = {}

    def _group(self, key: tuple[str, str]) -> Group | None:
        """The candidates of one (REFTYPE, INSTRUME), made on first need."""
        group = self._groups.get(key)
        if group is None and key in self._members:
            group = Group.of([Candidate.of(index, relative, entry) for index, relative, entry in self._members[key]])
            self._groups[key] = group
        return group

    def __len__(self) -> int:
        """The number of indexed reference files (files with REFTYPE and INSTRUME)."""
        return sum(len(members) for members in self._members.values())

    def indexed(self, path: Path) -> IndexEntry | None:
        """The index entry of a reference file of this store (None when it is not indexed); nothing is read."""
        for index in self._indexes:
            if index.folder in path.parents:
                return index.entries.get(path.relative_to(index.folder).as_posix())
        return None

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
        group = self._group((reftype.upper(), instrument))
        if group is None:
            return Choice(reftype, note=f"no {reftype.upper()} reference for {instrument} in "
                                        f"{', '.join(map(str, self.folders))}"), []
        return choose(group, reftype, exposure, exposure_start(meta))
