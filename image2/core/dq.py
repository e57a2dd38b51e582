"""JWST pixel data-quality flags (formats.md §5) and good-bits expressions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np

FLAGS: Mapping[str, int] = MappingProxyType(
    {
        "GOOD": 0,
        "DO_NOT_USE": 1 << 0,
        "SATURATED": 1 << 1,
        "JUMP_DET": 1 << 2,
        "DROPOUT": 1 << 3,
        "OUTLIER": 1 << 4,
        "PERSISTENCE": 1 << 5,
        "AD_FLOOR": 1 << 6,
        "CHARGELOSS": 1 << 7,
        "RESERVED": 1 << 8,
        "NON_SCIENCE": 1 << 9,
        "DEAD": 1 << 10,
        "HOT": 1 << 11,
        "WARM": 1 << 12,
        "LOW_QE": 1 << 13,
        "RC": 1 << 14,
        "TELEGRAPH": 1 << 15,
        "NONLINEAR": 1 << 16,
        "BAD_REF_PIXEL": 1 << 17,
        "NO_FLAT_FIELD": 1 << 18,
        "NO_GAIN_VALUE": 1 << 19,
        "NO_LIN_CORR": 1 << 20,
        "NO_SAT_CHECK": 1 << 21,
        "UNRELIABLE_BIAS": 1 << 22,
        "UNRELIABLE_DARK": 1 << 23,
        "UNRELIABLE_SLOPE": 1 << 24,
        "UNRELIABLE_FLAT": 1 << 25,
        "OPEN": 1 << 26,
        "ADJ_OPEN": 1 << 27,
        "FLUX_ESTIMATED": 1 << 28,
        "MSA_FAILED_OPEN": 1 << 29,
        "OTHER_BAD_PIXEL": 1 << 30,
        "REFERENCE_PIXEL": 1 << 31,
    }
)
"""Flag name → value; the Liger name UNRELIABLE_ERROR is an alias of RESERVED (bit 8)."""

ALIASES: Mapping[str, str] = MappingProxyType({"UNRELIABLE_ERROR": "RESERVED"})

DO_NOT_USE = FLAGS["DO_NOT_USE"]
OUTLIER = FLAGS["OUTLIER"]
NON_SCIENCE = FLAGS["NON_SCIENCE"]
NO_FLAT_FIELD = FLAGS["NO_FLAT_FIELD"]
UNRELIABLE_FLAT = FLAGS["UNRELIABLE_FLAT"]

RESAMPLE_GOOD_BITS = "~DO_NOT_USE+NON_SCIENCE"
"""The fixed good-bits expression of resample (steps.md §7)."""


def flag_value(name: str) -> int:
    """Return the value of the flag called ``name`` (case-insensitive); KeyError if unknown."""
    key = name.strip().upper()
    key = ALIASES.get(key, key)
    if key not in FLAGS:
        raise KeyError(f"unknown DQ flag {name!r}")
    return FLAGS[key]


def bad_bits(expression: str | int | None) -> int:
    """Return the bits that make a pixel bad under a good-bits expression.

    ``expression`` follows the JWST convention: an integer or ``A+B`` (also ``,`` or ``|``)
    lists the bits that are *ignored* (good); a leading ``~`` flips the meaning, so
    ``~DO_NOT_USE+NON_SCIENCE`` makes exactly those two bits bad. ``None`` ignores every bit.
    """
    if expression is None:
        return 0
    if isinstance(expression, (int, np.integer)):
        return ~int(expression) & 0xFFFFFFFF
    text = str(expression).strip()
    if text.upper() in ("", "NONE", "INDEF"):
        return 0
    flip = text.startswith("~")
    if flip:
        text = text[1:].strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    listed = 0
    for token in re.split(r"[+,|]", text):
        token = token.strip()
        if not token:
            raise ValueError(f"empty term in good-bits expression {expression!r}")
        listed |= int(token) if token.isdigit() else flag_value(token)
    return listed if flip else ~listed & 0xFFFFFFFF


def good_pixels(dq: np.ndarray, expression: str | int | None) -> np.ndarray:
    """Return a boolean array: True where ``dq`` has none of the bad bits of ``expression``."""
    return (dq & np.uint32(bad_bits(expression))) == 0


def translate(raw: np.ndarray, definitions: Iterable[tuple[int, str]]) -> tuple[np.ndarray, list[str]]:
    """Translate a reference DQ array through its DQ_DEF rows (reference_files.md §2).

    ``definitions`` holds ``(VALUE, NAME)`` pairs. Returns the standard-flag array and the
    names that are not standard flags (ignored, for the caller to warn about).
    """
    rows = list(definitions)
    if not rows:
        return np.asarray(raw, dtype=np.uint32), []
    out = np.zeros(np.shape(raw), dtype=np.uint32)
    unknown = []
    for value, name in rows:
        try:
            standard = flag_value(name)
        except KeyError:
            unknown.append(name.strip())
            continue
        out |= np.where((raw & np.uint32(value)) != 0, np.uint32(standard), np.uint32(0))
    return out, unknown
