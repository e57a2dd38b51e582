"""photom (steps.md §6): convert DN/s to MJy/sr with the PHOTOM row of the exposure, attach the pixel area."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from image2.core.cutout import area_for
from image2.core.exposure import Exposure
from image2.core.meta import Meta, Photometry, Units
from image2.core.nan_sync import synced_in_place
from image2.core.provenance import Outcome, StepSkipped, step
from image2.core.references import AreaReference, PhotomReference
from image2.errors import ReferenceFileError, StepError

MJSR_TO_UJA2 = 23.50443053909789
"""MJy/sr → µJy/arcsec² (a Python float, so a float32 PHOTMJSR gives a float32 PHOTUJA2, as in jwst)."""

TIMECOEFF_COLUMNS = {
    "linear": ("t0", "lossperyear"),
    "exponential": ("t0", "amplitude", "tau", "const"),
    "powerlaw": ("t0", "year1value", "tsoft", "alpha"),
}


def _text(column: np.ndarray) -> list[str]:
    """Return a table string column as upper-case str values with trailing blanks removed."""
    return [(v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)).rstrip().upper()
            for v in column.tolist()]


def _rows_matching(photom: PhotomReference, wanted: Mapping[str, str | None]) -> list[int]:
    """Return the indices of PHOTOM rows whose columns equal every value of ``wanted``."""
    names = photom.rows.dtype.names or ()
    hits = np.ones(len(photom.rows), dtype=bool)
    for column, value in wanted.items():
        if column not in names:
            raise ReferenceFileError(photom.source, f"PHOTOM table has no '{column}' column")
        target = None if value is None else value.strip().upper()
        hits &= np.array([v == target for v in _text(photom.rows[column])], dtype=bool)
    return [int(i) for i in np.flatnonzero(hits)]


def photom_row(photom: PhotomReference, meta: Meta) -> int:
    """Return the PHOTOM row index for the exposure (§6.3).

    Raises StepSkipped when no row matches (or the mode is not imaging), StepError when
    several do or the instrument is unknown.
    """
    instrument = (meta.instrument.name or "").upper()
    detector = (meta.instrument.detector or "").upper()
    inst = meta.instrument
    names = photom.rows.dtype.names or ()
    if instrument == "FGS":
        if len(photom.rows) == 0:
            raise StepSkipped(f"PHOTOM table of {photom.source} is empty")
        return 0
    if instrument == "NIRCAM":
        wanted = {"filter": inst.filter, "pupil": inst.pupil}
        if "subarray" in names:
            wanted["subarray"] = meta.subarray.name
        candidates = [wanted]
    elif instrument == "NIRISS":
        candidates = [{"filter": inst.filter, "pupil": inst.pupil}]
    elif instrument == "MIRI":
        if detector != "MIRIMAGE":
            raise StepSkipped(f"MIRI detector {detector or '(none)'} is not the imager; photom handles MIRIMAGE only")
        candidates = [{"subarray": meta.subarray.name, "filter": inst.filter},
                      {"subarray": "GENERIC", "filter": inst.filter}]
    else:
        raise StepError("photom", f"instrument {instrument or '(none)'} has no PHOTOM row-selection rule")
    for wanted in candidates:
        rows = _rows_matching(photom, wanted)
        if len(rows) > 1:
            raise StepError("photom", f"{len(rows)} rows of {photom.source} match {_describe(wanted)} "
                                      f"(rows {rows}); expected one")
        if rows:
            return rows[0]
    raise StepSkipped(f"no row of {photom.source} matches {' or '.join(_describe(w) for w in candidates)}; "
                      f"nothing applied (jwst would mark photom COMPLETE)")


def _describe(wanted: Mapping[str, str | None]) -> str:
    """Return the match criteria as ``column='value'`` pairs for messages."""
    return ", ".join(f"{column}={value!r}" for column, value in wanted.items())


def time_corrections(photom: PhotomReference, mid_time: float) -> np.ndarray:
    """Return the float64 throughput correction of every PHOTOM row at MJD ``mid_time`` (§6.4).

    Bit for bit as jwst under numpy 2: each expression is evaluated with the float32 table
    columns, the Python-float ``mid_time`` being demoted to float32 inside ``t - t0``; the
    float32 results multiply into a float64 product that starts at 1.0. Evaluated on whole
    columns as jwst does: numpy's float32 scalar ``**`` can round differently from its array loop.
    """
    t = float(mid_time)  # a Python float stays "weak": it must not promote float32 columns
    correction = np.full(len(photom.rows), 1.0)
    for kind, table in photom.timecoeff.items():
        if kind not in TIMECOEFF_COLUMNS:
            raise ReferenceFileError(photom.source, f"unknown time-dependence table TIMECOEFF_{kind.upper()}")
        if len(table) != len(photom.rows):
            raise ReferenceFileError(photom.source, f"TIMECOEFF_{kind.upper()} has {len(table)} rows, "
                                                    f"PHOTOM has {len(photom.rows)}")
        missing = [c for c in TIMECOEFF_COLUMNS[kind] if c not in (table.dtype.names or ())]
        if missing:
            raise ReferenceFileError(photom.source, f"TIMECOEFF_{kind.upper()} lacks columns {missing}")
    tables = photom.timecoeff
    if "linear" in tables:
        p = tables["linear"]
        correction *= 1.0 - p["lossperyear"] * (t - p["t0"]) / 365.0
    if "exponential" in tables:
        p = tables["exponential"]
        correction *= p["amplitude"] * np.exp(-(t - p["t0"]) / p["tau"]) + p["const"]
    if "powerlaw" in tables:
        p = tables["powerlaw"]
        norm = ((365.0 + p["tsoft"]) ** p["alpha"]) / p["year1value"]
        correction *= ((t - p["t0"] + p["tsoft"]) ** p["alpha"]) / norm
    return correction


def conversion_factor(photom: PhotomReference, row: int, mid_time: float | None, *,
                      apply_time_correction: bool = True) -> np.floating:
    """Return PHOTMJSR for ``row``: float32 from the table, float64 once divided by a time correction."""
    if "photmjsr" not in (photom.rows.dtype.names or ()):
        raise ReferenceFileError(photom.source, "PHOTOM table has no 'photmjsr' column")
    factor = np.float32(photom.rows["photmjsr"][row])
    if not (apply_time_correction and photom.timecoeff):
        return factor
    if mid_time is None:
        raise StepError("photom", f"{photom.source} has time-dependence tables but the exposure has no EXPMID")
    correction = time_corrections(photom, mid_time)[row]
    return factor / correction if correction != 1.0 else factor


def _scaled(array: np.ndarray, factor: np.floating, inverse: bool) -> np.ndarray:
    """Return float32 ``array * factor`` (``/`` when inverse), computed in ``factor``'s precision."""
    out = np.empty(array.shape, dtype=np.float32)
    operation = np.divide if inverse else np.multiply
    return operation(array, factor, out=out, casting="same_kind")


