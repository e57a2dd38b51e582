"""Readers of CRDS-format reference files into the plain records of image2.core.references.

Each reader opens the file, validates what the steps rely on, copies the data into native
in-memory arrays and closes the file again, so no record holds a file handle. A malformed
file raises ReferenceFileError naming the file and the problem (reference_files.md §2–§8).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import asdf
import numpy as np
from astropy.io import fits
from astropy.modeling import Model

from image2.core.dq import translate
from image2.core.meta import Subarray
from image2.core.references import (
    NOT_APPLICABLE,
    AreaReference,
    DarkReference,
    DistortionReference,
    FilterOffset,
    FilterOffsetReference,
    FlatReference,
    PhotomReference,
)
from image2.errors import ReferenceFileError

logger = logging.getLogger(__name__)

PHOTOM_DESCRIPTIVE: Mapping[str, tuple[str, ...]] = {
    "NIRCAM": ("filter", "pupil"),
    "NIRISS": ("filter", "pupil"),
    "MIRI": ("filter", "subarray"),
    "FGS": (),
}
"""Descriptive (row-selection) columns each instrument's imaging PHOTOM table must have."""

DESCRIPTIVE_COLUMNS = ("filter", "pupil", "subarray")

TIMECOEFF: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "linear": ("TIMECOEFF_LINEAR", ("t0", "lossperyear")),
    "exponential": ("TIMECOEFF_EXPONENTIAL", ("t0", "amplitude", "tau", "const")),
    "powerlaw": ("TIMECOEFF_POWERLAW", ("t0", "year1value", "tsoft", "alpha")),
}
"""Time-dependence extensions: record key -> (EXTNAME, float32 coefficient columns)."""

PHOTOM_FLOAT32 = ("photmjsr", "uncertainty")

PIXEL_UNITS = ("pixel", "pix")
ARCSEC_UNITS = ("arcsec",)


def source_of(path: Path | str) -> str:
    """Return the R_* value for a file given explicitly: its absolute path."""
    return str(Path(path).expanduser().resolve())


def _fits(path: Path) -> fits.HDUList:
    """Open ``path`` as FITS with all HDUs read into memory (the caller closes it)."""
    if not path.is_file():
        raise ReferenceFileError(path, "reference file does not exist")
    try:
        return fits.open(path, memmap=False, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError) as error:
        raise ReferenceFileError(path, f"is not a readable FITS file ({error})") from None


