"""Limits on what an input file may declare, checked from its headers before any array is read.

A crafted file can declare far more data than it holds (a sparse file, a tile-compressed or
zlib-compressed array that inflates a thousandfold) or be no file at all (a FIFO, a device).
Every input is checked here first: a regular file, whose HDUs' declared sizes fit the file and
stay under :class:`Limits`, and whose embedded ASDF blocks inflate to a bounded size.

The defaults sit well above the largest real products (a 2048 x 2048 JWST detector, a 4096 x 4096
Liger/IRIS one, cubes of a few hundred integrations) and are set with environment variables, so
that worker processes and the watch daemon's coordinator share them:

- ``IMAGE2_MAX_PLANE_PIXELS`` (default 2**26 = 8192 x 8192): pixels of one image plane;
- ``IMAGE2_MAX_ARRAY_PIXELS`` (default 2**32, e.g. 2048 x 2048 x 1024): pixels of a whole array;
- ``IMAGE2_MAX_ASDF_BLOCK_BYTES`` (default 2**26 = 64 MiB): inflated bytes of one block of the
  embedded ASDF tree, which holds metadata only.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path
from typing import BinaryIO

import attrs

from image2.errors import InvalidInputError
from image2.io.fits_blocks import (BLOCK, HeaderTruncated, NotFits, card_value, data_size, header_cards, padded,
                                  quoted_string)

MAX_HDUS = 1000
"""HDUs a file may hold (a rate file has about ten)."""

MAX_HEADER_BLOCKS = 1000
"""2880-byte blocks one header may span (about 36,000 cards)."""

MAX_TEXT_BYTES = 64 * 2**20
"""Bytes an association (JSON or YAML) file may hold."""

COMPRESSED_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"PK\x03\x04": "zip"}
"""Leading bytes of whole-file compression formats, which are not read (decompress the file first)."""

_ASDF_BLOCK_MAGIC = b"\xd3BLK"
_ASDF_BLOCK_HEADER = struct.Struct(">I4sQQQ16s")  # flags, compression, allocated, used, data size, checksum


@attrs.frozen
class Limits:
    """How large an input's arrays may be declared (see the module docstring)."""

    max_plane_pixels: int = 2**26
    max_array_pixels: int = 2**32
    max_asdf_block_bytes: int = 2**26

    @classmethod
    def from_environment(cls) -> Limits:
        """Return the limits, each overridden by its ``IMAGE2_MAX_*`` environment variable when set."""
        values = {}
        for field in attrs.fields(cls):
            text = os.environ.get(f"IMAGE2_{field.name.upper()}")
            if text:
                try:
                    values[field.name] = int(text)
                except ValueError:
                    raise InvalidInputError(f"${'IMAGE2_' + field.name.upper()}", f"{text!r} is not a whole number") from None
        return cls(**values)


