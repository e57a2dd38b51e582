"""Atomic file writes: a product appears whole under its final name, or not at all.

A product is written under a hidden staging name beside its final one,
``.<name>.<pid>-<host>.<random>.tmp``, which says whose it is: the process that writes it and a
short digest of its host's name. Staging whose writer on this host is gone is debris, removed at
once (:func:`abandoned_staging`); staging of another host or of an older version is removed
only once untouched for a long time.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from image2.errors import Image2Error

_STAGING = re.compile(r"^\..+?(?:\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8}))?\.[0-9a-f]{12}\.tmp$")
"""Staging names: with their writer (this version), or without (older versions)."""

UNKNOWN_WRITER_AGE = 900.0
"""Seconds a staging file of an unknown or other-host writer stays untouched before it counts as debris."""


class ProductExistsError(Image2Error):
    """The destination exists and overwriting was not asked for."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        super().__init__(f"{path}: exists already (use --overwrite to replace it)")


def host_tag() -> str:
    """Eight hex digits standing for this host in staging names."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temporary_name(final: Path) -> Path:
    """Return a unique hidden staging name beside ``final`` (same filesystem, so rename is atomic) that
    names its writer: this process on this host."""
    return final.with_name(f".{final.name}.{os.getpid()}-{host_tag()}.{uuid.uuid4().hex[:12]}.tmp")


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this host (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def abandoned_staging(folder: Path, older_than: float = UNKNOWN_WRITER_AGE, now: float | None = None) -> list[Path]:
    """Return the staging files in ``folder`` that no writer will publish: those whose writer on this host
    is gone, at once, and those of unknown or other-host writers untouched for ``older_than`` seconds
    (a live write touches its file continually)."""
    now = time.time() if now is None else now
    here = host_tag()
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = _STAGING.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if match["host"] == here and match["pid"] is not None:
                if not pid_alive(int(match["pid"])):
                    found.append(Path(entry.path))
            elif now - entry.stat().st_mtime > older_than:
                found.append(Path(entry.path))
        except OSError:
            continue
    return found


def remove_abandoned_staging(folder: Path, older_than: float = UNKNOWN_WRITER_AGE,
                             now: float | None = None) -> list[Path]:
    """Remove :func:`abandoned_staging` files of ``folder``; return those removed."""
    removed = []
    for path in abandoned_staging(folder, older_than, now):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


_SHORT_WRITE = re.compile(r"^\d+ requested and \d+ written$")
"""numpy's message for a write the disk took only in part (it carries no errno)."""


def _out_of_space(error: BaseException) -> bool:
    """True when ``error``, or an error it arose from, says the disk (or the quota) is full: writers such
    as astropy's can mask it with an error of their own while handling it."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and (error.errno in (errno.ENOSPC, errno.EDQUOT) or (
                error.errno is None and _SHORT_WRITE.match(str(error)))):
            return True
        error = error.__cause__ or error.__context__
    return False


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staging:
    """Files written under temporary names and published together, in the order staged.

    Publishing uses a hard link when not overwriting (it fails if the name is taken, so an
    existing product is never replaced) and an atomic rename otherwise. Whatever is not
    published is removed by :meth:`discard` (also on leaving the ``with`` block).
    """

    def __init__(self, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._pending: list[tuple[Path, Path, bool]] = []
        self._last: tuple[Path, Path, bool] | None = None

    def check(self, final: Path, overwrite: bool | None = None) -> None:
        """Raise ProductExistsError if ``final`` exists and overwriting was not asked for."""
        if not (self.overwrite if overwrite is None else overwrite) and final.exists():
            raise ProductExistsError(final)

    @contextlib.contextmanager
    def open(self, final: Path | str, overwrite: bool | None = None, *, last: bool = False) -> Iterator[BinaryIO]:
        """Open a temporary file for ``final``; it is fsynced and staged when the block ends.

        ``overwrite`` overrides the staging's own setting for this file. A file staged ``last``
        (at most one; it may be staged from another thread) is published after all the others,
        whenever it was staged.
        """
        final = Path(final)
        overwrite = self.overwrite if overwrite is None else overwrite
        self.check(final, overwrite)
        tmp = temporary_name(final)
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException as error:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if _out_of_space(error):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(final)) from error
            raise
        if last:
            if self._last is not None:
                tmp.unlink()
                raise ValueError(f"{final.name}: {self._last[1].name} is already staged to be published last")
            self._last = (tmp, final, overwrite)
        else:
            self._pending.append((tmp, final, overwrite))

    def withdraw_last(self) -> None:
        """Remove the file staged ``last``, unpublished (its content is to be staged again)."""
        if self._last is not None:
            with contextlib.suppress(FileNotFoundError):
                self._last[0].unlink()
            self._last = None

    def publish(self) -> list[Path]:
        """Move every staged file to its final name, in order, the one staged ``last`` last; return the final paths."""
        if self._last is not None:
            self._pending.append(self._last)
            self._last = None
        published = []
        for tmp, final, overwrite in self._pending:
            if overwrite:
                os.replace(tmp, final)
            else:
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    raise ProductExistsError(final) from None
                tmp.unlink()
            published.append(final)
        for directory in {final.parent for final in published}:
            _fsync_directory(directory)
        self._pending = [entry for entry in self._pending if entry[1] not in published]
        return published

    def discard(self) -> None:
        """Remove every staged file that was not published."""
        self.withdraw_last()
        for tmp, _, _ in self._pending:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._pending = []

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


@contextlib.contextmanager
def atomic_write(final: Path | str, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Write one file atomically: yield a temporary file, publish it under ``final`` on success."""
    with Staging(overwrite) as staging:
        with staging.open(final) as handle:
            yield handle
        staging.publish()
