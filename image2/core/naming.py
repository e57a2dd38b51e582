"""Output product names (formats.md §7); the products and step names come from the step registry."""

from __future__ import annotations

import re
from pathlib import PurePath

from image2.core.steps import STEPS, products

INPUT_SUFFIXES = ("rate", "rateints", "uncal", "ramp", "crf", "crfints")
PIPELINE_NAMES = ("image2pipeline", "tso_image2pipeline", "image2")

PRODUCT_SUFFIX = {
    (product.kind, cube): suffix
    for product in products()
    for cube, suffix in ((False, product.kind), (True, product.cube_suffix))
    if suffix is not None
}
"""File suffix of each kind of product, for 2-D (False) and 3-D (True) data."""

KNOWN_SUFFIXES = tuple(dict.fromkeys((
    *INPUT_SUFFIXES, *PRODUCT_SUFFIX.values(), *PIPELINE_NAMES,
    *(name for declared in STEPS for name in (declared.name, *declared.aliases)),
)))
"""Suffixes removed (one, at the end, after ``_`` or ``-``) to find a product's root."""

_SUFFIX = re.compile(r"[_-](" + "|".join(sorted(map(re.escape, KNOWN_SUFFIXES), key=len, reverse=True)) + r")$")


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
    key = (kind, cube and (kind, True) in PRODUCT_SUFFIX)
    if key not in PRODUCT_SUFFIX:
        raise ValueError(f"unknown product kind {kind!r}")
    return f"{root}_{PRODUCT_SUFFIX[key]}.fits"