def _asdf_tree(path: Path) -> dict[str, Any]:
    """Return the whole ASDF tree of ``path``, converted eagerly so nothing refers to the file."""
    if not path.is_file():
        raise ReferenceFileError(path, "reference file does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown tags of other software are not our concern
            with asdf.open(path, lazy_load=False, memmap=False, lazy_tree=False) as handle:
                return dict(handle.tree)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise ReferenceFileError(path, f"is not a readable ASDF file ({error})") from None


def _check_reftype(path: Path, found: Any, expected: str) -> None:
    if found is not None and str(found).strip().upper() != expected.upper():
        raise ReferenceFileError(path, f"REFTYPE is {str(found).strip()!r}, not a {expected.upper()} reference")


def _hdu(path: Path, hdul: fits.HDUList, name: str) -> Any | None:
    try:
        return hdul[name]
    except KeyError:
        return None


def _image(path: Path, hdul: fits.HDUList, name: str, dtype: type, required: bool = True) -> np.ndarray | None:
    """Return extension ``name`` as a native-order array of ``dtype`` (None if absent and optional)."""
    hdu = _hdu(path, hdul, name)
    if hdu is None or not isinstance(hdu, (fits.ImageHDU, fits.PrimaryHDU, fits.CompImageHDU)):
        if required:
            raise ReferenceFileError(path, f"has no {name} image extension")
        return None
    try:
        data = hdu.data
    except (OSError, ValueError, TypeError) as error:
        raise ReferenceFileError(path, f"{name} extension cannot be read ({error})") from None
    if data is None:
        raise ReferenceFileError(path, f"{name} extension holds no data")
    return np.array(data, dtype=np.dtype(dtype).newbyteorder("="))


def _require_2d(path: Path, name: str, array: np.ndarray) -> None:
    if array.ndim != 2:
        raise ReferenceFileError(path, f"{name} must be a 2-D image, found shape {array.shape}")


def _same_shape(path: Path, name: str, array: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if array is not None and array.shape != shape:
        raise ReferenceFileError(path, f"{name} has shape {array.shape} but SCI has shape {shape}")


def _header_int(path: Path, header: fits.Header, keyword: str) -> int | None:
    value = header.get(keyword)
    if value is None or isinstance(value, fits.card.Undefined):
        return None
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError):
        raise ReferenceFileError(path, f"keyword {keyword} = {value!r} is not an integer") from None


def _header_float(path: Path, header: fits.Header, keyword: str) -> float | None:
    value = header.get(keyword)
    if value is None or isinstance(value, fits.card.Undefined):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise ReferenceFileError(path, f"keyword {keyword} = {value!r} is not a number") from None


def _header_str(header: fits.Header, keyword: str) -> str | None:
    value = header.get(keyword)
    if value is None or isinstance(value, fits.card.Undefined):
        return None
    return str(value).strip()


def subarray_of(path: Path, header: fits.Header) -> Subarray:
    """Return the placement keywords of a reference header (absent ones stay None)."""
    return Subarray(
        name=_header_str(header, "SUBARRAY"),
        xstart=_header_int(path, header, "SUBSTRT1"),
        ystart=_header_int(path, header, "SUBSTRT2"),
        xsize=_header_int(path, header, "SUBSIZE1"),
        ysize=_header_int(path, header, "SUBSIZE2"),
    )


def _column(table: Any, name: str) -> str | None:
    """Return the stored spelling of column ``name`` (case-insensitive), or None."""
    for stored in table.columns.names:
        if stored.strip().lower() == name.lower():
            return stored
    return None


def dq_definitions(path: Path, hdul: fits.HDUList) -> list[tuple[int, str]]:
    """Return the (VALUE, NAME) rows of the DQ_DEF table (empty when there is none)."""
    hdu = _hdu(path, hdul, "DQ_DEF")
    if hdu is None:
        return []
    if not isinstance(hdu, fits.BinTableHDU):
        raise ReferenceFileError(path, "DQ_DEF extension is not a table")
    if hdu.data is None or len(hdu.data) == 0:
        return []
    value, name = _column(hdu.data, "VALUE"), _column(hdu.data, "NAME")
    if value is None or name is None:
        raise ReferenceFileError(path, "DQ_DEF table needs VALUE and NAME columns, "
                                       f"found {', '.join(hdu.data.columns.names)}")
    rows = []
    for raw_value, raw_name in zip(hdu.data[value], hdu.data[name]):
        number = int(raw_value)
        if number < 0 or number > 0xFFFFFFFF:
            raise ReferenceFileError(path, f"DQ_DEF VALUE {number} of {str(raw_name).strip()!r} is not a uint32")
        rows.append((number, raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)))
    return rows


def translated_dq(path: Path, hdul: fits.HDUList, shape: tuple[int, ...], required: bool) -> np.ndarray | None:
    """Return the DQ array translated through DQ_DEF (reference_files.md §2), checked against ``shape``."""
    raw = _image(path, hdul, "DQ", np.int64, required=required)
    if raw is None:
        return None
    if raw.size and (raw.min() < 0 or raw.max() > 0xFFFFFFFF):
        raise ReferenceFileError(path, "DQ holds values outside the uint32 range")
    _same_shape(path, "DQ", raw, shape)
    dq, unknown = translate(raw.astype(np.uint32), dq_definitions(path, hdul))
    if unknown:
        logger.warning("%s: DQ_DEF names that are not standard flags are ignored: %s",
                       path, ", ".join(unknown), extra={"file": str(path)})
    return dq


def read_flat(path: Path | str, source: str | None = None) -> FlatReference:
    """Read an imaging FLAT: SCI float32, ERR (zeros when absent), DQ translated through DQ_DEF."""
    path = Path(path)
    with _fits(path) as hdul:
        primary = hdul[0].header
        _check_reftype(path, primary.get("REFTYPE"), "FLAT")
        sci = _image(path, hdul, "SCI", np.float32)
        _require_2d(path, "SCI", sci)
        err = _image(path, hdul, "ERR", np.float32, required=False)
        _same_shape(path, "ERR", err, sci.shape)
        dq = translated_dq(path, hdul, sci.shape, required=False)
        return FlatReference(
            source=source or source_of(path),
            sci=sci,
            err=np.zeros(sci.shape, np.float32) if err is None else err,
            dq=np.zeros(sci.shape, np.uint32) if dq is None else dq,
            subarray=subarray_of(path, primary),
            instrument=_header_str(primary, "INSTRUME"),
        )


