"""The selection keywords of a reference file, read from its header alone.

A FITS reference's PRIMARY cards (and a dark's SCI dimensions) are read straight from its header
blocks, skipping the data (astropy only for headers the direct reading refuses); an ASDF reference's
``meta`` entry is parsed from its YAML lines (asdf itself only when the layout is unusual).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import asdf
import yaml
from astropy.io import fits

from image2.core.frozen import frozen_mapping
from image2.io.fits_blocks import card_value, data_size, header_cards, padded, quoted_string

ASDF_META_PATHS: Mapping[str, tuple[str, ...]] = frozen_mapping({
    "REFTYPE": ("reftype",), "INSTRUME": ("instrument", "name"), "TELESCOP": ("telescope",),
    "DATAMODL": ("model_type",), "USEAFTER": ("useafter",),
    "DETECTOR": ("instrument", "detector"), "P_DETECT": ("instrument", "p_detector"),
    "FILTER": ("instrument", "filter"), "P_FILTER": ("instrument", "p_filter"),
    "PUPIL": ("instrument", "pupil"), "P_PUPIL": ("instrument", "p_pupil"),
    "CHANNEL": ("instrument", "channel"), "P_CHANNE": ("instrument", "p_channel"),
    "MODULE": ("instrument", "module"),
    "EXP_TYPE": ("exposure", "type"), "P_EXP_TY": ("exposure", "p_exptype"),
    "READPATT": ("exposure", "readpatt"), "P_READPA": ("exposure", "p_readpatt"),
    "SUBARRAY": ("subarray", "name"), "P_SUBARR": ("subarray", "p_subarray"),
})
"""Where each indexed keyword lives in an ASDF reference's ``meta`` tree."""

LIGER_KEYS = ("EXPDTST", "EXPJDST", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2")
"""Keywords of Liger/IRIS references (FITS only): their date where USEAFTER is absent, and their window."""

INDEXED_KEYS = (*ASDF_META_PATHS, *LIGER_KEYS)
"""The keywords the index records of every reference."""


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple)):
        return None
    return str(value).strip()


def primary_cards(path: Path, wanted: Iterable[str] = INDEXED_KEYS) -> dict[str, str]:
    """Return the ``wanted`` keywords of a FITS file's PRIMARY header as text, read directly.

    Walks the header's blocks up to the END card and decodes only the wanted cards: quoted strings
    (with ``''`` escapes and CONTINUE long strings) or the raw value text. Much faster than a
    full astropy header for indexing thousands of files; anything unexpected raises ValueError.
    """
    wanted = frozenset(wanted)
    out: dict[str, str] = {}
    pending: str | None = None
    with open(path, "rb") as handle:
        for keyword, card in header_cards(handle, primary=True):
            if pending is not None and keyword == "CONTINUE":
                text, more = quoted_string(card[8:])
                out[pending] = out[pending][:-1] + text
                pending = pending if more else None
                continue
            pending = None
            if keyword in wanted and card[8:10] == "= ":
                value = card_value(card)
                if value.startswith("'"):
                    text, more = quoted_string(value)
                    out[keyword] = text
                    pending = keyword if more else None
                else:
                    out[keyword] = value
    return out


def sci_ndim(path: Path) -> int | None:
    """Return the NAXIS of a FITS file's SCI extension, walking its headers and skipping their data; None
    when it has no SCI extension. Anything unexpected raises ValueError or KeyError."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        primary = True
        while handle.tell() < size:
            cards = {keyword: card_value(card).strip() for keyword, card in header_cards(handle, primary=primary)
                     if card[8:10] == "= "}
            name = quoted_string(cards["EXTNAME"])[0].strip().upper() if "EXTNAME" in cards else ""
            if not primary and name == "SCI":
                return int(cards["NAXIS"])
            handle.seek(padded(data_size(cards)), os.SEEK_CUR)
            primary = False
    return None


def fits_keys(path: Path) -> tuple[dict[str, str], int | None]:
    """Return the indexed keywords of a FITS reference's PRIMARY header (+ SCI NAXIS for darks).

    The headers are read directly (no data); astropy only reads a header the direct reading refuses.
    """
    try:
        keys = {key: text.strip() for key, text in primary_cards(path).items()}
        return keys, sci_ndim(path) if keys.get("REFTYPE", "").upper() == "DARK" else None
    except (ValueError, KeyError, UnicodeError):
        pass
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        header = hdul[0].header
        keys = {key: text for key in INDEXED_KEYS if (text := _text(header.get(key))) is not None}
        ndim = None
        if keys.get("REFTYPE", "").upper() == "DARK":
            try:
                ndim = int(hdul["SCI"].header.get("NAXIS", 0))
            except KeyError:
                ndim = None
        return keys, ndim


class _TolerantLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe YAML loader that turns any tagged node into plain data (tags are not needed here)."""


def _untagged(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TolerantLoader.add_multi_constructor("!", _untagged)
_TolerantLoader.add_multi_constructor("tag:", _untagged)


def asdf_meta_block(path: Path) -> Mapping[str, Any] | None:
    """Return the top-level ``meta`` mapping of an ASDF file by parsing only its YAML lines.

    The YAML tree ends at the ``...`` line; of it only the ``meta:`` entry (up to the next
    top-level key) is loaded, with tags ignored. None when the layout is not the usual block
    style, so the caller can fall back to asdf itself.
    """
    with open(path, "rb") as handle:
        head = handle.read(65536)
        while b"\n...\n" not in head and b"\xd3BLK" not in head:
            more = handle.read(1 << 20)
            if not more:
                break
            head += more
    if not head.startswith(b"#ASDF"):
        raise ValueError("not an ASDF file (no #ASDF header)")
    end = min(i for i in (head.find(b"\n...\n"), head.find(b"\xd3BLK"), len(head)) if i >= 0)
    lines = head[:end].decode("utf-8").splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("meta:"))
    except StopIteration:
        return None
    block = [lines[start]]
    for line in lines[start + 1:]:
        if line and not line[0].isspace() and not line.startswith("#"):
            break
        block.append(line)
    try:
        document = yaml.load("\n".join(block), Loader=_TolerantLoader)
    except yaml.YAMLError:
        return None
    meta = document.get("meta") if isinstance(document, dict) else None
    return meta if isinstance(meta, Mapping) else None


def asdf_keys(path: Path) -> dict[str, str]:
    """Return the indexed keywords of an ASDF reference's ``meta`` tree (the model is not built)."""
    meta = asdf_meta_block(path)
    if meta is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True) as handle:
                tree_meta = handle.tree.get("meta")
                meta = dict(tree_meta) if isinstance(tree_meta, Mapping) else {}
    keys = {}
    for key, where in ASDF_META_PATHS.items():
        node: Any = meta
        for part in where:
            node = node.get(part) if isinstance(node, Mapping) else None
        if (text := _text(node)) is not None:
            keys[key] = text
    return keys
