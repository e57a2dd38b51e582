"""The S_REGION keyword: sky footprints written as ``POLYGON ICRS`` strings (steps.md §3.6, §7.2).

The text format is jwst's: ``"POLYGON ICRS  "`` (two spaces) then RA/Dec pairs in degrees with
9 decimals separated by single spaces; several polygons are joined by two spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

PREFIX = "POLYGON ICRS  "

_POLYGON = re.compile(r"POLYGON", re.IGNORECASE)


def _number(token: str) -> float | None:
    """The value of a numeric token, None for a word such as the frame name."""
    try:
        return float(token)
    except ValueError:
        if token[0].isalpha():
            return None
        raise ValueError(f"S_REGION holds a malformed number {token!r}") from None


def s_region(ra: Sequence[float] | np.ndarray, dec: Sequence[float] | np.ndarray) -> str:
    """Return the S_REGION text of the polygon with vertices ``(ra[i], dec[i])`` in degrees.

    RA is wrapped into [0, 360). Raises ValueError when a vertex is not finite (jwst then keeps
    the previous S_REGION) or when fewer than three vertices are given.
    """
    ra = np.mod(np.asarray(ra, dtype=np.float64), 360.0)
    dec = np.asarray(dec, dtype=np.float64)
    if ra.shape != dec.shape or ra.ndim != 1:
        raise ValueError(f"RA and Dec must be 1-D and of equal length, not {ra.shape} and {dec.shape}")
    if ra.size < 3:
        raise ValueError(f"a polygon needs at least 3 vertices, not {ra.size}")
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ValueError("the footprint has non-finite vertices")
    pairs = np.column_stack([ra, dec]).ravel()
    return PREFIX + " ".join(f"{value:.9f}" for value in pairs)


def parse_s_region(text: str) -> list[np.ndarray]:
    """Return the polygons of an S_REGION text as ``(n, 2)`` arrays of (RA, Dec) in degrees.

    Every ``POLYGON`` block becomes one array; words (the frame, e.g. ICRS) are ignored. Raises
    ValueError when there is no polygon, a number is malformed, or a block has an odd count or
    fewer than 3 vertices.
    """
    blocks = _POLYGON.split(text)
    if len(blocks) < 2 or blocks[0].strip():
        raise ValueError(f"S_REGION {text!r} does not start with POLYGON")
    polygons = []
    for block in blocks[1:]:
        numbers = np.array([value for value in map(_number, block.split()) if value is not None])
        if numbers.size % 2 or numbers.size < 6:
            raise ValueError(f"S_REGION polygon {block.strip()!r} does not hold 3 or more RA/Dec pairs")
        polygons.append(numbers.reshape(-1, 2))
    return polygons