def _table_array(path: Path, hdu: fits.BinTableHDU, extname: str) -> np.ndarray:
    """Return a FITS table as a native structured array: lower-case names, stripped str columns."""
    data = hdu.data
    if data is None or len(data) == 0:
        raise ReferenceFileError(path, f"{extname} table has no rows")
    fields, columns = [], []
    for name in data.columns.names:
        values = np.asarray(data[name])
        key = name.strip().lower()
        if values.dtype.kind in "SU":
            text = np.char.strip(values.astype(str))
            fields.append((key, f"U{max(1, text.dtype.itemsize // 4)}"))
            columns.append(text)
        elif values.ndim == 1 and values.dtype.kind in "iufb":
            dtype = np.float32 if key in PHOTOM_FLOAT32 else values.dtype.newbyteorder("=")
            fields.append((key, dtype))
            columns.append(values.astype(dtype))
        else:
            fields.append((key, values.dtype.newbyteorder("="), values.shape[1:]))
            columns.append(values.astype(values.dtype.newbyteorder("=")))
    out = np.empty(len(data), dtype=fields)
    for (key, *_), values in zip(fields, columns):
        out[key] = values
    return out


def _require_columns(path: Path, extname: str, table: np.ndarray, required: tuple[str, ...]) -> None:
    missing = [name for name in required if name not in table.dtype.names]
    if missing:
        raise ReferenceFileError(path, f"{extname} table lacks column(s) {', '.join(missing)} "
                                       f"(has {', '.join(table.dtype.names)})")
    for name in required:
        if name not in DESCRIPTIVE_COLUMNS and table.dtype[name].kind not in "iuf":
            raise ReferenceFileError(path, f"{extname} column {name} is not numeric")


def _check_timecoeff(path: Path, extname: str, phot: np.ndarray, table: np.ndarray) -> None:
    """Validate a time-dependence table against PHOTOM: same row count, same descriptive values."""
    if len(table) != len(phot):
        raise ReferenceFileError(path, f"{extname} has {len(table)} rows but PHOTOM has {len(phot)}; "
                                       "the time-dependence table must match PHOTOM row for row")
    for name in DESCRIPTIVE_COLUMNS:
        if name in phot.dtype.names and name in table.dtype.names:
            differ = np.flatnonzero(phot[name] != table[name])
            if differ.size:
                row = int(differ[0])
                raise ReferenceFileError(path, f"{extname} row {row + 1} has {name} {str(table[name][row])!r} but "
                                               f"PHOTOM row {row + 1} has {name} {str(phot[name][row])!r}")


def read_photom(path: Path | str, source: str | None = None) -> PhotomReference:
    """Read an imaging PHOTOM table (NIRCam/NIRISS/MIRI/FGS) and its validated TIMECOEFF_* tables."""
    path = Path(path)
    with _fits(path) as hdul:
        primary = hdul[0].header
        _check_reftype(path, primary.get("REFTYPE"), "PHOTOM")
        instrument = (_header_str(primary, "INSTRUME") or "").upper()
        hdu = _hdu(path, hdul, "PHOTOM")
        if not isinstance(hdu, fits.BinTableHDU):
            raise ReferenceFileError(path, "has no PHOTOM table extension")
        rows = _table_array(path, hdu, "PHOTOM")
        descriptive = PHOTOM_DESCRIPTIVE.get(instrument, ())
        _require_columns(path, "PHOTOM", rows, (*descriptive, *PHOTOM_FLOAT32))
        timecoeff = {}
        for kind, (extname, coefficients) in TIMECOEFF.items():
            extension = _hdu(path, hdul, extname)
            if extension is None:
                continue
            if not isinstance(extension, fits.BinTableHDU):
                raise ReferenceFileError(path, f"{extname} extension is not a table")
            table = _table_array(path, extension, extname)
            _require_columns(path, extname, table, (*descriptive, *coefficients))
            _check_timecoeff(path, extname, rows, table)
            timecoeff[kind] = table.astype([(name, np.float32 if name in coefficients else table.dtype[name])
                                            for name in table.dtype.names])
        return PhotomReference(
            source=source or source_of(path),
            rows=rows,
            timecoeff=timecoeff,
            pixar_sr=_header_float(path, primary, "PIXAR_SR"),
            pixar_a2=_header_float(path, primary, "PIXAR_A2"),
            instrument=instrument or None,
        )


