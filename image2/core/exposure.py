"""The exposure record: science arrays, their uncertainties and flags, metadata and WCS."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from image2.core.cards import Cards
from image2.core.frozen import frozen_mapping, readonly, rebuilt_when_unpickled
from image2.core.meta import Meta


def _float32(array: Any) -> np.ndarray:
    return readonly(np.asarray(array, dtype=np.float32))


def _float32_or_none(array: Any) -> np.ndarray | None:
    return None if array is None else _float32(array)


def _uint32(array: Any) -> np.ndarray:
    return readonly(np.asarray(array, dtype=np.uint32))


@rebuilt_when_unpickled
@attrs.frozen
class Extension:
    """An extra HDU carried through untouched (e.g. INT_TIMES, SUBARR_MAP)."""

    data: np.ndarray | None = attrs.field(converter=lambda a: None if a is None else readonly(a))
    cards: Cards = attrs.field(factory=Cards)
    kind: str = "image"  # "image" or "table"


@rebuilt_when_unpickled
@attrs.frozen
class Exposure:
    """One exposure, 2-D ``(ny, nx)`` or 3-D ``(nints, ny, nx)``; all arrays read-only.

    ERR, DQ and the variances have SCI's shape; AREA is always 2-D ``(ny, nx)``.
    ``wcs`` is a gwcs object once assign_wcs has run (or when the input carried one).
    """

    sci: np.ndarray = attrs.field(converter=_float32)
    err: np.ndarray = attrs.field(converter=_float32)
    dq: np.ndarray = attrs.field(converter=_uint32)
    var_poisson: np.ndarray | None = attrs.field(default=None, converter=_float32_or_none)
    var_rnoise: np.ndarray | None = attrs.field(default=None, converter=_float32_or_none)
    var_flat: np.ndarray | None = attrs.field(default=None, converter=_float32_or_none)
    area: np.ndarray | None = attrs.field(default=None, converter=_float32_or_none)
    meta: Meta = attrs.field(factory=Meta)
    wcs: Any = None
    extensions: Mapping[str, Extension] = attrs.field(factory=dict, converter=frozen_mapping)

    def __attrs_post_init__(self) -> None:
        if self.sci.ndim not in (2, 3):
            raise ValueError(f"SCI must be 2-D or 3-D, not {self.sci.ndim}-D")
        for name in ("err", "dq", "var_poisson", "var_rnoise", "var_flat"):
            array = getattr(self, name)
            if array is not None and array.shape != self.sci.shape:
                raise ValueError(f"{name.upper()} shape {array.shape} differs from SCI {self.sci.shape}")
        if self.area is not None and self.area.shape != self.shape:
            raise ValueError(f"AREA shape {self.area.shape} differs from the image plane {self.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        """The image-plane shape ``(ny, nx)``."""
        return self.sci.shape[-2:]

    @property
    def is_cube(self) -> bool:
        """True for a 3-D (per-integration) exposure."""
        return self.sci.ndim == 3

    @property
    def nints(self) -> int:
        """Number of integrations held (1 for a 2-D exposure)."""
        return self.sci.shape[0] if self.is_cube else 1

    def variances(self) -> dict[str, np.ndarray]:
        """Return the variance arrays that are present, by extension name."""
        named = {"VAR_POISSON": self.var_poisson, "VAR_RNOISE": self.var_rnoise, "VAR_FLAT": self.var_flat}
        return {name: array for name, array in named.items() if array is not None}

    def evolve(self, **changes: Any) -> Exposure:
        """Return a copy with ``changes`` applied (the input is never modified)."""
        return attrs.evolve(self, **changes)

    def integrations(self, start: int, stop: int) -> Exposure:
        """Return integrations ``[start, stop)`` of a 3-D exposure as a 3-D exposure (views, no copy)."""
        if not self.is_cube:
            raise ValueError("only a 3-D exposure has integrations to slice")
        cut = slice(start, stop)
        return attrs.evolve(
            self,
            **{name: getattr(self, name)[cut] for name in ("sci", "err", "dq")},
            **{name: None if getattr(self, name) is None else getattr(self, name)[cut]
               for name in ("var_poisson", "var_rnoise", "var_flat")},
        )


def stack_integrations(parts: Sequence[Exposure]) -> Exposure:
    """Reassemble 3-D exposures sliced with :meth:`Exposure.integrations`; metadata from the first."""
    if not parts:
        raise ValueError("nothing to stack")
    if not all(part.is_cube for part in parts):
        raise ValueError("only 3-D exposures can be stacked")
    first = parts[0]

    def joined(name: str) -> np.ndarray | None:
        arrays = [getattr(part, name) for part in parts]
        if all(a is None for a in arrays):
            return None
        if any(a is None for a in arrays):
            raise ValueError(f"{name.upper()} is present in some parts only")
        return np.concatenate(arrays, axis=0)

    names = ("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat")
    return attrs.evolve(first, **{name: joined(name) for name in names})
