"""Typed exposure metadata and the table that ties each field to its FITS keyword."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from image2.core.cards import Cards
from image2.core.frozen import frozen_mapping

FULL_FRAME = {"MIRI": (1024, 1032)}
"""Full-frame detector shape ``(ny, nx)`` per instrument; 2048×2048 for the others."""


def full_frame_shape(instrument: str | None) -> tuple[int, int]:
    """Return the full-frame ``(ny, nx)`` of ``instrument``'s detector."""
    return FULL_FRAME.get((instrument or "").upper(), (2048, 2048))


@attrs.frozen
class Instrument:
    """Which instrument and optical element took the exposure."""

    name: str | None = None
    detector: str | None = None
    filter: str | None = None
    pupil: str | None = None
    module: str | None = None
    channel: str | None = None


@attrs.frozen
class ExposureInfo:
    """Exposure type, timing and readout."""

    type: str | None = None
    tsovisit: bool | None = None
    nints: int | None = None
    effexptm: float | None = None
    tmeasure: float | None = None
    duration: float | None = None
    start: float | None = None
    mid: float | None = None
    end: float | None = None
    readpatt: str | None = None
    date_obs: str | None = None
    time_obs: str | None = None
    visitype: str | None = None


@attrs.frozen
class Subarray:
    """Placement of the read-out region on the detector (1-based start)."""

    name: str | None = None
    xstart: int | None = None
    ystart: int | None = None
    xsize: int | None = None
    ysize: int | None = None


@attrs.frozen
class Pointing:
    """Telescope pointing at the aperture reference point (SCI header keywords)."""

    ra_ref: float | None = None
    dec_ref: float | None = None
    roll_ref: float | None = None
    v2_ref: float | None = None
    v3_ref: float | None = None
    vparity: int | None = None
    v3i_yang: float | None = None
    va_scale: float | None = None


@attrs.frozen
class Photometry:
    """Flux-conversion and nominal pixel-area keywords written by photom and resample."""

    photmjsr: float | None = None
    photuja2: float | None = None
    pixar_sr: float | None = None
    pixar_a2: float | None = None


@attrs.frozen
class Units:
    """BUNIT of the SCI and ERR arrays."""

    data: str | None = None
    err: str | None = None


@attrs.frozen
class StepRecord:
    """What one step did: its status, the parameters and references it used, and its notes."""

    step: str
    status: str
    parameters: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)
    references: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen
class Meta:
    """All metadata of an exposure: typed groups, statuses, references and carried cards.

    ``cards`` holds, per HDU name (PRIMARY, SCI, ERR, ...), the input's header cards that
    no typed field models; they are written back untouched. ``tree`` holds metadata that
    lives only in the embedded ASDF tree (``wcsinfo``, ``subarray_map``, ``resample``).
    """

    instrument: Instrument = attrs.field(factory=Instrument)
    exposure: ExposureInfo = attrs.field(factory=ExposureInfo)
    subarray: Subarray = attrs.field(factory=Subarray)
    pointing: Pointing = attrs.field(factory=Pointing)
    photometry: Photometry = attrs.field(factory=Photometry)
    units: Units = attrs.field(factory=Units)
    status: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    refs: Mapping[str, str] = attrs.field(factory=dict, converter=frozen_mapping)
    provenance: tuple[StepRecord, ...] = attrs.field(default=(), converter=tuple)
    cards: Mapping[str, Cards] = attrs.field(factory=dict, converter=frozen_mapping)
    tree: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)
    layout: str = "jwst"
    """The file layout the exposure came in, decided once by io from the file: ``jwst``, or ``liger``
    (the Liger/IRIS L1/L2 format); it decides the instrument family (``image2.core.steps.family_of``)."""

    def header(self, hdu: str) -> Cards:
        """Return the carried cards of ``hdu`` (empty when there are none)."""
        return self.cards.get(hdu.upper(), Cards())

    def with_cards(self, hdu: str, values: Mapping[str, Any], drop: tuple[str, ...] = ()) -> Meta:
        """Return a copy whose ``hdu`` cards have ``values`` set and ``drop`` removed."""
        cards = dict(self.cards)
        cards[hdu.upper()] = self.header(hdu).without(drop).updated(values)
        return attrs.evolve(self, cards=cards)

    def with_status(self, keyword: str, value: str) -> Meta:
        """Return a copy with step-status keyword ``keyword`` (e.g. S_FLAT) set."""
        return attrs.evolve(self, status={**self.status, keyword: value})

    def with_refs(self, refs: Mapping[str, str]) -> Meta:
        """Return a copy with the R_* reference records in ``refs`` set."""
        return attrs.evolve(self, refs={**self.refs, **refs})

    def with_tree(self, **items: Any) -> Meta:
        """Return a copy with ASDF-only metadata ``items`` set."""
        return attrs.evolve(self, tree={**self.tree, **items})

    def evolve(self, **groups: Any) -> Meta:
        """Return a copy with whole fields replaced, e.g. ``photometry=Photometry(...)``."""
        return attrs.evolve(self, **groups)


