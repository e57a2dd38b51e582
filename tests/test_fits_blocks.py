"""The FITS block walker: it finds every header and data area where astropy does."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from image2.io.fits_blocks import HeaderTruncated, NotFits, card_value, data_size, header_cards, padded, quoted_string
from image2.synthetic.exposures import make_rate


def test_walking_headers_finds_every_hdu_where_astropy_does(tmp_path: Path) -> None:
    path = make_rate(tmp_path / "x_rate.fits", shape=(2, 40, 48))
    with fits.open(path) as hdul:
        expected = [(hdu.fileinfo()["hdrLoc"], hdu.fileinfo()["datLoc"], hdu.fileinfo()["datSpan"],
                     hdu.header["NAXIS"]) for hdu in hdul]
    assert len(expected) > 3
    found = []
    offset = 0
    with open(path, "rb") as handle:
        for _ in expected:
            handle.seek(offset)
            cards = {keyword: card_value(card) for keyword, card in header_cards(handle, primary=offset == 0)}
            start = handle.tell()
            found.append((offset, start, padded(data_size(cards)), int(cards["NAXIS"])))
            offset = start + padded(data_size(cards))
    assert found == expected
    assert offset == path.stat().st_size


def test_the_walker_refuses_what_is_not_a_whole_header(tmp_path: Path) -> None:
    path = make_rate(tmp_path / "x_rate.fits")
    with open(path, "rb") as handle, pytest.raises(HeaderTruncated):
        list(header_cards(handle, max_blocks=0))
    with open(path, "rb") as handle:
        handle.seek(1)
        with pytest.raises(NotFits):
            list(header_cards(handle, primary=True))
    cut = tmp_path / "cut.fits"
    cut.write_bytes(path.read_bytes()[:100])
    with open(cut, "rb") as handle, pytest.raises(HeaderTruncated):
        list(header_cards(handle, primary=True))


def test_card_values_and_quoted_strings() -> None:
    assert card_value(f"{'NAXIS':8}= {2:>20} / number of axes".ljust(80)) == "2"
    value = card_value(f"{'AUTHOR':8}= 'O''Brien / Co  '     / a comment".ljust(80))
    assert quoted_string(value) == ("O'Brien / Co", False)
    assert quoted_string("'F090W|F150W|&'") == ("F090W|F150W|&", True)
    with pytest.raises(ValueError, match="unterminated"):
        quoted_string("'F090W")
