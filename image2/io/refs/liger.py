"""Readers of Liger/IRIS reference files (the pipeline's DarkModel and FlatModel) into image2's records.

The layout: PRIMARY with INSTRUME, DETECTOR, FILTER, lower-case REFTYPE (``dark``/``flat``),
REFVER, DATAMODL, the exposure dates (EXPDTST ``YYYYMMDDHHMMSS``, EXPJDST) instead of USEAFTER,
and the subarray keywords; DATA (float32), ERR (float32), DQ (uint16 in darks, uint32 in flats).
How they are chosen from a folder: ``image2.io.refs.selection``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from astropy.io import fits

from image2.core.references import DarkReference, FlatReference
from image2.errors import ReferenceFileError
from image2.io.liger import is_liger_layout
from image2.io.refs.readers import _check_reftype, _fits, _header_str, _image, _require_2d, _same_shape
from image2.io.refs.readers import source_of, subarray_of


def is_liger_reference(path: Path | str) -> bool:
    """True for a reference in the Liger/IRIS layout: INSTRUME Liger/IRIS and a DATA extension, no SCI."""
    try:
        with fits.open(path, lazy_load_hdus=True) as hdul:
            return is_liger_layout(hdul[0].header, {hdu.name.upper() for hdu in hdul[1:]})
    except (OSError, ValueError, TypeError):
        return False


def _arrays(path: Path, hdul: fits.HDUList, dq_dtype: type) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    data = _image(path, hdul, "DATA", np.float32)
    _require_2d(path, "DATA", data)
    err = _image(path, hdul, "ERR", np.float32, required=False)
    _same_shape(path, "ERR", err, data.shape)
    dq = _image(path, hdul, "DQ", np.int64, required=False)
    if dq is not None:
        _same_shape(path, "DQ", dq, data.shape)
        if dq.size and (dq.min() < 0 or dq.max() > np.iinfo(dq_dtype).max):
            raise ReferenceFileError(path, f"DQ holds values outside the {np.dtype(dq_dtype).name} range")
        dq = dq.astype(dq_dtype)
    return data, err, dq


def _contents(path: Path, reftype: str, dq_dtype: type) -> tuple[fits.Header, np.ndarray, np.ndarray | None,
                                                                 np.ndarray | None]:
    """The PRIMARY header and the DATA, ERR, DQ of a Liger/IRIS reference of ``reftype``."""
    with _fits(path) as hdul:
        primary = hdul[0].header
        _check_reftype(path, primary.get("REFTYPE"), reftype)
        return (primary, *_arrays(path, hdul, dq_dtype))


def read_liger_dark(path: Path | str, source: str | None = None) -> DarkReference:
    """Read a Liger/IRIS DarkModel: DATA, ERR and DQ (uint16), placed by its subarray keywords."""
    path = Path(path)
    primary, data, err, dq = _contents(path, "DARK", np.uint16)
    return DarkReference(source=source or source_of(path), sci=data, err=err, dq=dq, subarray=subarray_of(path, primary))


def read_liger_flat(path: Path | str, source: str | None = None) -> FlatReference:
    """Read a Liger/IRIS FlatModel: DATA, ERR (zeros when absent) and DQ (uint32), placed by its subarray keywords."""
    path = Path(path)
    primary, data, err, dq = _contents(path, "FLAT", np.uint32)
    return FlatReference(source=source or source_of(path), sci=data,
                         err=np.zeros(data.shape, np.float32) if err is None else err,
                         dq=np.zeros(data.shape, np.uint32) if dq is None else dq,
                         subarray=subarray_of(path, primary), instrument=_header_str(primary, "INSTRUME"))


READERS: Mapping[str, Callable[..., Any]] = MappingProxyType({"dark": read_liger_dark, "flat": read_liger_flat})
"""Reader of each Liger/IRIS reference type, by lower-case REFTYPE."""
