"""Writers of realistic synthetic reference files in the CRDS/jwst layouts (reference_files.md).

Every file carries the common PRIMARY keywords (REFTYPE, DATAMODL, TELESCOP, INSTRUME, DETECTOR,
FILTER, PUPIL, EXP_TYPE/P_EXP_TY, SUBARRAY, SUBSTRT/SUBSIZE, USEAFTER, PEDIGREE, DESCRIP, AUTHOR)
and is readable by jwst's own datamodels. Extra ``**header`` keywords are set on PRIMARY (or in
``meta`` for ASDF files); a value of None removes a keyword the factory would otherwise write.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import asdf
import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.modeling import fitting, models

USEAFTER = "2022-01-01T00:00:00"
DATE = "2024-05-01T12:00:00.000"

DETECTOR_INSTRUMENT = (("NRC", "NIRCAM"), ("NIS", "NIRISS"), ("MIR", "MIRI"), ("GUIDER", "FGS"))

EXP_TYPE_PATTERNS = {
    "NIRCAM": ("NRC_IMAGE", "NRC_IMAGE|NRC_TSIMAGE|NRC_FLAT|NRC_LED|NRC_WFSC|NRC_TACQ|NRC_TACONFIRM|"),
    "NIRISS": ("NIS_IMAGE", "NIS_IMAGE|NIS_AMI|NIS_FOCUS|NIS_TACQ|NIS_TACONFIRM|"),
    "MIRI": ("MIR_IMAGE", "MIR_IMAGE|MIR_TACQ|MIR_TACONFIRM|MIR_FLATIMAGE|"),
    "FGS": ("FGS_IMAGE", "FGS_IMAGE|FGS_FOCUS|"),
}
"""Default EXP_TYPE and P_EXP_TY of each instrument's imaging references."""

NIRCAM_IMAGING_PUPILS = "CLEAR|F162M|F164N|F323N|F405N|F470N|GDHS0|GDHS60|MASKBAR|MASKIPR|MASKRND|PINHOLES|WLM8|WLP8|"
"""P_PUPIL of NIRCam imaging distortion files."""

PHOTOM_MODELS = {"NIRCAM": "NrcImgPhotomModel", "NIRISS": "NisImgPhotomModel",
                 "MIRI": "MirImgPhotomModel", "FGS": "FgsImgPhotomModel"}

PHOTOM_DESCRIPTIVE = {"NIRCAM": ("filter", "pupil"), "NIRISS": ("filter", "pupil"),
                      "MIRI": ("filter", "subarray"), "FGS": ()}
"""The descriptive (string) columns of each instrument's PHOTOM table."""

STRING_WIDTH = {"filter": 12, "pupil": 12, "subarray": 17}

TIMECOEFF_COLUMNS = {
    "linear": ("TIMECOEFF_LINEAR", ("t0", "lossperyear")),
    "exponential": ("TIMECOEFF_EXPONENTIAL", ("t0", "amplitude", "tau", "const")),
    "powerlaw": ("TIMECOEFF_POWERLAW", ("t0", "year1value", "tsoft", "alpha")),
}

DEFAULT_DQ_DEF = (
    (0, 1, "DO_NOT_USE", "Bad pixel. Do not use."),
    (1, 2, "NO_FLAT_FIELD", "Flat field cannot be measured"),
    (2, 4, "UNRELIABLE_FLAT", "Flat variance large"),
    (3, 8, "LOW_QE", "Low quantum efficiency"),
    (4, 16, "DEAD", "Dead pixel"),
    (5, 32, "HOT", "Hot pixel"),
)
"""A DQ_DEF like real flats carry: local bit positions that differ from the standard ones."""

