"""The embedded ASDF extension (formats.md §6): a whole ASDF file in a one-cell BINTABLE.

asdf is imported where it is used: reading a file's headers alone (``image2 info``) never needs it.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
from astropy.io import fits

from image2.errors import InvalidInputError
from image2.io.bounds import check_asdf_blocks

EXTNAME = "ASDF"
COLUMN = "ASDF_METADATA"


def tree_to_hdu(tree: dict[str, Any]) -> fits.BinTableHDU:
    """Serialise ``tree`` as ASDF and wrap it in the ``ASDF`` BINTABLE extension."""
    import asdf

    buffer = io.BytesIO()
    with asdf.config_context() as config:
        config.validate_on_write = False  # our tree comes from asdf's own converters; validation costs ~0.1 s
        asdf.AsdfFile(tree).write_to(buffer)
    raw = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    column = fits.Column(name=COLUMN, format=f"{raw.size}B", array=raw[np.newaxis, :])
    return fits.BinTableHDU.from_columns([column], name=EXTNAME)


def hdu_to_meta(hdu: fits.BinTableHDU, source: object = "ASDF extension") -> dict[str, Any]:
    """Return the ``meta`` mapping of the ASDF tree stored in an ``ASDF`` extension.

    The tree is read eagerly so no object in it depends on the closed buffer; its blocks are
    checked against the limits first (image2.io.bounds), since an inflated block is a bomb. Array
    stubs of datamodels-written files (``source: fits:SCI,1``) sit outside ``meta`` and are not
    needed: the FITS reader reads those HDUs itself. Anything unreadable in the extension is an
    InvalidInputError naming ``source``.
    """
    import asdf

    if not isinstance(hdu, fits.BinTableHDU):
        raise InvalidInputError(source, f"the ASDF extension is a {type(hdu).__name__}, not a table")
    if COLUMN not in (hdu.columns.names or ()):
        raise InvalidInputError(source, f"the ASDF extension has no {COLUMN} column")
    raw = np.asarray(hdu.data[COLUMN][0]).tobytes()
    check_asdf_blocks(raw, source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown tags of other software are not our concern
        try:
            with asdf.open(io.BytesIO(raw), lazy_load=False, memmap=False) as handle:
                meta = handle.tree.get("meta", {})
                return dict(meta) if isinstance(meta, dict) else {}
        except (MemoryError, RecursionError) as error:
            raise InvalidInputError(source, f"embedded ASDF tree cannot be read ({type(error).__name__})") from None
        except Exception as error:  # noqa: BLE001 - yaml, asdf and the converters each raise their own
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise InvalidInputError(source, f"embedded ASDF tree cannot be read ({type(error).__name__}: {first})") from None
