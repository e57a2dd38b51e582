"""Associations in the Liger/IRIS pipeline's form: ``{"SCI": [files...], "SKY": [files...]}``.

ImagerStage2Pipeline takes such a mapping and estimates one sky for all its science frames:
from the SKY frames, or from the science frames themselves when there are none. In our
records each science frame becomes a product whose ``background`` members are the frames
the sky comes from (the SKY frames, else every SCI frame), so a product calibrated on its own
gets the sky the Liger pipeline would subtract from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from image2.core.association import Association, Member, Product
from image2.core.naming import product_root
from image2.errors import InvalidInputError

ROLES = {"SCI": "science", "SKY": "background"}


def is_liger_form(data: Any) -> bool:
    """True for a mapping in the Liger pipeline's form (a ``SCI`` list, no ``products``)."""
    return isinstance(data, Mapping) and "SCI" in data and "products" not in data


def liger_association(path: Path, data: Mapping[str, Any], resolve: Callable[[Path, str, Any], Path]) -> Association:
    """Return the Association of a Liger-form mapping read from ``path``.

    ``resolve(path, product, expname)`` turns a listed file into a path (image2's member rule:
    relative to the association's folder, refused outside it unless allowed).
    """
    unknown = sorted(set(data) - set(ROLES))
    if unknown:
        raise InvalidInputError(path, f"Liger association keys must be SCI and SKY, not {', '.join(unknown)}")
    lists = {}
    for key in ROLES:
        files = data.get(key, [])
        if not isinstance(files, list) or not all(isinstance(f, str) and f.strip() for f in files):
            raise InvalidInputError(path, f"Liger association {key} must be a list of file names")
        lists[key] = files
    if not lists["SCI"]:
        raise InvalidInputError(path, "Liger association has no SCI frame")
    science = [resolve(path, "SCI", name) for name in lists["SCI"]]
    sky = [resolve(path, "SKY", name) for name in lists["SKY"]] or science
    products = [Product(product_root(frame.name), (Member(frame, "science"), *(Member(s, "background") for s in sky)))
                for frame in science]
    return Association(products=tuple(products), asn_type="liger", asn_pool="none", path=path)