DEFAULT_PHOTOM_ROWS = {
    "NIRCAM": [{"filter": "F150W", "pupil": "CLEAR", "photmjsr": 0.2538, "uncertainty": 0.0038},
               {"filter": "F200W", "pupil": "CLEAR", "photmjsr": 0.2167, "uncertainty": 0.0032},
               {"filter": "F162M", "pupil": "F150W2", "photmjsr": 1.6812, "uncertainty": 0.0252}],
    "NIRISS": [{"filter": "F150W", "pupil": "CLEARP", "photmjsr": 0.2437, "uncertainty": 0.0049},
               {"filter": "CLEAR", "pupil": "F200W", "photmjsr": 0.2103, "uncertainty": 0.0042}],
    "MIRI": [{"filter": "F770W", "subarray": "FULL", "photmjsr": 0.4311, "uncertainty": 0.0129},
             {"filter": "F770W", "subarray": "SUB256", "photmjsr": 0.4311, "uncertainty": 0.0129},
             {"filter": "F1500W", "subarray": "FULL", "photmjsr": 0.3927, "uncertainty": 0.0118}],
    "FGS": [{"photmjsr": 0.0372, "uncertainty": 0.0011}],
}


def instrument_of(detector: str) -> str:
    """Return the JWST instrument of ``detector`` (e.g. NRCB1 -> NIRCAM)."""
    for prefix, instrument in DETECTOR_INSTRUMENT:
        if detector.upper().startswith(prefix):
            return instrument
    raise ValueError(f"no JWST instrument has a detector called {detector!r}")


def full_frame(instrument: str) -> tuple[int, int]:
    """Return the full-frame ``(ny, nx)`` of ``instrument``."""
    return (1024, 1032) if instrument.upper() == "MIRI" else (2048, 2048)


def primary_header(reftype: str, datamodel: str, instrument: str, detector: str | None,
                   useafter: str, description: str, **header: Any) -> fits.Header:
    """Return a PRIMARY header with the common reference keywords, then ``header`` applied."""
    cards: dict[str, Any] = {
        "DATE": (DATE, "UTC date file created"),
        "ORIGIN": ("STSCI", "Organization responsible for creating file"),
        "FILENAME": ("", "Name of the file"),
        "FILETYPE": ("REFERENCE", "Type of data in the file"),
        "DATAMODL": (datamodel, "Type of data model"),
        "TELESCOP": ("JWST", "Telescope used to acquire the data"),
        "INSTRUME": (instrument, "Instrument used to acquire the data"),
        "DETECTOR": (detector, "Detector"),
        "REFTYPE": (reftype, "Type of reference file"),
        "USEAFTER": (useafter, "Use after date of the reference file"),
        "PEDIGREE": ("GROUND", "The pedigree of the reference file"),
        "DESCRIP": (description, "Description"),
        "AUTHOR": ("image2 test factory", "Author of the reference file"),
    }
    for key, value in header.items():
        cards[key.upper()] = value
    out = fits.Header()
    for key, value in cards.items():
        if value is None or (isinstance(value, tuple) and value[0] is None):
            continue
        out[key] = value
    return out


def _subarray_cards(shape: tuple[int, int], substrt: tuple[int, int], full: tuple[int, int]) -> dict[str, Any]:
    ny, nx = shape
    name = "FULL" if (ny, nx) == full and tuple(substrt) == (1, 1) else "GENERIC"
    return {
        "SUBARRAY": (name, "Subarray used"),
        "SUBSTRT1": (int(substrt[0]), "Starting pixel in axis 1 direction"),
        "SUBSTRT2": (int(substrt[1]), "Starting pixel in axis 2 direction"),
        "SUBSIZE1": (nx, "Number of pixels in axis 1 direction"),
        "SUBSIZE2": (ny, "Number of pixels in axis 2 direction"),
    }


def _imaging_cards(instrument: str, exp_type: str | None, p_exp_type: str | None) -> dict[str, Any]:
    default_type, default_pattern = EXP_TYPE_PATTERNS.get(instrument, (None, None))
    return {
        "EXP_TYPE": (exp_type if exp_type is not None else default_type, "Type of data in the exposure"),
        "P_EXP_TY": p_exp_type if p_exp_type is not None else default_pattern,
    }


