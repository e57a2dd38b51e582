"""Converters that make record fields immutable: read-only arrays and mappings."""

from __future__ import annotations

from collections.abc import Mapping
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


class FrozenDict(dict):
    """A dict that refuses changes after construction, and still pickles (unlike MappingProxyType)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this mapping is read-only; build a new record with the change instead")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return (FrozenDict, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda item: item[0])))


def frozen_mapping(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Return a read-only copy of ``mapping`` (``None`` gives an empty one)."""
    return mapping if isinstance(mapping, FrozenDict) else FrozenDict(mapping or {})


def _construct(cls: type, fields: dict[str, Any]) -> Any:
    return cls(**fields)


def rebuilt_when_unpickled(cls: type) -> type:
    """Class decorator: unpickling goes through the constructor, so arrays come back read-only."""
    import attrs

    def reduce(self: Any) -> tuple[Any, tuple[type, dict[str, Any]]]:
        return (_construct, (cls, {f.name: getattr(self, f.name) for f in attrs.fields(cls) if f.init}))

    cls.__reduce__ = reduce  # type: ignore[method-assign]
    return cls
