"""Output product names (formats.md §7)."""

from __future__ import annotations

import re
from pathlib import PurePath

KNOWN_SUFFIXES = (
    "rate", "rateints", "cal", "calints", "bsub", "bsubints", "i2d", "uncal", "ramp", "crf",
    "crfints", "combinedbackground", "image2pipeline", "tso_image2pipeline", "image2",
    "bkg_subtract", "backgroundstep", "background", "assign_wcs", "assignwcsstep",
    "parse_subarray_map", "parsesubarraymapstep", "dark_current", "darkcurrentstep",
    "flat_field", "flatfieldstep", "photom", "photomstep", "resample", "resamplestep",
)
"""Suffixes removed (one, at the end, after ``_`` or ``-``) to find a product's root."""

_SUFFIX = re.compile(r"[_-](" + "|".join(sorted(map(re.escape, KNOWN_SUFFIXES), key=len, reverse=True)) + r")$")

PRODUCT_SUFFIX = {
    ("cal", False): "cal", ("cal", True): "calints",
    ("bsub", False): "bsub", ("bsub", True): "bsubints",
    ("i2d", False): "i2d", ("combinedbackground", False): "combinedbackground",
}


def strip_suffix(name: str) -> str:
    """Return ``name`` with one trailing known suffix removed (``x_rate`` → ``x``)."""
    return _SUFFIX.sub("", name)


def product_root(name: str) -> str:
    """Return the root of output names: directories, a ``.fits`` extension and one suffix dropped."""
    base = PurePath(name).name
    if base.lower().endswith(".fits"):
        base = base[: -len(".fits")]
    return strip_suffix(base)


def product_filename(root: str, kind: str, cube: bool = False) -> str:
    """Return the file name of product ``kind`` (cal, bsub, i2d, combinedbackground) for ``root``.

    ``cube`` picks the ``ints`` variant for 3-D data (cal → calints, bsub → bsubints).
    """
    key = (kind, cube and kind in ("cal", "bsub"))
    if key not in PRODUCT_SUFFIX:
        raise ValueError(f"unknown product kind {kind!r}")
    return f"{root}_{PRODUCT_SUFFIX[key]}.fits"
