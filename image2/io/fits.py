"""Read and write exposures in the JWST FITS layout (formats.md §2–§4, §6)."""

from __future__ import annotations

import abc
import datetime as dt
import logging
import warnings
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import attrs
import numpy as np
from astropy.io import fits

from image2._version import __version__
from image2.core.cards import COMMENTARY, Card, Cards
from image2.core.exposure import Exposure, Extension
from image2.core.meta import KEYWORDS, Meta, StepRecord, is_reference_keyword, is_status_keyword
from image2.core.pointing import describe, pointing_mismatch
from image2.errors import InvalidInputError
from image2.io.asdf_tree import EXTNAME as ASDF_EXTNAME
from image2.io.asdf_tree import hdu_to_meta, tree_to_hdu
from image2.io.atomic import atomic_write
from image2.io.bounds import check_fits

if TYPE_CHECKING:
    from image2.io.liger import LigerExposureFile

log = logging.getLogger(__name__)

ARRAY_EXTENSIONS = ("SCI", "ERR", "DQ", "AREA", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")
"""Image extensions the exposure record models, in the order jwst writes them."""

TREE_KEYS = ("wcsinfo", "subarray_map", "resample")
"""ASDF-only metadata carried in ``Meta.tree``."""

REQUIRED_KEYWORDS = {"INSTRUME": ("instrument", "name"), "EXP_TYPE": ("exposure", "type")}

_STRUCTURAL = {"SIMPLE", "EXTEND", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "BZERO",
               "BSCALE", "EXTNAME", "EXTVER", "CHECKSUM", "DATASUM", "TFIELDS", "THEAP"}
_COLUMN_PREFIXES = ("NAXIS", "TTYPE", "TFORM", "TDIM", "TBCOL", "TZERO", "TSCAL", "TNULL")


def _is_structural(keyword: str) -> bool:
    return keyword in _STRUCTURAL or (keyword.startswith(_COLUMN_PREFIXES) and keyword[-1].isdigit())


def header_cards(header: fits.Header) -> Cards:
    """Return ``header`` as Cards without the keywords FITS itself manages."""
    return Cards(tuple(
        Card(card.keyword, None if card.value is fits.card.UNDEFINED else card.value, card.comment)
        for card in header.cards if not _is_structural(card.keyword)
    ))


def fits_text(value: Any) -> Any:
    """Return ``value`` as a FITS card may hold it: a string with characters outside printable ASCII
    (accents, newlines: from a file name, say) written as Python escapes (``\\xe9``, ``\\n``)."""
    if not isinstance(value, str) or all(" " <= c <= "~" for c in value):
        return value
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in value)


def to_header(cards: Cards) -> fits.Header:
    """Return ``cards`` as an astropy header, texts made FITS-safe (:func:`fits_text`)."""
    header = fits.Header()
    for card in cards:
        value, comment = fits_text(card.value), fits_text(card.comment)
        if card.keyword in COMMENTARY:
            header.add_comment(value) if card.keyword == "COMMENT" else (
                header.add_history(value) if card.keyword == "HISTORY" else header.add_blank(value))
        else:
            header[card.keyword] = (value, comment)
    return header


def _typed(path: Path, keyword: str, kind: type, value: Any) -> Any:
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().upper() in ("T", "TRUE", "1")
            return bool(value)
        if kind is str:
            return str(value).strip()
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidInputError(path, f"keyword {keyword} = {value!r} is not a valid {kind.__name__}") from None


def meta_from_headers(path: Path, headers: Mapping[str, fits.Header], tree: Mapping[str, Any]) -> Meta:
    """Build typed metadata from FITS headers (by HDU name) and the embedded ASDF ``meta``."""
    try:
        cards = {name: header_cards(header) for name, header in headers.items()}
    except fits.VerifyError as error:  # a card astropy cannot parse, e.g. RA_REF = NAN
        raise InvalidInputError(path, f"{str(error).split(',')[0]} in the header") from None
    groups: dict[str, dict[str, Any]] = {}
    for spec in KEYWORDS:
        hdu_cards = cards.get(spec.hdu)
        if hdu_cards is None or spec.keyword not in hdu_cards or hdu_cards.get(spec.keyword) is None:
            continue
        value = _typed(path, spec.keyword, spec.kind, hdu_cards.get(spec.keyword))
        groups.setdefault(spec.group, {})[spec.field] = value
        cards[spec.hdu] = hdu_cards.without([spec.keyword])
    primary = cards.get("PRIMARY", Cards())
    status = {c.keyword: str(c.value) for c in primary if is_status_keyword(c.keyword)}
    refs = {c.keyword: str(c.value) for c in primary if is_reference_keyword(c.keyword)}
    cards["PRIMARY"] = primary.without_matching(lambda k: is_status_keyword(k) or is_reference_keyword(k))
    defaults = Meta()
    typed = {name: attrs.evolve(getattr(defaults, name), **values) for name, values in groups.items()}
    return Meta(
        **typed, status=status, refs=refs, provenance=_provenance(path, tree), cards=cards,
        tree={key: _tree_value(path, key, tree[key]) for key in TREE_KEYS if key in tree},
    )


