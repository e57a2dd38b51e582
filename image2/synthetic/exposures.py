"""Writers of realistic JWST-layout exposure files (real keyword set, ASDF extension)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import asdf
import numpy as np
from astropy.io import fits

from image2.core.assign_wcs import fits_keyword_transform
from image2.core.cards import Cards
from image2.core.meta import Pointing, full_frame_shape
from image2.core.output_grid import orientation
from image2.core.sky_region import s_region
from image2.synthetic.references import NOMINAL_SCALE

PRIMARY_CARDS: dict[str, Any] = {
    "TELESCOP": ("JWST", "Telescope used to acquire the data"),
    "DATAMODL": ("ImageModel", "Type of data model"),
    "PROGRAM": ("01234", "JWST program number"),
    "OBSERVTN": ("001", "Observation number"),
    "VISIT": ("001", "Visit number"),
    "TARGNAME": ("NGC 1234", "Standard astronomical catalog name for target"),
    "TARG_RA": (80.4875, "Target RA at mid time of exposure"),
    "TARG_DEC": (-69.4975, "Target Dec at mid time of exposure"),
    "INSTRUME": ("NIRCAM", "Instrument used to acquire the data"),
    "DETECTOR": ("NRCB1", "Name of detector used to acquire the data"),
    "MODULE": ("B", "NIRCam module: A, B, or MULTIPLE"),
    "CHANNEL": ("SHORT", "Instrument channel"),
    "FILTER": ("F150W", "Name of the filter element used"),
    "PUPIL": ("CLEAR", "Name of the pupil element used"),
    "EXP_TYPE": ("NRC_IMAGE", "Type of data in the exposure"),
    "READPATT": ("MEDIUM8", "Readout pattern"),
    "NINTS": (1, "Number of integrations in exposure"),
    "NGROUPS": (6, "Number of groups in integration"),
    "EFFEXPTM": (1030.73, "[s] Effective exposure time"),
    "TMEASURE": (966.31, "[s] Measurement time"),
    "DURATION": (1073.682, "[s] Total duration of exposure"),
    "EXPSTART": (60000.5, "[d] exposure start time in MJD"),
    "EXPMID": (60000.50621, "[d] exposure mid time in MJD"),
    "EXPEND": (60000.51242, "[d] exposure end time in MJD"),
    "DATE-OBS": ("2023-02-25", "[yyyy-mm-dd] UTC date at start of exposure"),
    "TIME-OBS": ("12:00:00.000", "[hh:mm:ss.sss] UTC time at start of exposure"),
    "VISITYPE": ("PRIME_TARGETED_FIXED", "Visit type"),
    "TSOVISIT": (False, "Time Series Observation visit indicator"),
    "SUBARRAY": ("FULL", "Subarray used"),
    "SUBSTRT1": (1, "Starting pixel in axis 1 direction"),
    "SUBSTRT2": (1, "Starting pixel in axis 2 direction"),
    "SUBSIZE1": (2048, "Number of pixels in axis 1 direction"),
    "SUBSIZE2": (2048, "Number of pixels in axis 2 direction"),
    "S_DQINIT": ("COMPLETE", "Data Quality Initialization"),
    "S_SATURA": ("COMPLETE", "Saturation Checking"),
    "S_RAMP": ("COMPLETE", "Ramp Fitting"),
    "R_GAIN": ("crds://jwst_nircam_gain_0097.fits", "Gain reference file name"),
}

SCI_CARDS: dict[str, Any] = {
    "BUNIT": ("DN/s", "physical units of the array values"),
    "RA_REF": (80.4875, "[deg] Right Ascension of the reference point"),
    "DEC_REF": (-69.4975, "[deg] Declination of the reference point"),
    "ROLL_REF": (12.5, "[deg] V3 roll angle at the ref point (N over E)"),
    "V2_REF": (-63.0, "[arcsec] V2 of the reference point"),
    "V3_REF": (-490.0, "[arcsec] V3 of the reference point"),
    "V3I_YANG": (-0.55, "[deg] Direction angle in V3 (Y)"),
    "VPARITY": (-1, "Relative sense of rotation Ideal xy vs V2V3"),
    "VA_SCALE": (1.00001, "Velocity aberration scale factor"),
    "WCSAXES": (2, "number of World Coordinate System axes"),
    "CTYPE1": ("RA---TAN", "Axis 1 type"),
    "CTYPE2": ("DEC--TAN", "Axis 2 type"),
    "CUNIT1": ("deg", "Axis 1 units"),
    "CUNIT2": ("deg", "Axis 2 units"),
}
"""SCI cards: the pointing and the kind of WCS; the WCS values follow from the pointing (pointing_wcs_cards)."""

WCS_COMMENTS = {
    "CRPIX1": "axis 1 coordinate of the reference pixel", "CRPIX2": "axis 2 coordinate of the reference pixel",
    "CRVAL1": "first axis value at the reference pixel", "CRVAL2": "second axis value at the reference pixel",
    "CDELT1": "first axis increment per pixel", "CDELT2": "second axis increment per pixel",
    "PC1_1": "linear transformation matrix element", "PC1_2": "linear transformation matrix element",
    "PC2_1": "linear transformation matrix element", "PC2_2": "linear transformation matrix element",
    "S_REGION": "spatial extent of the observation",
}


def _value(card: Any) -> Any:
    return card[0] if isinstance(card, tuple) else card


def pointing_wcs_cards(sci: dict[str, Any], shape: tuple[int, int], substrt: tuple[int, int] = (1, 1),
                       instrument: str | None = "NIRCAM") -> dict[str, Any]:
    """Return the SCI WCS cards (CRPIX, CRVAL, CDELT, PC, S_REGION) that the pointing cards in ``sci`` imply.

    As the JWST ground system writes them: the aperture reference point (V2_REF, V3_REF), which
    the synthetic distortion puts at the full-frame centre, lies at (RA_REF, DEC_REF), so that
    pixel (in the ``shape`` array read out at 1-based ``substrt``) is CRPIX and that position
    CRVAL; CDELT is the distortion's nominal scale; PC turns the detector to
    ROLL_REF − VPARITY·V3I_YANG (jwst's rotation matrix, output_grid.orientation). WCS cards
    already in ``sci`` are kept; S_REGION is the resulting WCS at the array's corners. Values
    are (value, comment) pairs.
    """
    pointing = Pointing(roll_ref=float(_value(sci["ROLL_REF"])), vparity=int(_value(sci["VPARITY"])),
                        v3i_yang=float(_value(sci["V3I_YANG"])))
    pc = orientation(pointing, None)
    full_ny, full_nx = full_frame_shape(instrument)
    ny, nx = shape
    cdelt = NOMINAL_SCALE / 3600.0
    derived: dict[str, Any] = {
        "CRPIX1": (full_nx + 1) / 2.0 - (substrt[0] - 1), "CRPIX2": (full_ny + 1) / 2.0 - (substrt[1] - 1),
        "CRVAL1": float(_value(sci["RA_REF"])), "CRVAL2": float(_value(sci["DEC_REF"])),
        "CDELT1": cdelt, "CDELT2": cdelt,
        "PC1_1": float(pc[0, 0]), "PC1_2": float(pc[0, 1]), "PC2_1": float(pc[1, 0]), "PC2_2": float(pc[1, 1]),
    }
    cards = {**{k: (v, WCS_COMMENTS[k]) for k, v in derived.items()}, **{k: v for k, v in sci.items() if k in derived}}
    if "S_REGION" in sci:
        return {**cards, "S_REGION": sci["S_REGION"]}
    header = Cards().updated({k: _value(v) for k, v in {**sci, **cards}.items()})
    ra, dec = fits_keyword_transform(header, "SCI")(np.array([-0.5, -0.5, nx - 0.5, nx - 0.5]),
                                                     np.array([-0.5, ny - 0.5, ny - 0.5, -0.5]))
    return {**cards, "S_REGION": (s_region(ra, dec), WCS_COMMENTS["S_REGION"])}


def exposure_arrays(shape: tuple[int, ...], seed: int = 1) -> dict[str, np.ndarray]:
    """Return SCI/ERR/DQ/VAR_POISSON/VAR_RNOISE with sky, noise and a few flagged pixels."""
    rng = np.random.default_rng(seed)
    sci = (0.8 + rng.normal(0.0, 0.05, shape)).astype(np.float32)
    var_rnoise = np.full(shape, 0.0025, np.float32)
    var_poisson = (np.abs(sci) / 1000.0).astype(np.float32)
    err = np.sqrt(var_poisson + var_rnoise).astype(np.float32)
    dq = np.zeros(shape, np.uint32)
    flat = dq.reshape(-1)
    flat[rng.choice(flat.size, size=max(1, flat.size // 500), replace=False)] = 1 | 1024
    flat[rng.choice(flat.size, size=max(1, flat.size // 500), replace=False)] |= 4
    return {"SCI": sci, "ERR": err, "DQ": dq, "VAR_POISSON": var_poisson, "VAR_RNOISE": var_rnoise}


def asdf_extension(meta: dict[str, Any]) -> fits.BinTableHDU:
    """Return an ASDF extension like datamodels writes (meta tree plus array stubs)."""
    tree = {"meta": meta, "data": {"source": "fits:SCI,1"}}
    buffer = io.BytesIO()
    asdf.AsdfFile(tree).write_to(buffer)
    raw = np.frombuffer(buffer.getvalue(), np.uint8)
    column = fits.Column(name="ASDF_METADATA", format=f"{raw.size}B", array=raw[np.newaxis])
    return fits.BinTableHDU.from_columns([column], name="ASDF")


def rate_headers(
    shape: tuple[int, ...],
    primary: dict[str, Any] | None = None,
    sci: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> tuple[fits.Header, fits.Header]:
    """Return the PRIMARY and SCI headers of a ``shape`` rate file (overrides as in :func:`make_rate`)."""
    ny, nx = shape[-2:]
    geometry = {
        "SUBSIZE1": (nx, PRIMARY_CARDS["SUBSIZE1"][1]),
        "SUBSIZE2": (ny, PRIMARY_CARDS["SUBSIZE2"][1]),
        "NINTS": (shape[0] if len(shape) == 3 else 1, PRIMARY_CARDS["NINTS"][1]),
        "SUBARRAY": ("FULL" if (ny, nx) == (2048, 2048) else "SUBCUSTOM", "Subarray used"),
        "DATAMODL": ("CubeModel" if len(shape) == 3 else "ImageModel", "Type of data model"),
    }
    primary_cards = {**PRIMARY_CARDS, **geometry, **(primary or {})}
    pointing = {**SCI_CARDS, **(sci or {})}
    substrt = (int(_value(primary_cards["SUBSTRT1"])), int(_value(primary_cards["SUBSTRT2"])))
    sci_cards = {**pointing, **pointing_wcs_cards(pointing, (ny, nx), substrt, _value(primary_cards["INSTRUME"]))}
    primary_cards = {**primary_cards, "TARG_RA": (_value(pointing["RA_REF"]), "Target RA at mid time of exposure"),
                     "TARG_DEC": (_value(pointing["DEC_REF"]), "Target Dec at mid time of exposure"),
                     **(primary or {})}
    headers = fits.Header(), fits.Header([("BUNIT", "DN/s", "physical units of the array values")])
    for header, cards in zip(headers, (primary_cards, sci_cards), strict=True):
        for key, value in cards.items():
            if key not in drop:
                header[key] = value
    return headers


def make_rate(
    path: Path,
    shape: tuple[int, ...] = (64, 80),
    primary: dict[str, Any] | None = None,
    sci: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    arrays: dict[str, np.ndarray] | None = None,
    int_times: bool = False,
    seed: int = 1,
) -> Path:
    """Write a JWST-layout rate (2-D shape) or rateints (3-D shape) file and return its path.

    ``primary``/``sci`` override header cards (value or (value, comment)); ``drop`` removes
    keywords from both headers; ``arrays`` replaces arrays by extension name (None drops one).
    The SCI WCS cards and TARG_RA/TARG_DEC follow from the pointing cards (see
    :func:`pointing_wcs_cards`) unless given in ``sci``/``primary``, so a header contradicts its
    pointing only when a caller asks for it.
    """
    header, sci_header = rate_headers(shape, primary, sci, drop)
    data = exposure_arrays(shape, seed)
    data.update(arrays or {})
    hdus: list[Any] = [fits.PrimaryHDU(header=header)]
    for name in ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"):
        if data.get(name) is None:
            continue
        ext = fits.ImageHDU(data[name], name=name, ver=1)
        if name == "ERR":
            ext.header["BUNIT"] = ("DN/s", "physical units of the array values")
        if name == "SCI":
            ext.header.extend(sci_header)
        hdus.append(ext)
    if int_times:
        n = shape[0]
        columns = [fits.Column(name="integration_number", format="J", array=np.arange(1, n + 1))]
        for name in ("int_start_MJD_UTC", "int_mid_MJD_UTC", "int_end_MJD_UTC",
                     "int_start_BJD_TDB", "int_mid_BJD_TDB", "int_end_BJD_TDB"):
            columns.append(fits.Column(name=name, format="D", array=60000.5 + np.arange(n) * 0.001))
        hdus.append(fits.BinTableHDU.from_columns(columns, name="INT_TIMES"))
    hdus.append(asdf_extension({
        "instrument": {"name": "NIRCAM"},
        "model_type": "CubeModel" if len(shape) == 3 else "ImageModel",
    }))
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_association(path: Path, products: list[dict[str, Any]], **fields: Any) -> Path:
    """Write a Level-2 association JSON file."""
    import json

    document = {"asn_type": "image2", "asn_rule": "candidate_Asn_Lv2Image",
                "asn_pool": "jw01234_20230101t000000_pool.csv", "products": products, **fields}
    path.write_text(json.dumps(document, indent=2))
    return path
