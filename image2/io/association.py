"""Load Level-2 association files (formats.md §8); a bare FITS file is a singleton association."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from image2.core.association import SINGLETON, Association, Member, Product
from image2.core.naming import strip_suffix
from image2.errors import InvalidInputError
from image2.io.liger_association import is_liger_form, liger_association
from image2.io.bounds import MAX_TEXT_BYTES, compression_of, regular_file

FITS_SUFFIXES = (".fits", ".fit", ".fts")


def is_fits_name(path: Path | str) -> bool:
    """True when ``path`` names a FITS file by its extension."""
    return str(path).lower().endswith(FITS_SUFFIXES)


def singleton(path: Path | str) -> Association:
    """Return the one-product association of a bare exposure file."""
    path = Path(path)
    name = str(path.with_name(strip_suffix(path.name.rsplit(".", 1)[0])))
    return Association(products=(Product(name, (Member(path, "science"),)),), asn_type=SINGLETON,
                       asn_pool=SINGLETON)


def _member_path(asn_path: Path, product: str, expname: Any, allow_outside: bool) -> Path:
    """Return a member's path; unless ``allow_outside``, it must lie in the association's folder once
    symlinks (of the member or of folders on its way) are resolved."""
    if not isinstance(expname, str) or not expname.strip() or "\0" in expname:
        raise InvalidInputError(asn_path, f"product {product!r}: a member has no expname")
    relative = Path(expname)
    path = relative if relative.is_absolute() else asn_path.parent / relative
    if not allow_outside:
        folder = os.path.realpath(asn_path.parent)
        real = os.path.realpath(path)
        if relative.is_absolute() or ".." in relative.parts or os.path.commonpath((folder, real)) != folder:
            raise InvalidInputError(
                asn_path, f"product {product!r}, member {expname!r}: path leaves the association's folder"
                          f"{'' if relative.is_absolute() or '..' in relative.parts else ' through a symlink'} "
                          "(allow it explicitly to use such members)")
    return path


def _parse(path: Path) -> dict[str, Any]:
    if regular_file(path).st_size > MAX_TEXT_BYTES:
        raise InvalidInputError(path, f"association larger than {MAX_TEXT_BYTES} bytes")
    with open(path, "rb") as handle:
        compression = compression_of(handle.read(8))
    if compression is not None:
        raise InvalidInputError(path, f"{compression}-compressed file; compressed files are not read "
                                      "(decompress it first)")
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidInputError(path, "not a valid association: nested too deeply") from None
    except json.JSONDecodeError as json_error:
        try:
            import yaml  # YAML is tolerated (formats.md §8); asdf brings PyYAML
        except ImportError:  # pragma: no cover - asdf always installs PyYAML
            raise InvalidInputError(path, f"not valid JSON ({json_error})") from None
        try:
            data = yaml.safe_load(text)
        except RecursionError:
            raise InvalidInputError(path, "not a valid association: nested too deeply") from None
        except yaml.YAMLError:
            raise InvalidInputError(path, f"not a valid association: not JSON ({json_error}) nor YAML") from None
        if not isinstance(data, dict):
            raise InvalidInputError(path, f"not a valid association: not JSON ({json_error})")
        return data


def load_association(path: Path | str, allow_outside: bool = False) -> Association:
    """Load an association file, resolving member paths against its folder.

    A member path that is absolute or climbs out with ``..`` is refused unless
    ``allow_outside``. Errors name the file, and the product and member where they apply.
    """
    path = Path(path)
    try:
        data = _parse(path)
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(path, f"cannot read association ({error})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(path, "not a valid association: top level is not an object")
    if is_liger_form(data):
        return liger_association(path, data, lambda asn, product, name: _member_path(asn, product, name, allow_outside))
    products = data.get("products")
    if not isinstance(products, list) or not products:
        raise InvalidInputError(path, "not a valid association: 'products' must be a non-empty list")
    parsed = []
    for number, product in enumerate(products, start=1):
        if not isinstance(product, dict):
            raise InvalidInputError(path, f"product #{number} is not an object")
        name = str(product.get("name") or f"product{number}")
        members = product.get("members")
        if not isinstance(members, list) or not members:
            raise InvalidInputError(path, f"product {name!r}: 'members' must be a non-empty list")
        entries = []
        for member in members:
            if not isinstance(member, dict) or "exptype" not in member:
                raise InvalidInputError(path, f"product {name!r}: member {member!r} lacks expname/exptype")
            if not isinstance(member["exptype"], str):
                raise InvalidInputError(path, f"product {name!r}, member {member.get('expname')!r}: exptype is not a string")
            entries.append(Member(_member_path(path, name, member.get("expname"), allow_outside), member["exptype"]))
        science = [m for m in entries if m.exptype == "science"]
        if not science:
            raise InvalidInputError(path, f"product {name!r} has no science member")
        if len(science) > 1:
            raise InvalidInputError(path, f"product {name!r} has {len(science)} science members "
                                          f"({', '.join(m.path.name for m in science)}); a Level-2 product has "
                                          "exactly one (jwst's rule): make one product per science exposure")
        parsed.append(Product(name, tuple(entries)))
    return Association(
        products=tuple(parsed),
        asn_type=str(data.get("asn_type") or "user_built"),
        asn_rule=data.get("asn_rule"),
        asn_pool=str(data.get("asn_pool") or "none"),
        asn_id=str(data.get("asn_id") or "a3001"),
        path=path,
    )


def load_input(path: Path | str, allow_outside: bool = False) -> Association:
    """Return the association for a command-line input: an association file or a bare exposure."""
    path = Path(path)
    regular_file(path)
    if is_fits_name(path):
        return singleton(path)
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head == b"SIMPLE  =":
        return singleton(path)
    compression = compression_of(head)
    if compression is not None and is_fits_name(path.name.rsplit(".", 1)[0]):
        raise InvalidInputError(path, f"{compression}-compressed FITS file; compressed FITS files are not read "
                                      "(decompress it first)")
    return load_association(path, allow_outside=allow_outside)
