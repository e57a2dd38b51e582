"""Atomic file writes: a product appears whole under its final name, or not at all."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from image2.errors import Image2Error


class ProductExistsError(Image2Error):
    """The destination exists and overwriting was not asked for."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        super().__init__(f"{path}: exists already (use --overwrite to replace it)")


def temporary_name(final: Path) -> Path:
    """Return a unique hidden temporary name beside ``final`` (same filesystem, so rename is atomic)."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")


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

    def check(self, final: Path, overwrite: bool | None = None) -> None:
        """Raise ProductExistsError if ``final`` exists and overwriting was not asked for."""
        if not (self.overwrite if overwrite is None else overwrite) and final.exists():
            raise ProductExistsError(final)

    @contextlib.contextmanager
    def open(self, final: Path | str, overwrite: bool | None = None) -> Iterator[BinaryIO]:
        """Open a temporary file for ``final``; it is fsynced and staged when the block ends.

        ``overwrite`` overrides the staging's own setting for this file.
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
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        self._pending.append((tmp, final, overwrite))

    def publish(self) -> list[Path]:
        """Move every staged file to its final name, in order; return the final paths."""
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