def read_area(path: Path | str, source: str | None = None) -> AreaReference:
    """Read a pixel-area map: SCI float32 (relative area) and the nominal PIXAR_SR/PIXAR_A2."""
    path = Path(path)
    with _fits(path) as hdul:
        primary = hdul[0].header
        _check_reftype(path, primary.get("REFTYPE"), "AREA")
        sci = _image(path, hdul, "SCI", np.float32)
        _require_2d(path, "SCI", sci)
        return AreaReference(
            source=source or source_of(path),
            sci=sci,
            pixar_sr=_header_float(path, primary, "PIXAR_SR"),
            pixar_a2=_header_float(path, primary, "PIXAR_A2"),
            subarray=subarray_of(path, primary),
        )


def _unit_name(path: Path, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    name = value.to_string() if hasattr(value, "to_string") else str(value).strip()
    if name.lower() not in allowed:
        raise ReferenceFileError(path, f"meta.{key} is {name!r}, expected {' or '.join(allowed)}")
    return name


def _meta(path: Path, tree: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = tree.get("meta", {})
    if not isinstance(meta, Mapping):
        raise ReferenceFileError(path, "ASDF tree has no meta mapping")
    return meta


def read_distortion(path: Path | str, source: str | None = None) -> DistortionReference:
    """Read a DISTORTION ASDF file: an astropy model, 2 inputs (x, y pixels) -> 2 outputs (V2, V3 arcsec)."""
    path = Path(path)
    tree = _asdf_tree(path)
    meta = _meta(path, tree)
    _check_reftype(path, meta.get("reftype"), "DISTORTION")
    model = tree.get("model")
    if model is None:
        raise ReferenceFileError(path, "ASDF tree has no 'model'")
    if not isinstance(model, Model):
        raise ReferenceFileError(path, f"'model' is a {type(model).__name__}, not an astropy model "
                                       "(is asdf-astropy installed?)")
    if model.n_inputs != 2 or model.n_outputs != 2:
        raise ReferenceFileError(path, f"model maps {model.n_inputs} input(s) to {model.n_outputs} output(s); "
                                       "a distortion must map (x, y) to (V2, V3)")
    return DistortionReference(
        source=source or source_of(path),
        model=model,
        input_units=_unit_name(path, "input_units", meta.get("input_units", "pixel"), PIXEL_UNITS),
        output_units=_unit_name(path, "output_units", meta.get("output_units", "arcsec"), ARCSEC_UNITS),
    )


def _offset(path: Path, index: int, entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if isinstance(value, str) and value.strip().upper() == NOT_APPLICABLE:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ReferenceFileError(path, f"filters[{index}].{key} is {value!r}, not a number")
    return float(value)


def read_filteroffset(path: Path | str, source: str | None = None) -> FilterOffsetReference:
    """Read a FILTEROFFSET ASDF file: per filter (and pupil) column/row offsets in pixels.

    Entries whose offsets are 'N/A' (allowed by jwst, which then applies no shift) are left out,
    which has the same effect.
    """
    path = Path(path)
    tree = _asdf_tree(path)
    _check_reftype(path, _meta(path, tree).get("reftype"), "FILTEROFFSET")
    entries = tree.get("filters")
    if not isinstance(entries, (list, tuple)):
        raise ReferenceFileError(path, "ASDF tree has no 'filters' list")
    offsets = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ReferenceFileError(path, f"filters[{index}] is not a mapping")
        name = entry.get("filter")
        if not isinstance(name, str) or not name.strip():
            raise ReferenceFileError(path, f"filters[{index}] has no filter name")
        pupil = entry.get("pupil")
        if pupil is not None and not isinstance(pupil, str):
            raise ReferenceFileError(path, f"filters[{index}].pupil is {pupil!r}, not a string")
        column, row = _offset(path, index, entry, "column_offset"), _offset(path, index, entry, "row_offset")
        if column is None or row is None:
            continue
        offsets.append(FilterOffset(filter=name.strip(), pupil=pupil.strip() if pupil else None,
                                    column_offset=column, row_offset=row))
    return FilterOffsetReference(source=source or source_of(path), filters=offsets)


def read_dark(path: Path | str, source: str | None = None) -> DarkReference:
    """Read a rate-level (stage-2) 2-D dark; a JWST ramp-level 3-D/4-D dark is refused."""
    path = Path(path)
    with _fits(path) as hdul:
        primary = hdul[0].header
        _check_reftype(path, primary.get("REFTYPE"), "DARK")
        sci = _image(path, hdul, "SCI", np.float32)
        if sci.ndim in (3, 4):
            raise ReferenceFileError(path, f"is a ramp-level dark (SCI shape {sci.shape}, one plane per group) "
                                           "for stage 1; dark_current needs a rate-level 2-D dark")
        _require_2d(path, "SCI", sci)
        err = _image(path, hdul, "ERR", np.float32, required=False)
        _same_shape(path, "ERR", err, sci.shape)
        return DarkReference(
            source=source or source_of(path),
            sci=sci,
            err=err,
            dq=translated_dq(path, hdul, sci.shape, required=False),
            subarray=subarray_of(path, primary),
        )


READERS: Mapping[str, Callable[..., Any]] = {
    "flat": read_flat,
    "photom": read_photom,
    "area": read_area,
    "distortion": read_distortion,
    "filteroffset": read_filteroffset,
    "dark": read_dark,
}
"""Reader of each reference type, by lower-case CRDS name."""

REFERENCES_KEPT = 8
"""Reference records kept for reuse per process: one exposure's set (up to six types) and a little more."""

_keeping = True


@contextlib.contextmanager
def references_kept(keep: bool) -> Iterator[None]:
    """Within the block, keep the reference records read for later inputs (as by default: warm workers
    and runs of many inputs read each file once), or not: a run of one input lets each record go
    after the last step that takes it (a full frame's flat and area are 64 MiB)."""
    global _keeping
    before, _keeping = _keeping, keep
    try:
        yield
    finally:
        _keeping = before


def read_reference(reftype: str, path: Path | str, source: str | None = None) -> Any:
    """Read ``path`` as a reference of type ``reftype``; ``source`` is what R_* will record.

    A dark or flat in the Liger/IRIS layout (DATA extension) is read by its own reader. The records
    (immutable) of the last files read are kept and returned again while the file is unchanged (same
    size, modification time and inode), so a warm process (a worker of ``process --jobs`` or the
    watch daemon) reads each reference once; :func:`keep_read_references` turns that off for a block.
    """
    if reftype.lower() not in READERS:
        raise ReferenceFileError(path, f"unknown reference type {reftype!r} "
                                       f"(known: {', '.join(READERS)})") from None
    try:
        status = os.stat(path)
    except OSError:  # the reader says what is wrong with it
        return _reader_of(reftype.lower(), str(path))(path, source)
    if not _keeping:
        return _reader_of(reftype.lower(), str(path))(path, source)
    return _read_unchanged(reftype.lower(), str(path), source, status.st_mtime_ns, status.st_size, status.st_ino)


def _reader_of(reftype: str, path: str) -> Any:
    """The reader for ``path`` as a ``reftype``: Liger/IRIS's own for its darks and flats, else ours."""
    from image2.io.refs.liger import READERS as LIGER_READERS
    from image2.io.refs.liger import is_liger_reference

    if reftype in LIGER_READERS and is_liger_reference(path):
        return LIGER_READERS[reftype]
    return READERS[reftype]


@functools.lru_cache(maxsize=REFERENCES_KEPT)
def _read_unchanged(reftype: str, path: str, source: str | None, mtime_ns: int, size: int, inode: int) -> Any:
    """The reference record of ``path`` as it was at this modification time, size and inode."""
    return _reader_of(reftype, path)(path, source)
