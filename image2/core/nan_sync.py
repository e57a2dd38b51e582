"""NaN / DO_NOT_USE synchronisation of the science arrays (jwst's match_nans_and_flags, formats.md §5).

A pixel is invalid when it is NaN in SCI, ERR or any variance array, or carries DO_NOT_USE
in DQ. Every invalid pixel becomes NaN in all of those arrays and gets DO_NOT_USE, so that
later consumers (resample, users) never mistake a half-flagged pixel for a good one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from image2.core.dq import DO_NOT_USE
from image2.core.exposure import Exposure

_ARRAYS = ("sci", "err", "var_poisson", "var_rnoise", "var_flat")


def invalid_pixels(arrays: Sequence[np.ndarray | None], dq: np.ndarray) -> np.ndarray:
    """Return a boolean mask of ``dq``'s shape: NaN in any of ``arrays`` (None ignored) or DO_NOT_USE."""
    invalid = np.zeros(dq.shape, dtype=bool)
    scratch = np.empty(dq.shape, dtype=bool)
    for array in arrays:
        if array is not None:
            np.isnan(array, out=scratch)
            invalid |= scratch
    invalid |= pixels_with(dq, DO_NOT_USE, out=scratch)
    return invalid


def pixels_with(dq: np.ndarray, bits: int, out: np.ndarray | None = None) -> np.ndarray:
    """Return a boolean mask: True where ``dq`` has any of ``bits`` (no full-size uint32 temporary)."""
    if out is None:
        out = np.empty(dq.shape, dtype=bool)
    return np.bitwise_and(dq, np.uint32(bits), out=out, casting="unsafe")


def synced_in_place(arrays: Sequence[np.ndarray | None], dq: np.ndarray, *, dq_owned: bool = False) -> np.ndarray:
    """NaN every invalid pixel of ``arrays`` in place and return DQ with DO_NOT_USE added there.

    ``arrays`` must be writeable buffers the caller owns (a step's freshly computed outputs).
    ``dq`` is updated in place when ``dq_owned``, else copied only if a flag must be added.
    """
    invalid = invalid_pixels(arrays, dq)
    index = _sparse_index(invalid)
    _set_nan(arrays, invalid, index)
    return _flagged(dq, invalid, index, in_place=dq_owned)


def nan_synced(exposure: Exposure) -> Exposure:
    """Return ``exposure`` with SCI/ERR/VAR_* NaN and DQ DO_NOT_USE wherever any of them marks a pixel bad.

    Arrays that already agree are shared with the input, not copied; an exposure with
    nothing to change comes back as the same object.
    """
    current = [getattr(exposure, name) for name in _ARRAYS]
    invalid = invalid_pixels(current, exposure.dq)
    if not invalid.any():
        return exposure
    changes = {name: array.copy() for name, array in zip(_ARRAYS, current, strict=True)
               if array is not None and not np.isnan(array[invalid]).all()}
    index = _sparse_index(invalid)
    _set_nan(list(changes.values()), invalid, index)
    dq = _flagged(exposure.dq, invalid, index)
    if dq is not exposure.dq:
        changes["dq"] = dq
    return exposure.evolve(**changes) if changes else exposure


def _sparse_index(invalid: np.ndarray) -> np.ndarray | None:
    """Return the flat indices of the invalid pixels when they are few (then indexing beats masking)."""
    count = np.count_nonzero(invalid)
    return np.flatnonzero(invalid) if count <= invalid.size // 16 else None


def _set_nan(arrays: Sequence[np.ndarray | None], invalid: np.ndarray, index: np.ndarray | None) -> None:
    """Write NaN into each array where ``invalid`` (by ``index`` when given, else by mask)."""
    for array in arrays:
        if array is None:
            continue
        if index is not None and array.flags.c_contiguous:
            np.put(array, index, np.float32(np.nan))
        else:
            np.copyto(array, np.float32(np.nan), where=invalid)


def _flagged(dq: np.ndarray, invalid: np.ndarray, index: np.ndarray | None, *,
             in_place: bool = False) -> np.ndarray:
    """Return ``dq`` with DO_NOT_USE ORed in where ``invalid`` (a copy unless ``in_place``, and
    ``dq`` itself when every invalid pixel already has the flag)."""
    flag = np.uint32(DO_NOT_USE)
    if index is not None and dq.flags.c_contiguous:
        if index.size == 0 or (not in_place and (dq.reshape(-1)[index] & flag).all()):
            return dq
        flagged = dq if in_place else dq.copy()
        flagged.reshape(-1)[index] |= flag
        return flagged
    missing = invalid > pixels_with(dq, DO_NOT_USE)
    if not missing.any():
        return dq
    flagged = dq if in_place else dq.copy()
    np.bitwise_or(flagged, flag, out=flagged, where=missing)
    return flagged
