"""Listing the watched folders: the backlog at start-up and the periodic reconcile that makes events hints.

Whatever the observer reported or missed (a kernel queue overflow, a network filesystem
without events, a dead observer thread), a scan finds every input the ledger does not
already account for.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from image2.watch.identity import FileStat
from image2.watch.ledger import Item
from image2.watch.readiness import Selector

_ATOMIC_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")
"""Names image2.io.atomic gives products while they are written."""


def inputs_in(roots: Iterable[Path], selector: Selector, recursive: bool) -> Iterator[Path]:
    """Yield every input file under ``roots`` (subfolders too when ``recursive``), skipping hidden
    and excluded folders; folders that vanish or cannot be read are passed over."""
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            here = Path(folder)
            if recursive:
                subfolders[:] = sorted(d for d in subfolders
                                       if not d.startswith(".") and not selector.is_excluded(here / d))
            else:
                subfolders[:] = []
            for name in sorted(files):
                path = here / name
                if selector.wants(path):
                    yield path


def is_accounted(item: Item | None, stat: FileStat) -> bool:
    """True when the ledger's newest row for a file already stands for the version on disk.

    A row whose input was moved to quarantine stands for nothing on disk any more: a file at
    that path again is a new arrival, even with the same size and mtime.
    """
    return item is not None and item.quarantine is None and item.same_version(stat)


def stale_temporaries(folder: Path, older_than: float, now: float | None = None) -> list[Path]:
    """Return product temporaries in ``folder`` not written to for ``older_than`` seconds: leftovers
    of workers killed mid-write (a live write touches its file continually)."""
    now = time.time() if now is None else now
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if _ATOMIC_TEMPORARY.match(entry.name):
            try:
                if entry.is_file(follow_symlinks=False) and now - entry.stat().st_mtime > older_than:
                    found.append(Path(entry.path))
            except OSError:
                continue
    return found