def _tree_value(path: Path, key: str, value: Any) -> Any:
    """Return the ASDF ``meta.<key>`` value, which must be of its kind (TREE_KEYS) or null."""
    kind, name = (list, "a list") if key == "subarray_map" else (Mapping, "a mapping")
    if value is not None and not isinstance(value, kind):
        raise InvalidInputError(path, f"embedded ASDF meta.{key} is a {type(value).__name__}, not {name}")
    return value


def _provenance(path: Path, tree: Mapping[str, Any]) -> tuple[StepRecord, ...]:
    """Return the step records image2 left in the ASDF tree; a malformed one is an InvalidInputError."""
    own = tree.get("image2", {}) if isinstance(tree.get("image2"), Mapping) else {}
    records = own.get("provenance", ())
    if not isinstance(records, (list, tuple)):
        raise InvalidInputError(path, "embedded ASDF meta.image2.provenance is not a list")
    fields = {field.name for field in attrs.fields(StepRecord)}
    parsed = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping) or not set(record) <= fields or "step" not in record:
            raise InvalidInputError(path, f"embedded ASDF meta.image2.provenance entry {number} is not a step "
                                          f"record ({str(record)[:60]})")
        try:
            parsed.append(StepRecord(**record))
        except (TypeError, ValueError) as error:
            raise InvalidInputError(path, f"embedded ASDF meta.image2.provenance entry {number}: {error}") from None
    return tuple(parsed)