def regular_file(path: Path) -> os.stat_result:
    """Return the status of ``path``, a regular file (after symlinks); anything else is an InvalidInputError.

    Checked before opening: opening a FIFO blocks, and a device such as /dev/zero never ends.
    """
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise InvalidInputError(path, "no such file") from None
    except OSError as error:
        raise InvalidInputError(path, f"cannot read ({error.strerror or error})") from None
    if stat.S_ISDIR(status.st_mode):
        raise InvalidInputError(path, "is a directory, not a file")
    if not stat.S_ISREG(status.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(status.st_mode) else "a device or socket"
        raise InvalidInputError(path, f"is {kind}, not a regular file; only regular files are read")
    return status


def compression_of(head: bytes) -> str | None:
    """Return the whole-file compression format whose magic bytes start ``head`` (None when none)."""
    return next((name for magic, name in COMPRESSED_MAGIC.items() if head.startswith(magic)), None)


def _number(cards: dict[str, str], keyword: str, default: int | None = None) -> int:
    if keyword not in cards:
        if default is None:
            raise ValueError(f"{keyword} is missing")
        return default
    try:
        return int(cards[keyword])
    except ValueError:
        raise ValueError(f"{keyword} = {cards[keyword]!r} is not a whole number") from None


def _axes(cards: dict[str, str], prefix: str) -> list[int]:
    count = _number(cards, prefix)
    if not 0 <= count <= 999:
        raise ValueError(f"{prefix} = {count} is outside 0..999")
    axes = [_number(cards, f"{prefix}{i}") for i in range(1, count + 1)]
    if any(n < 0 for n in axes):
        raise ValueError(f"negative axis length in {prefix}n = {axes}")
    return axes


def _pixels(axes: list[int]) -> int:
    count = 1
    for n in axes:
        count *= n
    return count


def _check_array(name: str, axes: list[int], limits: Limits) -> str | None:
    """Return why an image of ``axes`` (FITS order: x first) is too large, or None."""
    if not axes:
        return None
    plane, total = _pixels(axes[:2]), _pixels(axes)
    shape = " x ".join(map(str, reversed(axes)))
    if plane > limits.max_plane_pixels:
        return (f"{name} declares a {shape} array: {plane} pixels per plane exceed the limit of "
                f"{limits.max_plane_pixels} (IMAGE2_MAX_PLANE_PIXELS)")
    if total > limits.max_array_pixels:
        return (f"{name} declares a {shape} array: {total} pixels exceed the limit of "
                f"{limits.max_array_pixels} (IMAGE2_MAX_ARRAY_PIXELS)")
    return None


def _hdu_name(cards: dict[str, str], number: int) -> str:
    if number == 0:
        return "the primary HDU"
    text = cards.get("EXTNAME")
    if text:
        try:
            return quoted_string(text)[0] or f"HDU {number}"
        except ValueError:
            pass
    return f"HDU {number}"


_WANTED = {"BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "GROUPS", "EXTNAME", "XTENSION", "ZIMAGE", "ZNAXIS", "ZBITPIX"}


def _header(handle: BinaryIO, number: int) -> dict[str, str]:
    """Return the value texts of the cards of the header at the handle's position that size its data."""
    cards: dict[str, str] = {}
    for keyword, card in header_cards(handle, primary=number == 0, max_blocks=MAX_HEADER_BLOCKS):
        if keyword in _WANTED or (keyword.startswith(("NAXIS", "ZNAXIS")) and keyword[-1].isdigit()):
            cards.setdefault(keyword, card_value(card))
    return cards


def check_fits(path: Path, limits: Limits | None = None) -> list[str]:
    """Check that ``path`` is a regular FITS file whose HDUs' declared data fit the file and the limits;
    return its HDUs' names in file order (PRIMARY, then each upper-case EXTNAME, '' when unnamed).

    Only the headers are read, each HDU's data is skipped by its declared size, so a crafted
    file costs a few blocks of reading, whatever it declares. Raises InvalidInputError naming
    the file, the HDU and the problem.
    """
    limits = limits or Limits.from_environment()
    names: list[str] = []
    size = regular_file(path).st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        compression = compression_of(head)
        if compression is not None:
            raise InvalidInputError(path, f"{compression}-compressed file; compressed FITS files are not read "
                                          "(decompress it first)")
        if size == 0:
            raise InvalidInputError(path, "not a readable FITS file (an empty file)")
        if not b"SIMPLE  ".startswith(head[:8]):
            raise InvalidInputError(path, "not a readable FITS file (no SIMPLE card)")
        if size < BLOCK:
            raise InvalidInputError(path, f"truncated or corrupt FITS file: {size} bytes, less than one "
                                          f"{BLOCK}-byte block")
        offset = number = 0
        while offset < size:
            if number >= MAX_HDUS:
                raise InvalidInputError(path, f"more than {MAX_HDUS} HDUs")
            handle.seek(offset)
            if number > 0 and handle.read(8) != b"XTENSION":
                if size - offset < BLOCK:  # stray bytes short of a block after the last HDU: ignored, as astropy does
                    break
                raise InvalidInputError(path, f"not a readable FITS file: {size - offset} bytes after the last HDU "
                                              f"(HDU {number - 1}) are not an extension")
            handle.seek(offset)
            try:
                cards = _header(handle, number)
            except NotFits:
                raise InvalidInputError(path, "not a readable FITS file (no SIMPLE card)") from None
            except HeaderTruncated:
                header = "the primary header" if number == 0 else f"header {number}"
                if handle.tell() >= size:
                    raise InvalidInputError(path, f"truncated or corrupt FITS file: {header} is cut short "
                                                  f"(the file ends at {size} bytes)") from None
                raise InvalidInputError(path, f"truncated or corrupt FITS file: {header} has no END card "
                                              f"within {MAX_HEADER_BLOCKS} blocks") from None
            name = _hdu_name(cards, number)
            try:
                axes = _axes(cards, "NAXIS")
                bitpix = _number(cards, "BITPIX")
                if bitpix not in (8, 16, 32, 64, -32, -64):
                    raise ValueError(f"BITPIX = {bitpix} is not a FITS data type")
                pcount, gcount = _number(cards, "PCOUNT", 0), _number(cards, "GCOUNT", 1)
                if pcount < 0 or gcount < 0:
                    raise ValueError("negative PCOUNT or GCOUNT")
                compressed = cards.get("ZIMAGE", "").strip() == "T"
                image_axes = _axes(cards, "ZNAXIS") if compressed else axes
            except ValueError as error:
                raise InvalidInputError(path, f"{name}: malformed header ({error})") from None
            is_table = number > 0 and "TABLE" in cards.get("XTENSION", "")
            nbytes = data_size(cards)
            problem = _check_array(name, image_axes, limits) if (compressed or not is_table) else None
            if problem is None and is_table and not compressed and nbytes > 8 * limits.max_plane_pixels:
                problem = f"{name} declares a table of {nbytes} bytes, over the limit of {8 * limits.max_plane_pixels}"
            if problem is not None:
                raise InvalidInputError(path, problem)
            data_start = handle.tell()
            if data_start + nbytes > size:
                raise InvalidInputError(path, f"truncated or corrupt FITS file: {name} declares {nbytes} bytes of data "
                                              f"but the file holds {max(size - data_start, 0)} after its header")
            offset = data_start + padded(nbytes)
            names.append("PRIMARY" if number == 0 else _extname(cards))
            number += 1
    return names


def _extname(cards: dict[str, str]) -> str:
    """The upper-case EXTNAME of an extension's value cards ('' when it has none or it is unreadable)."""
    try:
        return quoted_string(cards["EXTNAME"])[0].strip().upper()
    except (KeyError, ValueError):
        return ""


def check_asdf_blocks(raw: bytes, source: object, limits: Limits | None = None) -> None:
    """Check that every binary block of an embedded ASDF file inflates to at most the block limit.

    The blocks follow the YAML tree, each behind a magic token and a header stating its
    allocated, used and inflated (data) sizes; they are walked in order without being read.
    """
    limits = limits or Limits.from_environment()
    position = raw.find(_ASDF_BLOCK_MAGIC)
    while 0 <= position < len(raw):
        if raw[position:position + 4] != _ASDF_BLOCK_MAGIC:
            return  # the optional block index, or padding, follows the last block
        start = position + 6
        if start + _ASDF_BLOCK_HEADER.size > len(raw):
            raise InvalidInputError(source, "embedded ASDF: truncated block header")
        (header_size,) = struct.unpack(">H", raw[position + 4:start])
        _flags, compression, allocated, _used, data_size, _checksum = _ASDF_BLOCK_HEADER.unpack_from(raw, start)
        if data_size > limits.max_asdf_block_bytes:
            kind = compression.strip(b"\0").decode("ascii", "replace") or "uncompressed"
            raise InvalidInputError(source, f"embedded ASDF block ({kind}) declares {data_size} bytes, over the "
                                            f"limit of {limits.max_asdf_block_bytes} (IMAGE2_MAX_ASDF_BLOCK_BYTES)")
        position = start + header_size + allocated
