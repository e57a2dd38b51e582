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


@contextlib.contextmanager
def atomic_write(final: Path | str, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Open a temporary file for writing; on success fsync it and move it to ``final``.

    Without ``overwrite`` an existing ``final`` is never replaced (a hard link, which fails
    if the name is taken, publishes the file). On any error the temporary file is removed
    and ``final`` is untouched.
    """
    final = Path(final)
    if not overwrite and final.exists():
        raise ProductExistsError(final)
    tmp = temporary_name(final)
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, final)
        else:
            try:
                os.link(tmp, final)
            except FileExistsError:
                raise ProductExistsError(final) from None
            tmp.unlink()
        _fsync_directory(final.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
