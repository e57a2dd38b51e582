"""Moving an invalid input out of the watched folder, with a JSON file saying why."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from image2.io.atomic import atomic_write

REASON_SUFFIX = ".reason.json"


def _free_name(folder: Path, name: str) -> Path:
    candidate = folder / name
    stem, dot, suffix = name.partition(".")
    number = 1
    while candidate.exists() or candidate.with_name(candidate.name + REASON_SUFFIX).exists():
        candidate = folder / f"{stem}-{number}{dot}{suffix}"
        number += 1
    return candidate


def quarantine(path: Path, folder: Path, reason: str, details: Mapping[str, Any]) -> Path:
    """Move ``path`` into ``folder`` (a free name there) beside ``<name>.reason.json``; return where it went.

    The reason file is written first (atomically), so a quarantined file never lacks its reason.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, path.name)
    document = {
        "file": str(path),
        "quarantined_as": str(target),
        "reason": reason,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **details,
    }
    reason_file = target.with_name(target.name + REASON_SUFFIX)
    with atomic_write(reason_file) as handle:
        handle.write(json.dumps(document, indent=2).encode() + b"\n")
    try:
        shutil.move(path, target)
    except OSError:
        reason_file.unlink(missing_ok=True)
        raise
    return target
