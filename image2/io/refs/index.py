"""The index of a reference folder: each file's selection keywords, cached as JSON and kept fresh.

The index lives in a cache folder of ours (never in a reference folder) and is refreshed from
directory mtimes (files added or removed) and file mtimes and sizes (files changed); only the
headers of new or changed files are read again.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from image2.core.frozen import frozen_mapping
from image2.io.atomic import atomic_write
from image2.io.refs.headers import asdf_keys, fits_keys

logger = logging.getLogger(__name__)

INDEX_FORMAT = 2
REFERENCE_SUFFIXES = (".fits", ".fit", ".asdf")


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
        return cls(int(item["mtime_ns"]), int(item["size"]), item["keys"], item.get("sci_ndim"), item.get("error"))


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
        """Bring the index up to date with the folder (new, changed, removed files); True if it changed.

        Every file is only stat'ed; a header is read only for a file that is new or whose mtime or
        size changed.
        """
        seen: dict[str, IndexEntry] = {}
        directories: dict[str, int] = {}
        changed = False
        pending = [("", str(self.folder))]
        while pending:
            relative_root, root = pending.pop()
            try:
                directories[relative_root or "."] = os.stat(root).st_mtime_ns
                with os.scandir(root) as listing:
                    items = sorted(listing, key=lambda item: item.name)
            except OSError:
                continue
            prefix = f"{relative_root}/" if relative_root else ""
            for item in items:
                if _is_hidden(item.name):
                    continue
                relative = prefix + item.name
                try:
                    if item.is_dir(follow_symlinks=False):
                        pending.append((relative, item.path))
                        continue
                    if not item.name.lower().endswith(REFERENCE_SUFFIXES):
                        continue
                    status = item.stat()
                except OSError:
                    continue
                known = self.entries.get(relative)
                if known is not None and (known.mtime_ns, known.size) == (status.st_mtime_ns, status.st_size):
                    seen[relative] = known
                else:
                    seen[relative] = scan_file(Path(item.path), status.st_mtime_ns, status.st_size)
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
