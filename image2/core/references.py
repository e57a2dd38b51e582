"""Reference-file records (reference_files.md), as plain data with no open file handles.

Readers in ``image2.io`` build these; steps in ``image2.core`` consume them. ``source`` is
what the R_* keyword records: ``crds://<basename>`` for a file chosen from a store, the
absolute path for a user override.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import numpy as np

from image2.core.frozen import frozen_mapping, readonly, readonly_or_none, rebuilt_when_unpickled
from image2.core.meta import Subarray

NOT_APPLICABLE = "N/A"


@rebuilt_when_unpickled
@attrs.frozen
class FlatReference:
    """An imaging flat: SCI to divide by, its 1-σ ERR, and DQ already translated via DQ_DEF.

    ``subarray`` is the placement read from the header (fields None when absent).
    """

    keyword: ClassVar[str] = "R_FLAT"
    reftype: ClassVar[str] = "flat"

    source: str
    sci: np.ndarray = attrs.field(converter=readonly)
    err: np.ndarray = attrs.field(converter=readonly)
    dq: np.ndarray = attrs.field(converter=readonly)
    subarray: Subarray = attrs.field(factory=Subarray)
    instrument: str | None = None


@rebuilt_when_unpickled
@attrs.frozen
class PhotomReference:
    """An imaging PHOTOM table and its optional time-dependence tables.

    ``rows`` is the PHOTOM table as a structured array with lower-case column names
    (``filter``, ``pupil``, ``subarray``, ``photmjsr`` float32, ``uncertainty``);
    ``timecoeff`` maps ``linear``/``exponential``/``powerlaw`` to tables with the same rows.
    """

    keyword: ClassVar[str] = "R_PHOTOM"
    reftype: ClassVar[str] = "photom"

    source: str
    rows: np.ndarray = attrs.field(converter=readonly)
    timecoeff: Mapping[str, np.ndarray] = attrs.field(
        factory=dict, converter=lambda m: frozen_mapping({k: readonly(v) for k, v in (m or {}).items()}))
    pixar_sr: float | None = None
    pixar_a2: float | None = None
    instrument: str | None = None


@rebuilt_when_unpickled
@attrs.frozen
class AreaReference:
    """A pixel-area map relative to the nominal area ``pixar_sr``/``pixar_a2``."""

    keyword: ClassVar[str] = "R_AREA"
    reftype: ClassVar[str] = "area"

    source: str
    sci: np.ndarray = attrs.field(converter=readonly)
    pixar_sr: float | None = None
    pixar_a2: float | None = None
    subarray: Subarray = attrs.field(factory=Subarray)


@attrs.frozen
class DistortionReference:
    """An astropy model from full-frame 0-based detector pixels to (V2, V3) in arcsec."""

    keyword: ClassVar[str] = "R_DISTOR"
    reftype: ClassVar[str] = "distortion"

    source: str
    model: Any
    input_units: str = "pixel"
    output_units: str = "arcsec"


@attrs.frozen
class FilterOffset:
    """Detector offsets (pixels) for one filter/pupil; pupil is None for MIRI entries."""

    filter: str
    pupil: str | None
    column_offset: float
    row_offset: float


@attrs.frozen
class FilterOffsetReference:
    """Per-filter detector offsets added before the distortion."""

    keyword: ClassVar[str] = "R_FILOFF"
    reftype: ClassVar[str] = "filteroffset"

    source: str
    filters: tuple[FilterOffset, ...] = attrs.field(converter=tuple)


@rebuilt_when_unpickled
@attrs.frozen
class DarkReference:
    """A rate-level (stage-2) dark, Liger/IRIS: SCI in the science's units, ERR, translated DQ."""

    keyword: ClassVar[str] = "R_DARK"
    reftype: ClassVar[str] = "dark"

    source: str
    sci: np.ndarray = attrs.field(converter=readonly)
    err: np.ndarray | None = attrs.field(default=None, converter=readonly_or_none)
    dq: np.ndarray | None = attrs.field(default=None, converter=readonly_or_none)
    subarray: Subarray = attrs.field(factory=Subarray)


REFERENCE_CLASSES = (FlatReference, PhotomReference, AreaReference, DistortionReference,
                     FilterOffsetReference, DarkReference)
REFTYPES: tuple[str, ...] = tuple(cls.reftype for cls in REFERENCE_CLASSES)
"""The reference types stage 2 uses, by their lower-case CRDS names."""

REFERENCE_KEYWORDS: Mapping[str, str] = frozen_mapping({cls.reftype: cls.keyword for cls in REFERENCE_CLASSES})


@attrs.frozen
class References:
    """The references chosen for one exposure (None: none applies)."""

    flat: FlatReference | None = None
    photom: PhotomReference | None = None
    area: AreaReference | None = None
    distortion: DistortionReference | None = None
    filteroffset: FilterOffsetReference | None = None
    dark: DarkReference | None = None