def _open_fits(path: Path) -> fits.HDUList:
    """Open ``path`` lazily (arrays are read on demand) once its headers show it whole and within limits."""
    check_fits(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
            len(hdul)  # reads every header now, so truncation shows here
        except (OSError, ValueError, TypeError) as error:
            raise InvalidInputError(path, f"not a readable FITS file ({error})") from None
    problems = [str(w.message) for w in caught
                if "truncated" in str(w.message) or "Header size is not multiple" in str(w.message)]
    if problems:
        hdul.close()
        raise InvalidInputError(path, "truncated or corrupt FITS file: " + problems[0].splitlines()[0])
    return hdul


def hdu_index(hdul: fits.HDUList) -> dict[str, int]:
    """Return the position of each extension by upper-case EXTNAME (the first of a name; PRIMARY for the first HDU)."""
    index: dict[str, int] = {}
    for i, hdu in enumerate(hdul):
        index.setdefault("PRIMARY" if i == 0 else hdu.name.upper(), i)
    return index


def extra_extensions(hdul: fits.HDUList, index: Mapping[str, int], known: Collection[str]) -> dict[str, Extension]:
    """Return the extensions not in ``known`` (images and tables, read now), which a product carries along."""
    extras = {}
    for name, i in index.items():
        if name in known:
            continue
        hdu = hdul[i]
        if isinstance(hdu, fits.BinTableHDU):
            data = None if hdu.data is None else np.array(hdu.data).view(np.ndarray)
            extras[name] = Extension(data, header_cards(hdu.header), "table")
        else:
            extras[name] = Extension(None if hdu.data is None else np.array(hdu.data), header_cards(hdu.header))
    return extras


class OpenFits(abc.ABC):
    """A FITS file held open for reading on demand, checked (``_validate``: the extensions' positions by
    name) and described (``_load``) at once; closed by :meth:`close` or at the end of a ``with`` block."""

    def __init__(self, path: Path | str, headers_only: bool = False) -> None:
        self.path = Path(path)
        self._hdul = _open_fits(self.path)
        try:
            self._index = self._validate()
            self._load(headers_only)
        except BaseException:
            self._hdul.close()
            raise

    @abc.abstractmethod
    def _validate(self) -> dict[str, int]:
        """Check the layout; return the position of each extension by name."""

    @abc.abstractmethod
    def _load(self, headers_only: bool) -> None:
        """Read the metadata (``meta``, ``wcs``, ``extensions``) of the validated file."""

    def _tree(self, headers_only: bool) -> dict[str, Any]:
        """The embedded ASDF tree, or nothing with ``headers_only`` or without an ASDF extension."""
        with_tree = ASDF_EXTNAME in self._index and not headers_only
        return hdu_to_meta(self._hdul[ASDF_EXTNAME], self.path) if with_tree else {}

    def close(self) -> None:
        """Close the file."""
        self._hdul.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ExposureFile(OpenFits):
    """An exposure file opened for reading; arrays are read on demand, integration ranges at a time.

    Use as a context manager. ``meta``, ``wcs`` and ``shape`` are available at once;
    :meth:`read` returns an :class:`Exposure` holding all or some integrations. With
    ``headers_only`` the embedded ASDF tree is not read (no WCS, provenance or tree metadata):
    enough to describe a file, and without loading gwcs.
    """

    def _load(self, headers_only: bool) -> None:
        tree = self._tree(headers_only)
        headers = {name: self._hdul[i].header for name, i in self._index.items() if name != ASDF_EXTNAME}
        self.meta = meta_from_headers(self.path, headers, tree)
        self.wcs = tree.get("wcs")
        self._check_required()
        self._check_pointing()
        self.extensions = extra_extensions(self._hdul, self._index, {"PRIMARY", ASDF_EXTNAME, *ARRAY_EXTENSIONS})

    def _validate(self) -> dict[str, int]:
        index = hdu_index(self._hdul)
        if "SCI" not in index:
            raise InvalidInputError(self.path, "no SCI extension")
        for name in ARRAY_EXTENSIONS:
            if name in index and not isinstance(self._hdul[index[name]], (fits.ImageHDU, fits.CompImageHDU)):
                raise InvalidInputError(self.path, f"{name} is a {type(self._hdul[index[name]]).__name__}, not an image")
        shape = self._hdul[index["SCI"]].shape
        if len(shape) not in (2, 3):
            raise InvalidInputError(self.path, f"SCI is {len(shape)}-D; a rate file is 2-D and a rateints file 3-D")
        if 0 in shape:
            raise InvalidInputError(self.path, f"SCI has an empty axis (shape {shape}): there is nothing to calibrate")
        for name in ("ERR", "DQ", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
            if name in index and self._hdul[index[name]].shape != shape:
                raise InvalidInputError(self.path, f"{name} shape {self._hdul[index[name]].shape} differs from SCI {shape}")
        return index

    def _check_required(self) -> None:
        for keyword, (group, field) in REQUIRED_KEYWORDS.items():
            if getattr(getattr(self.meta, group), field) in (None, ""):
                raise InvalidInputError(self.path, f"required keyword {keyword} is missing from the primary header")

    def _check_pointing(self) -> None:
        """Warn when RA_REF/DEC_REF lie far from the header WCS: one of them is wrong."""
        mismatch = pointing_mismatch(self.meta, self.shape[-2:])
        if mismatch is not None:
            log.warning("%s: %s", self.path, describe(mismatch), extra={"file": str(self.path)})

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of SCI: ``(ny, nx)`` or ``(nints, ny, nx)``."""
        return self._hdul[self._index["SCI"]].shape

    @property
    def is_cube(self) -> bool:
        """True for a 3-D (rateints-like) file."""
        return len(self.shape) == 3

    def _array(self, name: str, cut: slice, dtype: type) -> np.ndarray | None:
        if name not in self._index:
            return None
        hdu = self._hdul[self._index[name]]
        if hdu.header.get("NAXIS", 0) == 0:
            return None
        try:
            data = hdu.section[cut] if name != "AREA" else hdu.section[...]
            return np.asarray(data, dtype=dtype)
        except (OSError, ValueError, TypeError) as error:
            raise InvalidInputError(self.path, f"cannot read {name} ({error})") from None

    def read(self, start: int | None = None, stop: int | None = None, *, optional: bool = True) -> Exposure:
        """Return the exposure, or integrations ``[start, stop)`` of a 3-D one; without ``optional`` only
        SCI, ERR and DQ (no VAR_* or AREA), all that a background member is combined from."""
        if not self.is_cube and (start is not None or stop is not None):
            raise ValueError("integration ranges apply to 3-D exposures only")
        cut = slice(start, stop) if self.is_cube else slice(None)
        sci = self._array("SCI", cut, np.float32)
        err = self._array("ERR", cut, np.float32)
        dq = self._array("DQ", cut, np.uint32)
        return Exposure(
            sci=sci,
            err=np.zeros_like(sci) if err is None else err,
            dq=np.zeros(sci.shape, np.uint32) if dq is None else dq,
            var_poisson=self._array("VAR_POISSON", cut, np.float32) if optional else None,
            var_rnoise=self._array("VAR_RNOISE", cut, np.float32) if optional else None,
            var_flat=self._array("VAR_FLAT", cut, np.float32) if optional else None,
            area=self._array("AREA", cut, np.float32) if optional else None,
            meta=self.meta,
            wcs=self.wcs,
            extensions=self.extensions,
        )



def open_exposure(path: Path | str, headers_only: bool = False) -> ExposureFile | LigerExposureFile:
    """Open an exposure file for reading on demand (see :class:`ExposureFile`); its layout, decided
    once from the file, chooses the reader (JWST, or Liger/IRIS: ``image2.io.liger``)."""
    from image2.io.liger import LigerExposureFile, is_liger_file

    return LigerExposureFile(path, headers_only) if is_liger_file(path) else ExposureFile(path, headers_only)


def read_exposure(path: Path | str, *, optional: bool = True) -> Exposure:
    """Read a whole ``_rate``/``_rateints``/``_cal``/``_calints``/``_bsub`` file into an Exposure; without
    ``optional`` only its SCI, ERR and DQ (see :meth:`ExposureFile.read`)."""
    with open_exposure(path) as handle:
        return handle.read(optional=optional)


def merged_cards(meta: Meta, hdu: str, extra: Mapping[str, Any] | None = None) -> Cards:
    """Return the cards of ``hdu`` to write: typed fields first, then carried cards."""
    typed = [(spec.keyword, getattr(getattr(meta, spec.group), spec.field))
             for spec in KEYWORDS if spec.hdu == hdu]
    cards = Cards().updated(typed)
    carried = meta.header(hdu)
    cards = Cards(cards.items + tuple(c for c in carried if c.keyword not in cards or c.keyword in COMMENTARY))
    if hdu == "PRIMARY":
        cards = cards.updated(dict(meta.status)).updated(dict(meta.refs))
    return cards.updated(extra or {})


def tree_of(exposure: Exposure) -> dict[str, Any]:
    """Return the ``meta`` of the embedded ASDF tree for ``exposure``."""
    meta: dict[str, Any] = dict(exposure.meta.tree)
    if exposure.wcs is not None:
        meta["wcs"] = exposure.wcs
    meta["image2"] = {
        "version": __version__,
        "provenance": [attrs.asdict(record, recurse=False, value_serializer=_plain) for record in exposure.meta.provenance],
    }
    return meta


def _plain(_inst: Any, _field: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(None, None, v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(None, None, v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def exposure_hdus(exposure: Exposure, filename: str) -> fits.HDUList:
    """Return the HDUList of ``exposure`` in its layout (JWST, or Liger/IRIS: ``meta.layout``), stamped with
    ``filename`` and the time."""
    if exposure.meta.layout == "liger":
        from image2.io.liger import liger_hdus

        return liger_hdus(exposure, filename)
    meta = exposure.meta
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    primary = fits.PrimaryHDU(header=to_header(merged_cards(meta, "PRIMARY", {
        "DATE": now, "FILENAME": filename, "CAL_VER": __version__, "CAL_VCS": f"image2-{__version__}",
    })))
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    arrays = {"SCI": exposure.sci, "ERR": exposure.err, "DQ": exposure.dq, "AREA": exposure.area,
              "VAR_POISSON": exposure.var_poisson, "VAR_RNOISE": exposure.var_rnoise,
              "VAR_FLAT": exposure.var_flat}
    for name in ARRAY_EXTENSIONS:
        if arrays[name] is not None:
            header = to_header(merged_cards(meta, name))
            hdus.append(fits.ImageHDU(data=np.ascontiguousarray(arrays[name]), header=header, name=name, ver=1))
    for name, extension in exposure.extensions.items():
        header = to_header(extension.cards)
        if extension.kind == "table":
            hdus.append(fits.BinTableHDU(data=extension.data, header=header, name=name, ver=1))
        else:
            hdus.append(fits.ImageHDU(data=extension.data, header=header, name=name, ver=1))
    hdus.append(tree_to_hdu({"meta": tree_of(exposure)}))
    return fits.HDUList([primary, *hdus])


def write_exposure(exposure: Exposure, path: Path | str, overwrite: bool = False) -> Path:
    """Write ``exposure`` to ``path`` atomically; an existing file is kept unless ``overwrite``."""
    path = Path(path)
    hdul = exposure_hdus(exposure, path.name)
    with atomic_write(path, overwrite=overwrite) as handle:
        hdul.writeto(handle)
    return path