@step("photom")
def photom(exposure: Exposure, photom: PhotomReference | None, area: AreaReference | None, *,
           inverse: bool = False, apply_time_correction: bool = True) -> Exposure | Outcome:
    """Return ``exposure`` in MJy/sr (DN/s when ``inverse``) with PHOTMJSR/PHOTUJA2/PIXAR_* and AREA.

    SCI and ERR scale by C, the variances by C², each product rounded once to float32.
    Deliberate deviation from jwst: no matching PHOTOM row skips the step (jwst marks it
    COMPLETE having applied nothing).
    """
    if photom is None:
        raise StepSkipped("no PHOTOM reference")
    meta = exposure.meta
    if (meta.instrument.name or "").upper() == "NIRISS" and exposure.is_cube:
        raise StepSkipped("jwst does not calibrate 3-D NIRISS exposures with photom")
    row = photom_row(photom, meta)
    factor = conversion_factor(photom, row, meta.exposure.mid, apply_time_correction=apply_time_correction)
    notes = []
    if area is not None:
        area = area_for(area, meta, exposure.shape)
        area_array = area.sci.astype(np.float32, copy=False)
        pixar_sr, pixar_a2, origin = area.pixar_sr, area.pixar_a2, area.source
    else:
        area_array = exposure.area
        pixar_sr, pixar_a2, origin = photom.pixar_sr, photom.pixar_a2, photom.source
    for keyword, value in (("PIXAR_SR", pixar_sr), ("PIXAR_A2", pixar_a2)):
        if value is None:
            notes.append(f"{keyword} missing from {origin}; left unset")
    squared = factor * factor
    scaled = {"sci": _scaled(exposure.sci, factor, inverse), "err": _scaled(exposure.err, factor, inverse)}
    for name in ("var_poisson", "var_rnoise", "var_flat"):
        array = getattr(exposure, name)
        scaled[name] = None if array is None else _scaled(array, squared, inverse)
    dq = synced_in_place([scaled[name] for name in ("sci", "err", "var_poisson", "var_rnoise", "var_flat")],
                         exposure.dq)
    unit = "DN/s" if inverse else "MJy/sr"
    photometry = Photometry(photmjsr=float(factor), photuja2=float(factor * MJSR_TO_UJA2),
                            pixar_sr=None if pixar_sr is None else float(pixar_sr),
                            pixar_a2=None if pixar_a2 is None else float(pixar_a2))
    meta = meta.evolve(photometry=photometry, units=Units(data=unit, err=unit))
    return Outcome(exposure.evolve(**scaled, dq=dq, area=area_array, meta=meta), notes)
