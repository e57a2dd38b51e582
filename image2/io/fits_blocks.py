"""FITS headers walked straight from the file's 2880-byte blocks, without astropy.

Indexing thousands of reference headers and checking that a file landing in a watched folder
is whole both need a few cards of each header; parsing full headers with astropy costs far
more. This is the one place that knows the block and card layout.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from typing import BinaryIO

BLOCK = 2880
CARD = 80


class HeaderTruncated(ValueError):
    """A header ends (or exceeds the block limit) before its END card."""


class NotFits(ValueError):
    """A file's first header does not start with the SIMPLE card."""


def header_cards(handle: BinaryIO, *, primary: bool = False,
                 max_blocks: int | None = None) -> Iterator[tuple[str, str]]:
    """Yield (keyword, 80-character card) for each card of the header at the handle's position, up to END.

    Once exhausted, the handle stands just past the header's last block, where its data begins.
    A header cut short raises HeaderTruncated; with ``primary``, a first block that does not
    start with SIMPLE raises NotFits. Bytes that are not ASCII decode as U+FFFD, one per byte.
    """
    blocks = 0
    while True:
        block = handle.read(BLOCK)
        if len(block) < BLOCK or (max_blocks is not None and blocks >= max_blocks):
            raise HeaderTruncated("truncated FITS header (no END card)")
        if primary and blocks == 0 and not block.startswith(b"SIMPLE  ="):
            raise NotFits("not a FITS file (no SIMPLE card)")
        blocks += 1
        for offset in range(0, BLOCK, CARD):
            card = block[offset:offset + CARD].decode("ascii", errors="replace")
            keyword = card[:8].rstrip()
            if keyword == "END":
                return
            yield keyword, card


def card_value(card: str) -> str:
    """Return the text of a value card's value: up to a ``/`` comment, or for a string all from its opening quote.

    Decode a string with :func:`quoted_string`: a ``/`` may stand inside the quotes.
    """
    text = card[10:]
    if text.lstrip().startswith("'"):
        return text.strip()
    return text.split("/", 1)[0].strip()


def quoted_string(value: str) -> tuple[str, bool]:
    """Decode a FITS quoted string at the start of ``value``; return (text, whether it continues).

    ``''`` stands for a quote; a text ending in ``&`` continues on the next CONTINUE card.
    """
    value = value.lstrip()
    if not value.startswith("'"):
        raise ValueError(f"expected a quoted string in {value!r}")
    text, i = [], 1
    while i < len(value):
        if value[i] == "'":
            if value[i + 1:i + 2] == "'":
                text.append("'")
                i += 2
                continue
            break
        text.append(value[i])
        i += 1
    else:
        raise ValueError(f"unterminated string in {value!r}")
    joined = "".join(text).rstrip()
    return joined, joined.endswith("&")


def data_size(cards: Mapping[str, str]) -> int:
    """Return the bytes of an HDU's data (unpadded) from its BITPIX, NAXISn, GROUPS, GCOUNT and PCOUNT values.

    Raises KeyError or ValueError when those cards are missing or not numbers.
    """
    bitpix = abs(int(cards["BITPIX"]))
    naxis = int(cards["NAXIS"])
    axes = [int(cards[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
    if axes and axes[0] == 0 and cards.get("GROUPS") == "T":
        axes = axes[1:]
    elif not axes:
        return 0
    count = 1
    for n in axes:
        count *= n
    return bitpix // 8 * int(cards.get("GCOUNT", "1")) * (int(cards.get("PCOUNT", "0")) + count)


def padded(size: int) -> int:
    """Return ``size`` rounded up to whole blocks, as a FITS header or data area occupies the file."""
    return -(-size // BLOCK) * BLOCK


def primary_values(path: str | bytes | os.PathLike, keywords: Collection[str]) -> dict[str, str]:
    """Return the value text (see :func:`card_value`) of ``keywords`` found in a file's primary header.

    Raises OSError when the file cannot be read, HeaderTruncated or NotFits when it is no FITS file.
    """
    wanted = set(keywords)
    with open(path, "rb") as handle:
        return {keyword: card_value(card) for keyword, card in header_cards(handle, primary=True, max_blocks=100)
                if keyword in wanted}
