"""Read and write exposures in the Liger/IRIS L1/L2 FITS layout (liger_iris_pipeline 3d0ac2e datamodels).

The layout: a PRIMARY header holding every keyword (INSTRUME ``Liger``/``IRIS``, DETECTOR,
IMTYPE, FILTER, EXPTIME, EXPJDST..., SUBARRAY/SUBARRID/SUBSTRT/SUBSIZE, FASTAXIS/SLOWAXIS and
the WCS as CRPIX/CRVAL/CTYPE/CUNIT/CDELT), then DATA (float32), ERR (float32), DQ (uint16),
an optional SUBARR_MAP (uint16) and an ASDF extension; no variance arrays. The layout (and so
the instrument family) is decided once, from the file (:func:`is_liger_layout`); the record is
the same ``Exposure`` as for JWST data, with the DATA header kept under ``SCI`` and
``meta.layout == "liger"``.

Products are written in the Liger L2 layout with an ASDF tree the Liger datamodels read: the
whole ``meta`` in its schema's names (plain values only, no gwcs: the WCS stays in the FITS
keywords), array stubs pointing at the FITS extensions, and the ``_fits_hash`` of the headers
that lets ``datamodels.open`` take the tree as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from astropy.io import fits

from image2._version import __version__
from image2.core.cards import COMMENTARY, Cards
from image2.core.exposure import Exposure
from image2.core.meta import Meta, StepRecord, is_reference_keyword, is_status_keyword
from image2.errors import InvalidInputError
from image2.io.asdf_tree import EXTNAME as ASDF_EXTNAME
from image2.io.asdf_tree import tree_to_hdu
from image2.io.fits import OpenFits, _open_fits, _typed, extra_extensions, hdu_index, header_cards, to_header
from image2.io.liger_schema import meta_tree

LIGER = "liger"
INSTRUMENTS = frozenset({"LIGER", "IRIS"})
MODEL_TYPE = "ImagerModel"
SUBARRAY_MAP = "SUBARR_MAP"
ARRAYS = {"DATA": "sci", "ERR": "err", "DQ": "dq"}
"""Liger array extension → Exposure field."""

TYPED: tuple[tuple[str, str, str, type], ...] = (
    ("INSTRUME", "instrument", "name", str), ("DETECTOR", "instrument", "detector", str),
    ("FILTER", "instrument", "filter", str), ("PUPIL", "instrument", "pupil", str),
    ("IMTYPE", "exposure", "type", str), ("READMODE", "exposure", "readpatt", str),
    ("EXPTIME", "exposure", "effexptm", float),
    ("SUBARRAY", "subarray", "name", str),
    ("SUBSTRT1", "subarray", "xstart", int), ("SUBSTRT2", "subarray", "ystart", int),
    ("SUBSIZE1", "subarray", "xsize", int), ("SUBSIZE2", "subarray", "ysize", int),
)
"""PRIMARY keywords modelled by typed Meta fields: readers fill the fields, the writer writes them back.
IMTYPE fills ``exposure.type`` (Liger has no EXP_TYPE); EXPTIME the exposure time."""

JD_MINUS_MJD = 2400000.5
PRODUCT_LEVEL = 2
"""DATALVL of every product written: stage 2 makes level-2 frames."""


def is_liger_layout(primary: fits.Header, extnames: set[str]) -> bool:
    """True for the Liger/IRIS layout: INSTRUME Liger or IRIS, a DATA extension and no SCI one."""
    instrument = str(primary.get("INSTRUME", "")).strip().upper()
    return instrument in INSTRUMENTS and "DATA" in extnames and "SCI" not in extnames


def is_liger_file(path: Path | str) -> bool:
    """True when ``path`` is an exposure in the Liger/IRIS layout (errors as for any exposure file)."""
    with _open_fits(Path(path)) as hdul:
        return is_liger_layout(hdul[0].header, {hdu.name.upper() for hdu in hdul[1:]})


def liger_meta(path: Path, headers: Mapping[str, fits.Header], tree: Mapping[str, Any]) -> Meta:
    """Build typed metadata from Liger headers (DATA's under ``SCI``) and the embedded ASDF ``meta``."""
    cards = {name: header_cards(header) for name, header in headers.items()}
    primary = cards["PRIMARY"]
    groups: dict[str, dict[str, Any]] = {}
    for keyword, group, field, kind in TYPED:
        if primary.get(keyword) is not None:
            groups.setdefault(group, {})[field] = _typed(path, keyword, kind, primary.get(keyword))
    jd_start = primary.get("EXPJDST")
    if isinstance(jd_start, (int, float)) and not isinstance(jd_start, bool):
        groups.setdefault("exposure", {})["start"] = float(jd_start) - JD_MINUS_MJD  # read-only: EXPJDST stays
    status = {c.keyword: str(c.value) for c in primary if is_status_keyword(c.keyword)}
    refs = {c.keyword: str(c.value) for c in primary if is_reference_keyword(c.keyword)}
    cards["PRIMARY"] = primary.without([keyword for keyword, *_ in TYPED]).without_matching(
        lambda k: is_status_keyword(k) or is_reference_keyword(k))
    defaults = Meta()
    typed = {name: attrs.evolve(getattr(defaults, name), **values) for name, values in groups.items()}
    own = tree.get("image2", {}) if isinstance(tree.get("image2"), dict) else {}
    provenance = tuple(StepRecord(**record) for record in own.get("provenance", ()))
    kept = {"subarray_map": tree["subarray_map"]} if isinstance(tree.get("subarray_map"), list) else {}
    return Meta(**typed, status=status, refs=refs, provenance=provenance, cards=cards, tree=kept, layout=LIGER)


class LigerExposureFile(OpenFits):
    """A Liger/IRIS exposure file opened for reading (the interface of ``image2.io.fits.ExposureFile``);
    with ``headers_only`` the embedded ASDF tree (provenance, subarray map records) is not read."""

    def _load(self, headers_only: bool) -> None:
        tree = self._tree(headers_only)
        headers = {"SCI" if name == "DATA" else name: self._hdul[i].header
                   for name, i in self._index.items() if name in ("PRIMARY", *ARRAYS)}
        self.meta = liger_meta(self.path, headers, tree)
        self.wcs = None
        self.extensions = extra_extensions(self._hdul, self._index, {"PRIMARY", ASDF_EXTNAME, *ARRAYS})

    def _validate(self) -> dict[str, int]:
        index = hdu_index(self._hdul)
        if not is_liger_layout(self._hdul[0].header, set(index)):
            raise InvalidInputError(self.path, "not a Liger/IRIS file (INSTRUME Liger or IRIS and a DATA extension)")
        shape = self._hdul[index["DATA"]].shape
        if len(shape) != 2:
            raise InvalidInputError(self.path, f"DATA is {len(shape)}-D; a Liger/IRIS imager frame is 2-D")
        for name in ("ERR", "DQ", SUBARRAY_MAP):
            if name in index and self._hdul[index[name]].header.get("NAXIS", 0) and self._hdul[index[name]].shape != shape:
                raise InvalidInputError(self.path, f"{name} shape {self._hdul[index[name]].shape} differs from DATA {shape}")
        return index

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of DATA ``(ny, nx)``."""
        return self._hdul[self._index["DATA"]].shape

    @property
    def is_cube(self) -> bool:
        """Always False: Liger/IRIS imager frames are 2-D."""
        return False

    def _array(self, name: str, dtype: type) -> np.ndarray | None:
        if name not in self._index or not self._hdul[self._index[name]].header.get("NAXIS", 0):
            return None
        try:
            return np.asarray(self._hdul[self._index[name]].data, dtype=dtype)
        except (OSError, ValueError, TypeError) as error:
            raise InvalidInputError(self.path, f"cannot read {name} ({error})") from None

    def read(self, start: int | None = None, stop: int | None = None, *, optional: bool = True) -> Exposure:
        """Return the exposure (Liger/IRIS frames have no integrations to select, and only SCI, ERR and DQ,
        so ``optional`` changes nothing)."""
        if start is not None or stop is not None:
            raise ValueError("integration ranges apply to 3-D exposures only")
        sci = self._array("DATA", np.float32)
        err = self._array("ERR", np.float32)
        dq = self._array("DQ", np.uint32)
        return Exposure(sci=sci, err=np.zeros_like(sci) if err is None else err,
                        dq=np.zeros(sci.shape, np.uint32) if dq is None else dq,
                        meta=self.meta, extensions=self.extensions)


# ---- writing --------------------------------------------------------------------------------

def primary_cards(meta: Meta, filename: str, now: str) -> Cards:
    """Return the PRIMARY cards of a Liger product: typed fields, carried cards, S_*, R_*, stamps."""
    typed = [(keyword, getattr(getattr(meta, group), field)) for keyword, group, field, _ in TYPED]
    cards = Cards().updated(typed)
    carried = meta.header("PRIMARY")
    cards = Cards(cards.items + tuple(c for c in carried if c.keyword not in cards or c.keyword in COMMENTARY))
    stamps = {"DATAMODL": carried.get("DATAMODL") or MODEL_TYPE, "DATALVL": PRODUCT_LEVEL, "FILENAME": filename,
              "DATECRT": now,
              "DRSVER": f"image2 {__version__}"}
    return cards.updated(dict(meta.status)).updated(dict(meta.refs)).updated(stamps)


def product_dq(dq: np.ndarray) -> np.ndarray:
    """DQ as written: uint16 as in the Liger schema, uint32 when a flag above bit 15 is set (none is lost)."""
    return dq.astype(np.uint16) if not dq.size or int(dq.max()) <= 0xFFFF else dq.astype(np.uint32)


def _stub(name: str, array: np.ndarray) -> Any:
    """An ASDF ndarray node whose data is the FITS extension ``name`` (as the datamodels write them)."""
    from asdf.tagged import TaggedDict
    return TaggedDict({"source": f"fits:{name},1", "datatype": array.dtype.name, "byteorder": "big",
                       "shape": list(array.shape)}, "tag:stsci.edu:asdf/core/ndarray-1.1.0")


def headers_hash(hdul: fits.HDUList) -> str:
    """The datamodels' ``_fits_hash``: SHA-256 of every non-ASDF header as it reads back from the file."""
    buffer = io.BytesIO()
    fits.HDUList([hdu for hdu in hdul if hdu.name != ASDF_EXTNAME]).writeto(buffer)
    buffer.seek(0)
    digest = hashlib.sha256()
    with fits.open(buffer, lazy_load_hdus=False) as written:
        digest.update("".join(str(hdu.header) for hdu in written).encode())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def liger_hdus(exposure: Exposure, filename: str) -> fits.HDUList:
    """Return the HDUList of ``exposure`` in the Liger L2 layout, stamped with ``filename`` and the time."""
    if exposure.is_cube:
        raise ValueError("a Liger/IRIS product is a 2-D frame")
    meta = exposure.meta
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat()
    primary = primary_cards(meta, filename, now)
    arrays = {"DATA": np.ascontiguousarray(exposure.sci), "ERR": np.ascontiguousarray(exposure.err),
              "DQ": product_dq(exposure.dq)}
    hdus: list[Any] = [fits.PrimaryHDU(header=to_header(primary))]
    for name, array in arrays.items():
        hdus.append(fits.ImageHDU(array, header=to_header(meta.header("SCI" if name == "DATA" else name)),
                                  name=name, ver=1))
    for name, extension in exposure.extensions.items():
        kind = fits.BinTableHDU if extension.kind == "table" else fits.ImageHDU
        hdus.append(kind(data=extension.data, header=to_header(extension.cards), name=name, ver=1))
    hdul = fits.HDUList(hdus)
    tree_meta = meta_tree((card.keyword, card.value) for card in primary)
    if "subarray_map" in meta.tree:
        tree_meta["subarray_map"] = _plain(meta.tree["subarray_map"])
    tree_meta["image2"] = {"version": __version__, "provenance": [
        _plain(attrs.asdict(record, recurse=False)) for record in meta.provenance]}
    tree = {"_fits_hash": headers_hash(hdul), **{name.lower(): _stub(name, array) for name, array in arrays.items()},
            "meta": tree_meta}
    if SUBARRAY_MAP in exposure.extensions and exposure.extensions[SUBARRAY_MAP].data is not None:
        tree["subarr_map"] = _stub(SUBARRAY_MAP, exposure.extensions[SUBARRAY_MAP].data)
    hdul.append(tree_to_hdu(tree))
    return hdul
