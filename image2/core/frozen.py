"""Converters that make record fields immutable: read-only arrays and mappings."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np


def readonly(array: Any) -> np.ndarray:
    """Return a read-only view of ``array`` (no copy), so a record can never be written through."""
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


def readonly_or_none(array: Any) -> np.ndarray | None:
    """Like :func:`readonly`, but keep ``None`` for an absent optional array."""
    return None if array is None else readonly(array)


def frozen_mapping(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Return an immutable copy of ``mapping`` (``None`` gives an empty one)."""
    return MappingProxyType(dict(mapping or {}))
