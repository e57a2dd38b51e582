"""What identifies one version of an input file: its size, mtime and content hash."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import attrs


@attrs.frozen
class FileStat:
    """The cheap part of a file's identity, taken with one ``stat`` call."""

    size: int
    mtime_ns: int
    inode: int


def stat_of(path: Path) -> FileStat | None:
    """Return the size, mtime and inode of the regular file ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino)


def content_digest(path: Path) -> str:
    """Return the SHA-256 of the file's bytes (hex): what makes two versions the same content."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
