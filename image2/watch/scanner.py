"""Listing the watched folders: the backlog at start-up and the periodic reconcile that makes events hints.

Whatever the observer reported or missed (a kernel queue overflow, a network filesystem
without events, a dead observer thread), a scan finds every input the ledger does not
already account for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from image2.watch.identity import FileStat
from image2.watch.ledger import Item
from image2.watch.readiness import Selector


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