@attrs.frozen
class Keyword:
    """Where a typed field lives in FITS: HDU, keyword, and the Python type of its value."""

    hdu: str
    keyword: str
    group: str
    field: str
    kind: type


def _keywords(hdu: str, group: str, kind: type, pairs: dict[str, str]) -> list[Keyword]:
    return [Keyword(hdu, key, group, field, kind) for key, field in pairs.items()]


KEYWORDS: tuple[Keyword, ...] = tuple(
    _keywords("PRIMARY", "instrument", str, {
        "INSTRUME": "name", "DETECTOR": "detector", "FILTER": "filter", "PUPIL": "pupil",
        "MODULE": "module", "CHANNEL": "channel"})
    + _keywords("PRIMARY", "exposure", str, {
        "EXP_TYPE": "type", "READPATT": "readpatt", "DATE-OBS": "date_obs",
        "TIME-OBS": "time_obs", "VISITYPE": "visitype"})
    + _keywords("PRIMARY", "exposure", bool, {"TSOVISIT": "tsovisit"})
    + _keywords("PRIMARY", "exposure", int, {"NINTS": "nints"})
    + _keywords("PRIMARY", "exposure", float, {
        "EFFEXPTM": "effexptm", "TMEASURE": "tmeasure", "DURATION": "duration",
        "EXPSTART": "start", "EXPMID": "mid", "EXPEND": "end"})
    + _keywords("PRIMARY", "subarray", str, {"SUBARRAY": "name"})
    + _keywords("PRIMARY", "subarray", int, {
        "SUBSTRT1": "xstart", "SUBSTRT2": "ystart", "SUBSIZE1": "xsize", "SUBSIZE2": "ysize"})
    + _keywords("SCI", "pointing", float, {
        "RA_REF": "ra_ref", "DEC_REF": "dec_ref", "ROLL_REF": "roll_ref", "V2_REF": "v2_ref",
        "V3_REF": "v3_ref", "V3I_YANG": "v3i_yang", "VA_SCALE": "va_scale"})
    + _keywords("SCI", "pointing", int, {"VPARITY": "vparity"})
    + _keywords("SCI", "photometry", float, {
        "PHOTMJSR": "photmjsr", "PHOTUJA2": "photuja2", "PIXAR_SR": "pixar_sr",
        "PIXAR_A2": "pixar_a2"})
    + _keywords("SCI", "units", str, {"BUNIT": "data"})
    + _keywords("ERR", "units", str, {"BUNIT": "err"})
)
"""Every keyword modelled by a typed field. Readers fill the fields, writers write them back."""


def is_status_keyword(keyword: str) -> bool:
    """True for a PRIMARY step-status keyword (S_*) as opposed to e.g. S_REGION."""
    return keyword.startswith("S_") and keyword != "S_REGION"


def is_reference_keyword(keyword: str) -> bool:
    """True for a PRIMARY reference-record keyword (R_*)."""
    return keyword.startswith("R_")