def _positions(where: Iterable[tuple[int, int]] | np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Return a boolean mask from (y, x) positions or a boolean mask."""
    mask = np.zeros(shape, bool)
    if where is None:
        return mask
    array = np.asarray(where)
    if array.dtype == bool:
        return array.reshape(shape).copy()
    for y, x in (tuple(p) for p in where):
        mask[y, x] = True
    return mask


def dq_def_hdu(rows: Sequence[tuple[int, int, str, str]]) -> fits.BinTableHDU:
    """Return a DQ_DEF table with columns BIT int32, VALUE uint32, NAME char40, DESCRIPTION char80."""
    table = np.array([tuple(r) for r in rows],
                     dtype=[("BIT", ">i4"), ("VALUE", ">u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")])
    return fits.BinTableHDU(table, name="DQ_DEF")


def _raw_dq(shape: tuple[int, int], flagged: Mapping[str, Any] | None,
            dq_def: Sequence[tuple[int, int, str, str]] | None) -> np.ndarray:
    """Write each flag name's pixels with its DQ_DEF value (or the standard value without DQ_DEF)."""
    from image2.core.dq import flag_value

    dq = np.zeros(shape, np.uint32)
    local = {row[2]: row[1] for row in dq_def or ()}
    for name, where in (flagged or {}).items():
        value = local[name] if dq_def else flag_value(name)
        dq[_positions(where, shape)] |= np.uint32(value)
    return dq


def _resolve_dq_def(dq_def: bool | Sequence[tuple[int, int, str, str]]) -> tuple[tuple[int, int, str, str], ...] | None:
    if dq_def is True:
        return DEFAULT_DQ_DEF
    if dq_def is False:
        return None
    return tuple(tuple(row) for row in dq_def)  # type: ignore[misc]


def make_flat(
    path: Path | str,
    shape: tuple[int, int] = (2048, 2048),
    *,
    detector: str = "NRCB1",
    filter: str | None = "F150W",
    pupil: str | None = "CLEAR",
    instrument: str | None = None,
    substrt: tuple[int, int] = (1, 1),
    nan_pixels: Iterable[tuple[int, int]] | np.ndarray | None = None,
    zero_pixels: Iterable[tuple[int, int]] | np.ndarray | None = None,
    flagged: Mapping[str, Any] | None = None,
    dq_def: bool | Sequence[tuple[int, int, str, str]] = True,
    err: bool = True,
    exp_type: str | None = None,
    p_exp_type: str | None = None,
    useafter: str = USEAFTER,
    value: float | np.ndarray = 1.0,
    seed: int = 0,
    **header: Any,
) -> Path:
    """Write an imaging FLAT (FlatModel): SCI ~ ``value`` with pixel-to-pixel scatter, ERR, DQ, DQ_DEF.

    ``flagged`` maps standard flag names to (y, x) positions or a mask; with a DQ_DEF the raw DQ
    holds the DQ_DEF's local values (so reading must translate them), without one the standard
    values. ``nan_pixels``/``zero_pixels`` put NaN/0 into SCI. ``err=False`` omits ERR.
    ``value`` may be an array of ``shape`` (large-scale structure under the 2 % pixel scatter).
    """
    path = Path(path)
    instrument = (instrument or instrument_of(detector)).upper()
    rng = np.random.default_rng(seed)
    sci = rng.standard_normal(shape, dtype=np.float32)
    sci *= np.float32(0.02)
    sci += np.asarray(value, dtype=np.float32)
    sci[_positions(nan_pixels, shape)] = np.nan
    sci[_positions(zero_pixels, shape)] = 0.0
    definitions = _resolve_dq_def(dq_def)
    cards = {
        "FILTER": (filter, "Name of the filter element used"),
        "PUPIL": (pupil, "Name of the pupil element used"),
        **_imaging_cards(instrument, exp_type, p_exp_type),
        **_subarray_cards(shape, substrt, full_frame(instrument)),
        **{k.upper(): v for k, v in header.items()},
    }
    primary = primary_header("FLAT", "FlatModel", instrument, detector, useafter,
                             f"{instrument} {detector} {filter} {pupil} imaging flat", **cards)
    hdus: list[Any] = [fits.PrimaryHDU(header=primary), fits.ImageHDU(sci, name="SCI")]
    if err:
        hdus.append(fits.ImageHDU(np.full(shape, 0.005, np.float32), name="ERR"))
    hdus.append(fits.ImageHDU(_raw_dq(shape, flagged, definitions), name="DQ"))
    if definitions:
        hdus.append(dq_def_hdu(definitions))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def _photom_columns(instrument: str, rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    descriptive = PHOTOM_DESCRIPTIVE[instrument]
    if instrument == "NIRCAM" and any("subarray" in row for row in rows):
        descriptive = (*descriptive, "subarray")
    return descriptive


def _table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    dtype = [(name, f"S{STRING_WIDTH.get(name, 17)}") if name in STRING_WIDTH else (name, ">f4")
             for name in columns]
    return np.array([tuple(row.get(name, "" if name in STRING_WIDTH else 0.0) for name in columns)
                     for row in rows], dtype=dtype)


def make_photom(
    path: Path | str,
    instrument: str = "NIRCAM",
    rows: Sequence[Mapping[str, Any]] | None = None,
    timecoeff: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    *,
    pixar_sr: float | None = 9.31e-14,
    pixar_a2: float | None = 0.00396,
    detector: str | None = None,
    exp_type: str | None = None,
    p_exp_type: str | None = None,
    useafter: str = USEAFTER,
    **header: Any,
) -> Path:
    """Write an imaging PHOTOM reference (Nrc/Nis/Mir/FgsImgPhotomModel).

    ``rows`` are mappings with the instrument's columns (``filter``, ``pupil``, ``subarray``,
    ``photmjsr``, ``uncertainty``; NIRCam gets a ``subarray`` column when any row has one).
    ``timecoeff`` maps ``linear``/``exponential``/``powerlaw`` to rows of the extra columns; their
    descriptive columns are copied from ``rows`` unless a timecoeff row gives its own.
    """
    path = Path(path)
    instrument = instrument.upper()
    rows = list(DEFAULT_PHOTOM_ROWS[instrument] if rows is None else rows)
    detector = detector or {"NIRCAM": "NRCB1", "NIRISS": "NIS", "MIRI": "MIRIMAGE", "FGS": "GUIDER1"}[instrument]
    descriptive = _photom_columns(instrument, rows)
    cards = {
        "PIXAR_SR": (pixar_sr, "Nominal pixel area in steradians"),
        "PIXAR_A2": (pixar_a2, "Nominal pixel area in arcsec^2"),
        **_imaging_cards(instrument, exp_type, p_exp_type),
        **{k.upper(): v for k, v in header.items()},
    }
    primary = primary_header("PHOTOM", PHOTOM_MODELS[instrument], instrument, detector, useafter,
                             f"{instrument} {detector} imaging photometric conversion", **cards)
    hdus: list[Any] = [fits.PrimaryHDU(header=primary),
                       fits.BinTableHDU(_table((*descriptive, "photmjsr", "uncertainty"), rows), name="PHOTOM")]
    for kind, coefficient_rows in (timecoeff or {}).items():
        extname, extra = TIMECOEFF_COLUMNS[kind]
        merged = [{**{k: base.get(k, "") for k in descriptive}, **own}
                  for base, own in zip(rows + [{}] * len(coefficient_rows), coefficient_rows)]
        hdus.append(fits.BinTableHDU(_table((*descriptive, *extra), merged), name=extname))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def make_area(
    path: Path | str,
    shape: tuple[int, int] = (2048, 2048),
    *,
    detector: str = "NRCB1",
    filter: str | None = "F150W",
    pupil: str | None = "CLEAR",
    instrument: str | None = None,
    pixar_sr: float | None = 9.31e-14,
    pixar_a2: float | None = 0.00396,
    values: np.ndarray | None = None,
    exp_type: str | None = None,
    p_exp_type: str | None = None,
    useafter: str = USEAFTER,
    **header: Any,
) -> Path:
    """Write a pixel-area map (PixelAreaModel): SCI a smooth ±3 % gradient around 1.0 unless ``values``."""
    path = Path(path)
    instrument = (instrument or instrument_of(detector)).upper()
    if values is None:
        ny, nx = shape
        y = np.linspace(-1.0, 1.0, ny, dtype=np.float32)[:, None]
        x = np.linspace(-1.0, 1.0, nx, dtype=np.float32)[None, :]
        values = (np.float32(1.0) + np.float32(0.02) * x - np.float32(0.01) * y * y).astype(np.float32)
    cards = {
        "FILTER": (filter, "Name of the filter element used"),
        "PUPIL": (pupil, "Name of the pupil element used"),
        "PIXAR_SR": (pixar_sr, "Nominal pixel area in steradians"),
        "PIXAR_A2": (pixar_a2, "Nominal pixel area in arcsec^2"),
        **_imaging_cards(instrument, exp_type, p_exp_type),
        **_subarray_cards(tuple(np.shape(values)), (1, 1), full_frame(instrument)),
        **{k.upper(): v for k, v in header.items()},
    }
    primary = primary_header("AREA", "PixelAreaModel", instrument, detector, useafter,
                             f"{instrument} {detector} pixel area map", **cards)
    fits.HDUList([fits.PrimaryHDU(header=primary),
                  fits.ImageHDU(np.asarray(values, np.float32), name="SCI")]).writeto(path, overwrite=True)
    return path


def _forward_polynomials(scale: float, theta_deg: float) -> tuple[models.Polynomial2D, models.Polynomial2D]:
    c, s = np.cos(np.radians(theta_deg)), np.sin(np.radians(theta_deg))
    px = models.Polynomial2D(3, c0_0=0.0, c1_0=scale * c, c0_1=-scale * s, c2_0=2.1e-7, c1_1=-1.3e-7,
                             c0_2=0.8e-7, c3_0=-3.0e-11, c1_2=-2.5e-11)
    py = models.Polynomial2D(3, c0_0=0.0, c1_0=scale * s, c0_1=scale * c, c2_0=-0.6e-7, c1_1=1.9e-7,
                             c0_2=1.1e-7, c2_1=-2.8e-11, c0_3=-3.2e-11)
    return px, py


@functools.lru_cache(maxsize=16)
def _inverse_coefficients(shape: tuple[int, int], scale: float, theta_deg: float) -> tuple[tuple[float, ...], ...]:
    """Fit (once per geometry) degree-7 polynomials from centred (V2, V3) offsets back to pixels."""
    ny, nx = shape
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    px, py = _forward_polynomials(scale, theta_deg)
    gy, gx = np.mgrid[-0.5:ny - 0.5:49j, -0.5:nx - 0.5:49j]
    du, dv = px(gx - cx, gy - cy), py(gx - cx, gy - cy)
    fitter = fitting.LinearLSQFitter()
    return (tuple(fitter(models.Polynomial2D(7), du, dv, gx - cx).parameters),
            tuple(fitter(models.Polynomial2D(7), du, dv, gy - cy).parameters))


NOMINAL_SCALE = 0.0311
"""Plate scale (arcsec/pixel) of the synthetic distortion, and CDELT of the synthetic headers."""


def default_distortion_model(shape: tuple[int, int] = (2048, 2048), *, v2_ref: float = -63.0,
                             v3_ref: float = -490.0, scale: float = NOMINAL_SCALE,
                             theta_deg: float = -0.55) -> models.Model:
    """Return a JWST-like distortion: full-frame 0-based pixels -> (V2, V3) arcsec, with inverse.

    Forward: shift to the detector centre, a rotated ``scale``-arcsec/pixel cubic Polynomial2D
    pair with a small field distortion, then shift to (V2_REF, V3_REF). The inverse is an
    explicit pair of degree-7 polynomials fitted to the forward transform (as in real files),
    accurate to about 1e-6 pixel; the model carries a full-frame bounding_box.
    """
    ny, nx = shape
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    px, py = _forward_polynomials(scale, theta_deg)
    forward = ((models.Shift(-cx) & models.Shift(-cy)) | models.Mapping((0, 1, 0, 1)) | (px & py)
               | (models.Shift(v2_ref) & models.Shift(v3_ref)))
    xcoeffs, ycoeffs = _inverse_coefficients((ny, nx), scale, theta_deg)
    ix, iy = models.Polynomial2D(7), models.Polynomial2D(7)
    ix.parameters, iy.parameters = np.array(xcoeffs), np.array(ycoeffs)
    backward = ((models.Shift(-v2_ref) & models.Shift(-v3_ref)) | models.Mapping((0, 1, 0, 1)) | (ix & iy)
                | (models.Shift(cx) & models.Shift(cy)))
    forward.inverse = backward
    forward.bounding_box = ((-0.5, ny - 0.5), (-0.5, nx - 0.5))
    return forward


def _write_asdf(path: Path, tree: dict[str, Any]) -> Path:
    with asdf.AsdfFile(tree) as handle:
        handle.write_to(path)
    return path


def _deep_update(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        elif value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def reference_meta(reftype: str, datamodel: str, instrument: str, useafter: str, description: str) -> dict[str, Any]:
    """Return the ``meta`` tree common to ASDF references."""
    return {
        "author": "image2 test factory", "date": DATE, "description": description,
        "model_type": datamodel, "origin": "STSCI", "pedigree": "GROUND", "reftype": reftype,
        "telescope": "JWST", "useafter": useafter, "instrument": {"name": instrument},
    }


def make_distortion(
    path: Path | str,
    model: models.Model | None = None,
    *,
    detector: str = "NRCB1",
    instrument: str | None = None,
    exp_type: str | None = None,
    p_exp_type: str | None = None,
    module: str | None = None,
    channel: str | None = None,
    p_pupil: str | None = None,
    useafter: str = USEAFTER,
    input_units: Any = u.pix,
    output_units: Any = u.arcsec,
    **meta: Any,
) -> Path:
    """Write a DISTORTION reference (DistortionModel ASDF): ``model`` detector -> V2/V3 plus ``meta``.

    The default model is :func:`default_distortion_model` for the instrument's full frame. NIRCam
    files carry module, channel and p_pupil (derived from the detector unless given). ``meta``
    items are merged into the tree's ``meta`` (None removes one).
    """
    path = Path(path)
    instrument = (instrument or instrument_of(detector)).upper()
    if model is None:
        model = default_distortion_model(full_frame(instrument))
    default_type, default_pattern = EXP_TYPE_PATTERNS.get(instrument, (None, None))
    tree_meta = reference_meta("distortion", "DistortionModel", instrument, useafter,
                               f"{instrument} {detector} imaging distortion")
    tree_meta["instrument"]["detector"] = detector
    if instrument == "NIRCAM":
        short = detector.upper()[3:] in ("A1", "A2", "A3", "A4", "B1", "B2", "B3", "B4")
        tree_meta["instrument"].update({
            "module": module or detector.upper()[3],
            "channel": channel or ("SHORT" if short else "LONG"),
            "p_pupil": p_pupil or NIRCAM_IMAGING_PUPILS,
        })
    tree_meta["exposure"] = {"type": exp_type or default_type, "p_exptype": p_exp_type or default_pattern}
    tree_meta["input_units"] = input_units
    tree_meta["output_units"] = output_units
    _deep_update(tree_meta, meta)
    return _write_asdf(path, {"meta": tree_meta, "model": model})


def make_filteroffset(
    path: Path | str,
    filters: Sequence[Mapping[str, Any]] | None = None,
    *,
    detector: str = "NRCB1",
    instrument: str | None = None,
    exp_type: str | None = None,
    p_exp_type: str | None = None,
    module: str | None = None,
    channel: str | None = None,
    useafter: str = USEAFTER,
    **meta: Any,
) -> Path:
    """Write a FILTEROFFSET reference (FilteroffsetModel ASDF) with a ``filters`` list.

    Entries are mappings with ``filter``, ``pupil`` (omitted for MIRI), ``column_offset`` and
    ``row_offset`` in pixels. ``meta`` items are merged into the tree's ``meta``.
    """
    path = Path(path)
    instrument = (instrument or instrument_of(detector)).upper()
    if filters is None:
        filters = ([{"filter": "F770W", "column_offset": 0.12, "row_offset": -0.35},
                    {"filter": "F1500W", "column_offset": 0.21, "row_offset": -0.08}] if instrument == "MIRI" else
                   [{"filter": "F150W", "pupil": "CLEAR", "column_offset": 0.4, "row_offset": -1.25},
                    {"filter": "F200W", "pupil": "CLEAR", "column_offset": -0.7, "row_offset": 0.55}])
    default_type, default_pattern = EXP_TYPE_PATTERNS.get(instrument, (None, None))
    tree_meta = reference_meta("filteroffset", "FilteroffsetModel", instrument, useafter,
                               f"{instrument} {detector} filter offsets")
    tree_meta["instrument"]["detector"] = detector
    if instrument == "NIRCAM":
        short = detector.upper()[3:] in ("A1", "A2", "A3", "A4", "B1", "B2", "B3", "B4")
        tree_meta["instrument"].update({"module": module or detector.upper()[3],
                                        "channel": channel or ("SHORT" if short else "LONG")})
    tree_meta["exposure"] = {"type": exp_type or default_type, "p_exptype": p_exp_type or default_pattern}
    tree_meta["input_units"] = u.pix
    _deep_update(tree_meta, meta)
    entries = [dict(f) if isinstance(f, Mapping) else f for f in filters]
    return _write_asdf(path, {"meta": tree_meta, "filters": entries})


def make_dark(
    path: Path | str,
    shape: tuple[int, ...] = (2048, 2048),
    *,
    instrument: str | None = None,
    detector: str | None = None,
    level: float = 0.002,
    substrt: tuple[int, int] = (1, 1),
    flagged: Mapping[str, Any] | None = None,
    dq_def: bool | Sequence[tuple[int, int, str, str]] = False,
    nan_pixels: Iterable[tuple[int, int]] | np.ndarray | None = None,
    err: bool = True,
    useafter: str = USEAFTER,
    seed: int = 0,
    **header: Any,
) -> Path:
    """Write a rate-level 2-D dark (Liger/IRIS), or with a 3-D/4-D ``shape`` a JWST ramp-level DARK.

    The 2-D dark has SCI ~ ``level`` (rate units) with scatter, ERR, DQ (+ optional DQ_DEF) and
    Liger's SUBARRID/DETXSIZ/DETYSIZ. A ramp-level dark is laid out like jwst's DarkModel
    (SCI/ERR per group, 2-D DQ, AVDRKCUR) — the kind the stage-2 reader must refuse.
    """
    path = Path(path)
    jwst = len(shape) > 2
    instrument = (instrument or ("NIRCAM" if jwst else "LIGER")).upper()
    detector = detector or ("NRCB1" if jwst else "IMG")
    rng = np.random.default_rng(seed)
    plane = tuple(shape[-2:])
    sci = (np.float32(level) + np.float32(level / 10) * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    if len(shape) == 2:
        sci[_positions(nan_pixels, plane)] = np.nan
    definitions = _resolve_dq_def(dq_def)
    full = plane if tuple(substrt) == (1, 1) else (4096, 4096)
    cards = {
        **_subarray_cards(plane, substrt, full),
        **({"EXP_TYPE": ("NRC_DARK", "Type of data in the exposure"),
            "P_EXP_TY": "NRC_DARK|NRC_IMAGE|NRC_TSIMAGE|",
            "READPATT": ("ANY", "Readout pattern"), "NGROUPS": (shape[-3], "Number of groups")} if jwst else
           {"SUBARRID": (0 if tuple(substrt) == (1, 1) else 1, "Subarray id, 0 = full frame"),
            "DETXSIZ": (plane[1], "Detector size in x"), "DETYSIZ": (plane[0], "Detector size in y"),
            "BUNIT": ("DN/s", "Units of the dark")}),
        **{k.upper(): v for k, v in header.items()},
    }
    model = "DarkMIRIModel" if len(shape) == 4 else "DarkModel"
    telescope = {"LIGER": "Keck", "IRIS": "TMT"}.get(instrument.upper(), "JWST")
    primary = primary_header("DARK", model, instrument.upper(), detector, useafter,
                             f"{instrument} {detector} {'ramp' if jwst else 'rate'}-level dark", **cards)
    primary["TELESCOP"] = telescope
    hdus: list[Any] = [fits.PrimaryHDU(header=primary), fits.ImageHDU(sci, name="SCI")]
    if err:
        hdus.append(fits.ImageHDU(np.full(shape, level / 10, np.float32), name="ERR"))
    hdus.append(fits.ImageHDU(_raw_dq(plane, flagged, definitions), name="DQ"))
    if jwst:
        hdus.append(fits.ImageHDU(np.full(plane, level, np.float32), name="AVDRKCUR"))
    if definitions:
        hdus.append(dq_def_hdu(definitions))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path
